"""People's roles: admin (everything), member (playground, own keys, own usage), auditor (read-only:
usage, audit and exports; no prompts or keys).

An admin is a Django superuser; an auditor belongs to the `auditors` group; everyone else who
is active is a member. Views, APIs, consumers and CLI commands ask `role_of` or the `is_*`
helpers, never `is_staff`/`is_superuser` directly.
"""

from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Exists, OuterRef

ADMIN, MEMBER, AUDITOR = "admin", "member", "auditor"
ROLES = (ADMIN, MEMBER, AUDITOR)
AUDITORS_GROUP = "auditors"


def role_of(user) -> str | None:
    """The user's role, or None for someone not signed in or deactivated."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    return assigned_role(user)


def assigned_role(user) -> str:
    """The role given to a person, whether or not they are active (a deactivated person gets it
    back when reactivated)."""
    if user.is_superuser:
        return ADMIN
    auditor = getattr(user, "in_auditors", None)  # read with the user by `auditor_annotation`, if it was
    if auditor is None:
        auditor = any(group.name == AUDITORS_GROUP for group in user.groups.all())  # uses a prefetch if any
    return AUDITOR if auditor else MEMBER


def auditor_annotation(user_field: str) -> Exists:
    """For `.annotate(owner_in_auditors=...)`: whether the row's user is an auditor, read in the same
    query (an API request would otherwise spend a second query on it)."""
    return Exists(Group.objects.filter(name=AUDITORS_GROUP, user=OuterRef(user_field)))


def is_admin(user) -> bool:
    return role_of(user) == ADMIN


def can_audit(user) -> bool:
    """Admins and auditors read usage, the audit trail and exports."""
    return role_of(user) in (ADMIN, AUDITOR)


def set_role(*, user, role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    with transaction.atomic():
        group, _ = Group.objects.get_or_create(name=AUDITORS_GROUP)
        user.is_superuser = user.is_staff = role == ADMIN
        user.save(update_fields=["is_superuser", "is_staff"])
        if role == AUDITOR:
            user.groups.add(group)
        else:
            user.groups.remove(group)
