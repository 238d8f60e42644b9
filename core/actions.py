"""Administrative acts, announced once where they happen, for whoever keeps the trail.

A service that does something an auditor may ask about (a key created, a role changed, a model
activated, a sign-in) calls `announce(...)`. The audit app listens to `action_done` and records
the event; apps that act never import the audit app, so the arrows keep pointing down.
Action names are dotted and stable: `key.create`, `user.role`, `model.activate`, `auth.login`, ...
"""

from django.dispatch import Signal

# Sent with: action, actor (a user or None), api_key (or None), target, outcome, details,
# source_ip, user_agent.
action_done = Signal()


def announce(action: str, *, actor=None, api_key=None, target: str = "", outcome: str = "ok",
             details: dict | None = None, source_ip: str = "", user_agent: str = "") -> None:
    action_done.send(sender=None, action=action, actor=actor, api_key=api_key, target=target,
                     outcome=outcome, details=details or {}, source_ip=source_ip, user_agent=user_agent)


def request_origin(request) -> dict:
    """`source_ip` and `user_agent` of a Django request, for `announce(**request_origin(request))`."""
    if request is None:
        return {}
    return {"source_ip": request.META.get("REMOTE_ADDR", "") or "",
            "user_agent": request.META.get("HTTP_USER_AGENT", "")[:300]}
