"""The Users page (admins): people, their roles, limits and teams. Each action is a plain form
post answered with the page (or a redirect to it), and a message saying what happened; a new
person's password is shown once, on the page that answers their creation."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from console import roles, services
from console.access import admin_required
from console.forms import LimitsForm, RoleForm, TeamForm, TeamMemberForm, UserCreateForm
from console.models import Team, UserLimits
from core.actions import request_origin


def users_context(request, *, create_form=None, team_form=None, new_user=None) -> dict:
    User = get_user_model()
    people = (User.objects.order_by("username").prefetch_related("teams", "groups")
              .annotate(active_keys=Count("api_keys", filter=Q(api_keys__revoked_at__isnull=True))))
    limits = {row.user_id: row for row in UserLimits.objects.all()}
    rows = []
    for person in people:
        role = roles.assigned_role(person)
        rows.append({"user": person, "role": role,
                     "role_form": RoleForm(initial={"role": role}, auto_id=f"id_user{person.pk}_%s"),
                     "limits_form": LimitsForm(initial=services.limits_of(limits.get(person.pk)),
                                               auto_id=f"id_limits{person.pk}_%s")})
    teams = [{"team": team, "form": TeamMemberForm(team=team)}
             for team in Team.objects.prefetch_related("members")]
    return {"rows": rows, "teams": teams, "new_user": new_user,
            "create_form": create_form or UserCreateForm(), "team_form": team_form or TeamForm()}


def find_user(pk):
    return get_object_or_404(get_user_model(), pk=pk)


@admin_required
def users_page(request):
    return render(request, "console/users.html", users_context(request))


@admin_required
@require_POST
def user_create(request):
    form = UserCreateForm(request.POST)
    new_user = None
    if form.is_valid():
        try:
            new_user = services.create_user(username=form.cleaned_data["username"], role=form.cleaned_data["role"],
                                            actor=request.user, origin=request_origin(request))
        except services.ConsoleError as exc:
            form.add_error("username", exc.message)
        else:
            form = None
    return render(request, "console/users.html", users_context(request, create_form=form, new_user=new_user))


def _act(request, action, done: str):
    """Runs a service call and tells the admin how it went, on the Users page."""
    try:
        action()
    except services.ConsoleError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("users")


@admin_required
@require_POST
def user_role(request, pk):
    person, form = find_user(pk), RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a role: admin, member or auditor.")
        return redirect("users")
    role = form.cleaned_data["role"]
    return _act(request, lambda: services.set_role(user=person, role=role, actor=request.user,
                                                   origin=request_origin(request)),
                f"{person.username} is now {role}.")


@admin_required
@require_POST
def user_deactivate(request, pk):
    person = find_user(pk)
    return _act(request, lambda: services.deactivate_user(user=person, actor=request.user,
                                                          origin=request_origin(request)),
                f"{person.username} is deactivated: signed out, keys stopped.")


@admin_required
@require_POST
def user_reactivate(request, pk):
    person = find_user(pk)
    return _act(request, lambda: services.reactivate_user(user=person, actor=request.user,
                                                          origin=request_origin(request)),
                f"{person.username} is active again.")


@admin_required
@require_POST
def user_limits(request, pk):
    person, form = find_user(pk), LimitsForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Limits of {person.username}: each is a whole number of at least 1, or empty.")
        return redirect("users")
    return _act(request, lambda: services.set_user_limits(user=person, actor=request.user,
                                                          origin=request_origin(request), **form.cleaned_data),
                f"Limits of {person.username} saved.")


@admin_required
@require_POST
def team_create(request):
    form = TeamForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the team a name.")
        return redirect("users")
    name = form.cleaned_data["name"]
    return _act(request, lambda: services.create_team(name=name, actor=request.user,
                                                      origin=request_origin(request)),
                f"Team {name} created.")


@admin_required
@require_POST
def team_add(request, pk):
    team = get_object_or_404(Team, pk=pk)
    form = TeamMemberForm(request.POST, team=team)
    if not form.is_valid():
        messages.error(request, f"Choose someone to add to {team.name}.")
        return redirect("users")
    person = form.cleaned_data["user"]
    return _act(request, lambda: services.add_team_member(team=team, user=person, actor=request.user,
                                                          origin=request_origin(request)),
                f"{person.username} added to {team.name}.")


@admin_required
@require_POST
def team_remove(request, pk, user_pk):
    team, person = get_object_or_404(Team, pk=pk), find_user(user_pk)
    return _act(request, lambda: services.remove_team_member(team=team, user=person, actor=request.user,
                                                             origin=request_origin(request)),
                f"{person.username} removed from {team.name}.")
