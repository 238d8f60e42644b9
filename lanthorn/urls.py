from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from inference import ollama_views
from inference import openapi  # noqa: F401  (registers the API key scheme with drf-spectacular; web only)
from inference import views as inference_views
from console import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("api/workers", inference_views.WorkerListView.as_view(), name="api-workers"),
    path("v1/models", inference_views.ListModelsView.as_view(), name="models"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # The Ollama-compatible API (its streaming endpoints are consumers, in lanthorn/asgi.py).
    path("api/tags", ollama_views.TagsView.as_view(), name="ollama-tags"),
    path("api/show", ollama_views.ShowView.as_view(), name="ollama-show"),
    path("api/ps", ollama_views.PsView.as_view(), name="ollama-ps"),
    path("api/version", ollama_views.VersionView.as_view(), name="ollama-version"),
    path("admin/", admin.site.urls),
    path("playground/", include("playground.urls")),
    path("", include("registry.urls")),
    path("", include("audit.urls")),
    path("", include("console.urls")),
]

handler404 = "core.views.not_found"
handler500 = "core.views.server_error"
