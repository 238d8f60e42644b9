from django.contrib import admin

from registry.models import Model, ModelVersion


class VersionInline(admin.TabularInline):
    model = ModelVersion
    extra = 0
    fields = ["number", "digest", "size", "architecture", "quantization", "source", "created_at"]
    readonly_fields = fields


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = ["name", "active_version", "n_ctx", "n_threads", "temperature", "top_p", "max_tokens"]
    inlines = [VersionInline]
