from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"

    def ready(self):
        from inference import openapi  # noqa: F401  (registers the API key scheme with drf-spectacular)
