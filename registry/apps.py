from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from core.memo import changed
        from registry.models import Model, ModelVersion

        # What a model's copy (registry.selectors.model_by_name) holds: the model, its active version.
        for model in (Model, ModelVersion):
            post_save.connect(changed, sender=model, dispatch_uid=f"memo-save-{model.__name__}")
            post_delete.connect(changed, sender=model, dispatch_uid=f"memo-delete-{model.__name__}")
