"""Who may open a console page: decorators for views, by role (console.roles)."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from console import roles


def role_required(*allowed: str, message: str = "Your role does not give access to this page."):
    """Signed-in people with one of the `allowed` roles: anonymous people go to the login page,
    others get a 403."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapper(request, *args, **kwargs):
            if roles.role_of(request.user) not in allowed:
                raise PermissionDenied(message)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


admin_required = role_required(roles.ADMIN, message="Only an admin can do this.")
# The playground and API keys: auditors read usage, they run no models and see no prompts.
members_only = role_required(roles.ADMIN, roles.MEMBER,
                             message="Auditors read usage; the playground and API keys are for members.")


def navigation(request) -> dict:
    """Template context: the signed-in person's role and the console sections it opens."""
    role = roles.role_of(getattr(request, "user", None))
    return {
        "role": role,
        "nav": {
            "dashboard": role is not None,
            "usage": role is not None,  # members read their own rows
            "models": role is not None,
            "jobs": role == roles.ADMIN,
            "playground": role in (roles.ADMIN, roles.MEMBER),
            "keys": role in (roles.ADMIN, roles.MEMBER),
            "users": role == roles.ADMIN,
            "audit": role in (roles.ADMIN, roles.AUDITOR),
        },
    }
