from django.contrib import admin

from console.models import ApiKey, UsageRecord
from console.services import revoke_api_key


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created where their secret can be shown once (the console, the CLI); here they can
    be renamed, limited and revoked, never un-revoked."""

    list_display = ["name", "prefix", "user", "rpm", "tokens_per_day", "concurrency", "expires_at", "created_at",
                    "last_used_at", "revoked_at"]
    readonly_fields = ["user", "prefix", "hashed_key", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            revoke_api_key(key=key, actor=request.user)


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """The usage trail: read-only."""

    list_display = ["created_at", "user", "api_key", "endpoint", "model_name", "prompt_tokens",
                    "completion_tokens", "ttft_ms", "latency_ms", "status_code", "outcome"]
    list_filter = ["outcome", "endpoint", "model_name"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
