"""The console's model registry pages: installed models and their versions, load configuration,
pulls with live progress, and the catalog.

Everyone signed in sees them; only admins change anything. Every change is a call
to registry.services; its RegistryError is shown on the page. htmx requests get the partial
they swap (a model, its configuration, the pull section, one pull's progress); plain requests
get the whole page, so every action also works without JavaScript.
"""

from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import trigger_client_event

from console.access import admin_required
from console.forms import ConfigForm, ConfigImportForm, PullForm
from console.roles import is_admin
from registry import services
from registry.models import Model, ModelVersion, Pull
from registry.services import RegistryError

RECENT_PULLS = 10


def models_queryset():
    versions = ModelVersion.objects.select_related("pulled_by").order_by("-number")
    return Model.objects.select_related("active_version").prefetch_related(Prefetch("versions", queryset=versions))


def find_model(name: str) -> Model:
    return get_object_or_404(models_queryset(), name=name)


def find_version(name: str, number: int) -> ModelVersion:
    try:
        return services.get_version(name=name, number=number)
    except RegistryError as exc:
        raise Http404(exc.message) from exc


def model_card(model: Model, **extra) -> dict:
    """What _model.html shows of one model; `extra` carries the outcome of an action on it."""
    return {
        "model": model,
        "versions": model.versions.all(),
        "config_form": ConfigForm(model=model),
        "import_form": ConfigImportForm(model=model),
        **extra,
    }


def list_context(request, card: dict | None = None) -> dict:
    """The model list; `card` replaces the default card of its model."""
    cards = [card if card and card["model"].pk == model.pk else model_card(model) for model in models_queryset()]
    return {"cards": cards, "can_edit": is_admin(request.user)}


def pulls_context(request, form: PullForm | None = None) -> dict:
    return {
        "pull_form": form or PullForm(),
        "pulls": Pull.objects.select_related("requested_by", "version")[:RECENT_PULLS],
        "can_edit": is_admin(request.user),
    }


def page_context(request, *, card: dict | None = None, pull_form: PullForm | None = None) -> dict:
    return {
        **list_context(request, card),
        **pulls_context(request, pull_form),
        "catalog": services.available(),
    }


def render_card(request, template: str, card: dict):
    """An action's answer: the changed part for htmx, the whole page otherwise."""
    if request.htmx:
        return render(request, template, {"card": card, "can_edit": is_admin(request.user)})
    return render(request, "console/models.html", page_context(request, card=card))


def render_model(request, name: str, **outcome):
    return render_card(request, "console/_model.html", model_card(find_model(name), **outcome))


@login_required
@vary_on_headers("HX-Request")  # the same URL answers htmx with a partial: keep caches apart
def models_page(request):
    if request.htmx:
        return render(request, "console/_model_list.html", list_context(request))
    return render(request, "console/models.html", page_context(request))


# Versions.

@admin_required
@require_POST
def version_activate(request, name, number):
    version = find_version(name, number)
    try:
        services.activate_version(version=version)
    except RegistryError as exc:
        return render_model(request, name, error=exc.message)
    return render_model(request, name, notice=f"{version.label} is now the active version.")


@admin_required
@require_POST
def version_check(request, name, number):
    try:
        check = services.start_check(version=find_version(name, number), user=request.user)
    except RegistryError as exc:
        return render_model(request, name, error=exc.message)
    return render_model(request, name, check_job=check)


@admin_required
@require_POST
def version_remove(request, name, number):
    find_version(name, number)  # 404 for a version that does not exist
    try:
        removed = services.remove(name=name, number=number)
    except RegistryError as exc:
        return render_model(request, name, error=exc.message)
    return render_model(request, name, removed=removed)


# Load configuration.

@admin_required
@require_POST
def config_save(request, name):
    model = find_model(name)
    form, notice = ConfigForm(request.POST, model=model), None
    if form.is_valid():
        try:
            services.set_config(model=model, values=form.cleaned_data)
        except RegistryError as exc:
            form.add_error(exc.param if exc.param in form.fields else None, exc.message)
        else:
            form, notice = ConfigForm(model=model), "Configuration saved."
    return render_card(request, "console/_config.html",
                       model_card(model, config_form=form, config_notice=notice, config_open=True))


@admin_required
@require_POST
def config_import(request, name):
    model = find_model(name)
    form, notice = ConfigImportForm(request.POST, request.FILES, model=model), None
    if form.is_valid():
        try:
            services.import_config(model=model, text=form.cleaned_data["file"])
        except RegistryError as exc:
            form.add_error("file", exc.message)
        else:
            form, notice = ConfigImportForm(model=model), "Configuration imported."
    return render_card(request, "console/_config.html",
                       model_card(model, import_form=form, config_notice=notice, config_open=True))


@login_required
def config_export(request, name):
    model = find_model(name)
    response = JsonResponse(model.config(), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="{model.name}.json"'
    return response


# Pulls.

@admin_required
@require_POST
def pull_create(request):
    form = PullForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            pull = services.start_pull(source=data["source"], name=data["name"] or None,
                                       sha256=data["sha256"] or None, user=request.user)
        except RegistryError as exc:
            form.add_error(exc.param if exc.param in form.fields else None, exc.message)
        else:
            if not request.htmx:
                return redirect("pull-detail", pull_id=pull.pk)
            form = None  # a fresh form; the new pull shows in the list with its progress
    if request.htmx:
        return render(request, "console/_pulls.html", pulls_context(request, form))
    return render(request, "console/models.html", page_context(request, pull_form=form))


@login_required
@vary_on_headers("HX-Request")
def pull_detail(request, pull_id):
    try:
        pull = services.get_pull(pull_id=pull_id)
    except RegistryError as exc:
        raise Http404(exc.message) from exc
    if request.htmx:
        response = render(request, "console/_pull.html", {"pull": pull})
        if pull.status == Pull.DONE:
            trigger_client_event(response, "models-changed")  # the model list reloads itself
        return response
    return render(request, "console/pull.html", {"pull": pull})
