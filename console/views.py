"""The web console: a dashboard of workers, queues, usage figures and charts, models and API
keys, with htmx for the key actions.

htmx requests get a partial template (the part of the page they swap); plain requests get
the whole page, so every action also works without JavaScript.
"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from console import services
from console.forms import ApiKeyForm
from console.models import ApiKey
from registry.models import Model


def visible_keys(user):
    keys = ApiKey.objects.select_related("user")
    return keys if user.is_superuser else keys.filter(user=user)


def keys_context(request, *, form=None, new_key=None) -> dict:
    return {
        "keys": visible_keys(request.user),
        "form": form or ApiKeyForm(),
        "new_key": new_key,
        "show_owner": request.user.is_superuser,
    }


def dashboard_context(request, **keys_kwargs) -> dict:
    from console.dashboard_views import REFRESH_SECONDS, dashboard_data

    return {
        "models": Model.objects.select_related("active_version"),
        "data": dashboard_data(request.user),  # the first paint; the page's script polls for more
        "refresh_seconds": REFRESH_SECONDS,
        "base_url": request.build_absolute_uri("/v1"),
        **keys_context(request, **keys_kwargs),
    }


@login_required
def dashboard(request):
    return render(request, "console/dashboard.html", dashboard_context(request))


@login_required
@require_POST
def key_create(request):
    form = ApiKeyForm(request.POST)
    new_key = None
    if form.is_valid():
        new_key = services.create_api_key(user=request.user, name=form.cleaned_data["name"])
        form = None  # a fresh, empty form
    if request.htmx:
        return render(request, "console/_keys.html", keys_context(request, form=form, new_key=new_key))
    return render(request, "console/dashboard.html", dashboard_context(request, form=form, new_key=new_key))


@login_required
@require_POST
def key_revoke(request, pk):
    key = get_object_or_404(visible_keys(request.user), pk=pk)
    services.revoke_api_key(key=key)
    if request.htmx:
        return render(request, "console/_key_row.html",
                      {"key": key, "show_owner": request.user.is_superuser})
    return redirect("dashboard")
