"""The console's Audit page (admins and auditors), the export download, and `GET /api/audit`.

Exports stream: the response body is an async iterator that asks `audit.services.export` for
one chunk of events at a time (a query per chunk), so memory stays flat however long the trail.
"""

from functools import wraps

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions
from rest_framework.views import APIView

from audit import selectors, services
from audit.models import AuditEvent
from console.roles import can_audit
from core.errors import ApiError

PAGE_SIZE = 50
CONTENT_TYPES = {"jsonl": "application/x-ndjson; charset=utf-8", "csv": "text/csv; charset=utf-8"}


def auditors_only(view):
    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not can_audit(request.user):
            raise PermissionDenied("Only admins and auditors can read the audit trail.")
        return view(request, *args, **kwargs)

    return wrapper


def export_response(*, format: str, filters: selectors.Filters) -> StreamingHttpResponse:
    """Records the export, then streams it."""
    chunks = services.export(format=format, filters=filters)
    next_chunk = sync_to_async(next, thread_sensitive=True)

    async def body():
        while (chunk := await next_chunk(chunks, None)) is not None:
            yield chunk

    response = StreamingHttpResponse(body(), content_type=CONTENT_TYPES[format])
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="lanthorn-audit-{stamp}.{format}"'
    return response


@auditors_only
def audit_page(request):
    error, filters = None, selectors.Filters()
    try:
        filters = selectors.Filters.parse(request.GET)
    except selectors.BadFilter as exc:
        error = exc.message
    page = Paginator(selectors.events(filters), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"page": page, "filters": filters, "error": error, "query": query.urlencode(),
               "export_query": "&".join(f"{k}={v}" for k, v in filters.as_dict().items()),
               **selectors.chain_status()}
    if request.htmx:
        return render(request, "audit/_events.html", context)
    return render(request, "audit/audit.html", context)


@auditors_only
def event_detail(request, seq):
    event = get_object_or_404(AuditEvent, seq=seq)
    details = dict(event.details)
    before, after = details.pop("before", None), details.pop("after", None)
    changes = None
    if isinstance(before, dict) and isinstance(after, dict):
        changes = [(field, before.get(field), after.get(field)) for field in sorted({*before, *after})]
    return render(request, "audit/event.html", {"event": event, "details": details, "changes": changes})


@auditors_only
@require_POST
def verify(request):
    services.verify_trail()
    return redirect("audit")


@auditors_only
def export(request):
    format = request.GET.get("format", "jsonl")
    try:
        filters = selectors.Filters.parse(request.GET)
    except selectors.BadFilter as exc:
        return HttpResponseBadRequest(exc.message, content_type="text/plain; charset=utf-8")
    if format not in services.FORMATS:
        format = "jsonl"
    return export_response(format=format, filters=filters)


class CanAudit(permissions.BasePermission):
    message = "Only an admin or an auditor can export the audit trail."

    def has_permission(self, request, view):
        return can_audit(request.user)


@extend_schema(
    parameters=[OpenApiParameter(name, str, description=description) for name, description in (
        ("format", "jsonl (default) or csv"), ("since", "ISO date or time"), ("until", "ISO date or time"),
        ("action", "e.g. key.create"), ("user", "username"), ("key", "key prefix"), ("model", "model name"),
        ("outcome", "ok, error or cancelled"))],
    responses={(200, "application/x-ndjson"): OpenApiTypes.STR, (200, "text/csv"): OpenApiTypes.STR})
class AuditExportView(APIView):
    """GET /api/audit?format=csv|jsonl&since=&until=&action=&user=&key=&model=&outcome=: the trail,
    streamed, each event with its hash and the previous hash."""

    permission_classes = [permissions.IsAuthenticated, CanAudit]

    def perform_content_negotiation(self, request, force=False):
        # `format` is this endpoint's own parameter, not DRF's renderer override.
        return super().perform_content_negotiation(request, force=True)

    def get(self, request):
        format = request.query_params.get("format", "jsonl")
        if format not in services.FORMATS:
            raise ApiError(400, f"format must be jsonl or csv, not {format!r}", param="format", code="invalid_value")
        try:
            filters = selectors.Filters.parse(request.query_params)
        except selectors.BadFilter as exc:
            raise ApiError(400, exc.message, param=exc.param, code="invalid_value") from exc
        return export_response(format=format, filters=filters)
