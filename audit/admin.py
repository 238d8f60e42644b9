"""The admin site shows the trail read-only: no add, change or delete, whoever asks."""

from django.contrib import admin

from audit.models import AuditEvent, Checkpoint


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["seq", "time", "actor_username", "key_prefix", "action", "target", "outcome", "source_ip"]
    list_filter = ["action", "outcome"]
    search_fields = ["actor_username", "target", "key_prefix"]


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ["seq", "time", "before", "purged", "hash"]
