from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from console import dashboard_views, job_views, model_views, user_views, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("dashboard.json", dashboard_views.dashboard_json, name="dashboard-data"),
    path("usage/", dashboard_views.usage_page, name="usage"),
    path("usage/<int:pk>/", dashboard_views.usage_detail, name="usage-detail"),
    path("jobs/", job_views.jobs_page, name="jobs"),
    path("jobs/<str:kind>/<uuid:job_id>/", job_views.job_detail, name="job-detail"),
    path("jobs/<str:kind>/<uuid:job_id>/cancel/", job_views.job_cancel, name="job-cancel"),
    path("login/", auth_views.LoginView.as_view(template_name="console/login.html",
                                                redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", auth_views.PasswordChangeView.as_view(template_name="console/password.html",
                                                             success_url=reverse_lazy("password-done")),
         name="password"),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(template_name="console/password.html"),
         name="password-done"),
    path("keys/", views.keys_page, name="keys"),
    path("keys/new/", views.key_create, name="key-create"),
    path("keys/<int:pk>/revoke/", views.key_revoke, name="key-revoke"),
    # People, roles and teams (admins).
    path("users/", user_views.users_page, name="users"),
    path("users/new/", user_views.user_create, name="user-create"),
    path("users/<int:pk>/role/", user_views.user_role, name="user-role"),
    path("users/<int:pk>/limits/", user_views.user_limits, name="user-limits"),
    path("users/<int:pk>/deactivate/", user_views.user_deactivate, name="user-deactivate"),
    path("users/<int:pk>/reactivate/", user_views.user_reactivate, name="user-reactivate"),
    path("teams/new/", user_views.team_create, name="team-create"),
    path("teams/<int:pk>/add/", user_views.team_add, name="team-add"),
    path("teams/<int:pk>/remove/<int:user_pk>/", user_views.team_remove, name="team-remove"),
    # The model registry.
    path("models/", model_views.models_page, name="models"),
    path("models/pull/", model_views.pull_create, name="pull-create"),
    path("models/pulls/<uuid:pull_id>/", model_views.pull_detail, name="pull-detail"),
    path("models/<str:name>/config/", model_views.config_save, name="model-config"),
    path("models/<str:name>/config.json", model_views.config_export, name="model-config-export"),
    path("models/<str:name>/config/import/", model_views.config_import, name="model-config-import"),
    path("models/<str:name>/versions/<int:number>/activate/", model_views.version_activate,
         name="version-activate"),
    path("models/<str:name>/versions/<int:number>/check/", model_views.version_check, name="version-check"),
    path("models/<str:name>/versions/<int:number>/remove/", model_views.version_remove, name="version-remove"),
]
