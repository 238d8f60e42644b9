from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"

    def ready(self) -> None:
        from core import memo
        from registry.models import Model, ModelVersion

        # What a model's copy (registry.selectors.model_by_name) holds: the model, its active version.
        memo.watch(Model, ModelVersion)
