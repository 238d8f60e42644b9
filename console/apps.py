from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.db.models.signals import m2m_changed

        from console.models import ApiKey
        from core import memo

        # What an API key's copy (console.selectors.key_by_hash) holds: the key, its owner, the
        # owner's groups (auditors run no models).
        User = get_user_model()
        memo.watch(ApiKey, User, Group)
        m2m_changed.connect(memo.changed, sender=User.groups.through, dispatch_uid="memo-groups")
