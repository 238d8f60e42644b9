"""The dashboard's live data and the Usage page.

The dashboard (`/`, in views.py) draws its figures and charts from `dashboard.json`, which its
script polls every few seconds. Everyone signed in sees the workers and queues; members see the
figures of their own requests, admins and auditors everyone's. The Usage page lists usage rows
(members: their own) with filters, pages and a row's detail.
"""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from console import selectors
from console.forms import UsageFilterForm
from console.roles import can_audit

USAGE_PAGE_ROWS = 50
REFRESH_SECONDS = 3  # how often the dashboard's script asks for new figures


def dashboard_data(user) -> dict:
    return {"now": timezone.now().isoformat(), "everyone": can_audit(user), **selectors.live_state(),
            "windows": selectors.dashboard_figures(user)}


@login_required
def dashboard_json(request):
    return JsonResponse(dashboard_data(request.user))


@login_required
def usage_page(request):
    rows = selectors.visible_usage(request.user).select_related("user", "api_key")
    form = UsageFilterForm(request.GET or None, user=request.user)
    if form.is_bound:  # bad filters: their messages, and no rows rather than the wrong ones
        rows = form.filter(rows) if form.is_valid() else rows.none()
    page = Paginator(rows.order_by("-created_at", "-id"), USAGE_PAGE_ROWS).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "console/usage.html", {"form": form, "page": page, "query": query.urlencode(),
                                                  "everyone": can_audit(request.user)})


@login_required
def usage_detail(request, pk):
    row = get_object_or_404(selectors.visible_usage(request.user).select_related("user", "api_key"), pk=pk)
    return render(request, "console/usage_detail.html", {"row": row})
