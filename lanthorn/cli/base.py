"""What every `lanthorn` command shares: its error type, and who it acts as."""


class CommandError(Exception):
    pass


def user(username: str | None, *, required: bool = True):
    """The user a command acts as: --user, else the first admin."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    user = (users.filter(username=username) if username else
            users.filter(is_superuser=True).order_by("pk")).first()
    if user is None and (required or username):
        raise CommandError(f"no user named {username!r}" if username else
                           "no admin user yet: run `make run` once, or pass --user")
    return user


def size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000

