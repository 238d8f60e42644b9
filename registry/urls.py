from django.urls import path

from registry import views

urlpatterns = [
    path("api/models", views.ModelListView.as_view(), name="api-models"),
    path("api/catalog", views.CatalogView.as_view(), name="api-catalog"),
    path("api/models/<str:name>", views.ModelDetailView.as_view(), name="api-model"),
    path("api/models/<str:name>/config", views.ModelConfigView.as_view(), name="api-model-config"),
    path("api/models/<str:name>/rollback", views.RollbackView.as_view(), name="api-model-rollback"),
    path("api/models/<str:name>/check", views.CheckView.as_view(), name="api-model-check"),
    path("api/models/<str:name>/versions/<int:number>", views.VersionDetailView.as_view(), name="api-version"),
    path("api/pulls", views.PullCreateView.as_view(), name="api-pulls"),
    path("api/pulls/<uuid:pull_id>", views.PullDetailView.as_view(), name="api-pull"),
    path("api/pulls/<uuid:pull_id>/stream", views.PullStreamView.as_view(), name="api-pull-stream"),
    path("api/jobs/<str:kind>/<uuid:job_id>", views.JobDetailView.as_view(), name="api-job"),
    path("api/jobs/<str:kind>/<uuid:job_id>/cancel", views.JobCancelView.as_view(), name="api-job-cancel"),
    path("registry/v1/models/<str:name>/manifest", views.ManifestView.as_view(), name="registry-manifest"),
    path("registry/v1/blobs/<str:digest>", views.BlobView.as_view(), name="registry-blob"),
]
