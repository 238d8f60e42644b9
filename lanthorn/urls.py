from django.contrib import admin
from django.urls import include, path

from inference import views as inference_views
from console import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("api/workers", inference_views.WorkerListView.as_view(), name="api-workers"),
    path("v1/models", inference_views.ListModelsView.as_view(), name="models"),
    path("admin/", admin.site.urls),
    path("playground/", include("playground.urls")),
    path("", include("registry.urls")),
    path("", include("console.urls")),
]
