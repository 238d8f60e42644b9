"""What the audit trail listens to: every announced act (core.actions), and Django's sign-in signals."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit import services
from core.actions import action_done, request_origin


@receiver(action_done, dispatch_uid="audit.record")
def record_action(sender, **event) -> None:
    event.pop("signal", None)
    services.record(**event)


@receiver(user_logged_in, dispatch_uid="audit.login")
def record_login(sender, request, user, **kwargs) -> None:
    services.record(action="auth.login", actor=user, target=user.get_username(), **request_origin(request))


@receiver(user_login_failed, dispatch_uid="audit.login_failed")
def record_login_failed(sender, credentials, request=None, **kwargs) -> None:
    username = str(credentials.get("username", ""))[:150]
    services.record(action="auth.login_failed", target=username, outcome="error",
                    **request_origin(request))


@receiver(user_logged_out, dispatch_uid="audit.logout")
def record_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        services.record(action="auth.logout", actor=user, target=user.get_username(), **request_origin(request))
