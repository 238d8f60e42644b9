"""The web console: a dashboard of workers, queues, usage figures and charts, and models; the API
keys page (htmx for its actions).

htmx requests get a partial template (the part of the page they swap); plain requests get
the whole page, so every action also works without JavaScript.
"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from redis.exceptions import RedisError

from console import limits, services
from console.access import members_only
from console.forms import ApiKeyForm
from console.models import ApiKey
from console.roles import is_admin
from core.actions import request_origin
from registry.models import Model


def visible_keys(user):
    keys = ApiKey.objects.select_related("user")
    return keys if is_admin(user) else keys.filter(user=user)


def dashboard_context(request) -> dict:
    from console.dashboard_views import REFRESH_SECONDS, dashboard_data

    return {
        "models": Model.objects.select_related("active_version"),
        "data": dashboard_data(request.user),  # the first paint; the page's script polls for more
        "refresh_seconds": REFRESH_SECONDS,
        "base_url": request.build_absolute_uri("/v1"),
    }


@login_required
def dashboard(request):
    return render(request, "console/dashboard.html", dashboard_context(request))


# API keys: members manage their own, admins everyone's.

def with_tokens_today(keys) -> list:
    """The keys, those with a daily budget carrying `tokens_today` (None when Redis does not answer)."""
    keys = list(keys)
    budgeted = [key for key in keys if key.tokens_per_day is not None and key.is_active]
    try:
        used = limits.used_today_by_keys(budgeted)
    except RedisError:
        used = {}
    for key in keys:
        key.tokens_today = used.get(key.pk)
    return keys


def keys_context(request, *, form=None, new_key=None, error=None) -> dict:
    return {
        "keys": with_tokens_today(visible_keys(request.user)),
        "form": form or ApiKeyForm(user=request.user),
        "new_key": new_key,
        "error": error,
        "show_owner": is_admin(request.user),
        "limits": services.user_limits(request.user),
        "base_url": request.build_absolute_uri("/v1"),
    }


def render_keys(request, **context):
    template = "console/_keys.html" if request.htmx else "console/keys.html"
    return render(request, template, keys_context(request, **context))


@members_only
def keys_page(request):
    return render_keys(request)


@members_only
@require_POST
def key_create(request):
    form = ApiKeyForm(request.POST, user=request.user)
    new_key = error = None
    if form.is_valid():
        data = form.cleaned_data
        try:
            new_key = services.create_api_key(
                user=data.get("owner") or request.user, name=data["name"], actor=request.user,
                origin=request_origin(request), rpm=data["rpm"], tokens_per_day=data["tokens_per_day"],
                concurrency=data["concurrency"], models=data["models"], expires_at=form.expires_at())
        except services.ConsoleError as exc:
            error = exc.message
        else:
            form = None  # a fresh, empty form
    return render_keys(request, form=form, new_key=new_key, error=error)


@members_only
@require_POST
def key_revoke(request, pk):
    key = get_object_or_404(visible_keys(request.user), pk=pk)
    services.revoke_api_key(key=key, actor=request.user, origin=request_origin(request))
    if request.htmx:
        return render(request, "console/_key_row.html",
                      {"key": with_tokens_today([key])[0], "show_owner": is_admin(request.user)})
    return redirect("keys")
