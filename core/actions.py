"""Administrative acts, announced once where they happen, for whoever keeps the trail.

A service that does something an auditor may ask about (a key created, a role changed, a model
activated, a sign-in) calls `announce(...)`. The audit app listens to `action_done` and records
the event; apps that act never import the audit app, so the arrows keep pointing down.
Action names are dotted and stable: `key.create`, `user.role`, `model.activate`, `auth.login`, ...

Who acts and from where is the current origin unless the call says otherwise: `OriginMiddleware`
sets it for each console or API request (the user and key are read when the act is announced,
after DRF has authenticated the request), the `lanthorn` command sets it for the OS user running it.
"""

from contextlib import contextmanager
from contextvars import ContextVar

from django.dispatch import Signal

# Sent with: action, actor (a user or None), actor_username (when there is no user: "os:NAME"),
# api_key (or None), target, outcome, details, source_ip, user_agent, content (a request's prompt
# and answer, or None; the audit app stores it only when content logging is on).
action_done = Signal()

_origin: ContextVar[dict | None] = ContextVar("lanthorn_origin", default=None)


def announce(action: str, *, actor=None, api_key=None, target: str = "", outcome: str = "ok",
             details: dict | None = None, source_ip: str = "", user_agent: str = "", content=None) -> None:
    origin = current_origin()
    action_done.send(sender=None, action=action, actor=actor or origin.get("actor"),
                     actor_username=origin.get("actor_username", ""), api_key=api_key or origin.get("api_key"),
                     target=target, outcome=outcome, details=details or {},
                     source_ip=source_ip or origin.get("source_ip", ""),
                     user_agent=user_agent or origin.get("user_agent", ""), content=content)


@contextmanager
def announced(action: str, *, target: str = "", details: dict | None = None, **fields):
    """Announces `action` when the block ends: ok, or error (with the message) if it raises.
    The block may add to the dict it gets (`as details`)."""
    details = dict(details or {})
    try:
        yield details
    except Exception as exc:
        announce(action, target=target, outcome="error",
                 details={**details, "error": getattr(exc, "message", None) or str(exc)}, **fields)
        raise
    announce(action, target=target, details=details, **fields)


def current_origin() -> dict:
    origin = _origin.get()
    if origin is None:
        return {}
    request = origin.get("request")
    if request is None:
        return origin
    user = getattr(request, "user", None)
    key = getattr(request, "auth", None)  # DRF puts the API key there
    return {**request_origin(request),
            "actor": user if user is not None and user.is_authenticated else None,
            "api_key": key if hasattr(key, "prefix") else None}


@contextmanager
def acting(**origin):
    """Acts inside the block come from `origin` (actor, actor_username, api_key, source_ip, user_agent)."""
    token = _origin.set(origin)
    try:
        yield
    finally:
        _origin.reset(token)


class OriginMiddleware:
    """Makes each request the origin of the acts its view announces."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with acting(request=request):
            return self.get_response(request)


def request_origin(request) -> dict:
    """`source_ip` and `user_agent` of a Django request, for `announce(**request_origin(request))`."""
    if request is None:
        return {}
    return {"source_ip": request.META.get("REMOTE_ADDR", "") or "",
            "user_agent": request.META.get("HTTP_USER_AGENT", "")[:300]}


def scope_origin(scope) -> dict:
    """`source_ip` and `user_agent` of an ASGI scope (a Channels consumer's request)."""
    client = scope.get("client") or ("",)
    agent = dict(scope.get("headers") or []).get(b"user-agent", b"").decode("latin-1")
    return {"source_ip": client[0] or "", "user_agent": agent[:300]}
