from django.contrib import admin

from registry.models import CONFIG_FIELDS, Model, ModelVersion, Pull


class VersionInline(admin.TabularInline):
    model = ModelVersion
    extra = 0
    fields = ["number", "digest", "size", "architecture", "quantization", "source", "created_at", "checked_at",
              "check_problem"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    """Which version is active and how it loads change only through the registry's services
    (rollback, config: the console, the API, the CLI), which check them first."""

    list_display = ["name", "active_version", "n_ctx", "n_threads", "temperature", "top_p", "top_k", "max_tokens"]
    readonly_fields = ["name", "active_version", *CONFIG_FIELDS, "created_at"]
    inlines = [VersionInline]

    def has_add_permission(self, request):
        return False


@admin.register(Pull)
class PullAdmin(admin.ModelAdmin):
    """Pulls are a record of what came from where; they are started from the console, the API or the CLI."""

    list_display = ["created_at", "name", "source", "status", "version", "requested_by", "transferred_bytes"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in Pull._meta.fields]

    def has_add_permission(self, request):
        return False
