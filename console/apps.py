from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from console.models import ApiKey
        from core.memo import changed

        # What an API key's copy (console.selectors.key_by_hash) holds: the key, its owner, the
        # owner's groups (auditors run no models).
        User = get_user_model()
        for model in (ApiKey, User, Group):
            post_save.connect(changed, sender=model, dispatch_uid=f"memo-save-{model.__name__}")
            post_delete.connect(changed, sender=model, dispatch_uid=f"memo-delete-{model.__name__}")
        m2m_changed.connect(changed, sender=User.groups.through, dispatch_uid="memo-groups")
