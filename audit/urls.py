from django.urls import path

from audit import views

urlpatterns = [
    path("audit/", views.audit_page, name="audit"),
    path("audit/events/<int:seq>/", views.event_detail, name="audit-event"),
    path("audit/export/", views.export, name="audit-export"),
    path("audit/verify/", views.verify, name="audit-verify"),
    path("api/audit", views.AuditExportView.as_view(), name="api-audit"),
]
