from django.contrib import admin

from console.models import ApiKey, UsageRecord


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "user", "rpm", "tokens_per_day", "concurrency", "expires_at", "created_at",
                    "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "hashed_key"]


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "api_key", "endpoint", "model_name", "prompt_tokens",
                    "completion_tokens", "ttft_ms", "latency_ms", "status_code", "outcome"]
    list_filter = ["outcome", "endpoint", "model_name"]
