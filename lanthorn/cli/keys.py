"""`lanthorn keys create|list|limits|revoke`: API keys and their limits."""

import re
from datetime import timedelta

from lanthorn.cli.base import CommandError, user as find_user
from lanthorn.cli.users import limit_arguments

DURATION = re.compile(r"^(\d+)([hdw])$")
UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def expiry(text: str | None):
    """`30d`, `12h`, `2w` from now; None for no expiry."""
    from django.utils import timezone

    if not text:
        return None
    match = DURATION.match(text.strip())
    if match is None or int(match[1]) == 0:
        raise CommandError(f"--expires {text!r}: give a duration such as 12h, 30d or 2w")
    return timezone.now() + timedelta(**{UNITS[match[2]]: int(match[1])})


def models(text: str | None) -> list[str]:
    return [m.strip() for m in (text or "").split(",") if m.strip()]


def _key(prefix: str):
    from console.models import ApiKey

    keys = list(ApiKey.objects.select_related("user").filter(prefix__startswith=prefix[:10]))
    if len(keys) != 1:
        raise CommandError(f"{len(keys)} keys start with {prefix!r}; give one key's prefix")
    return keys[0]


def cmd_keys_create(args) -> None:
    from console.services import ConsoleError, create_api_key

    user = find_user(args.user)
    try:
        new = create_api_key(user=user, name=args.name, rpm=args.rpm, tokens_per_day=args.tokens_per_day,
                             concurrency=args.concurrency, models=models(args.models),
                             expires_at=expiry(args.expires))
    except ConsoleError as exc:
        raise CommandError(exc.message) from exc
    print(f"Created key {args.name!r} for {user.username} ({describe(new.key)}). "
          "It is shown only now; store it safely:")
    print(new.raw)


def describe(key) -> str:
    def limit(value, unit):
        return f"{value} {unit}" if value is not None else f"no {unit} limit"

    parts = [limit(key.rpm, "rpm"), limit(key.tokens_per_day, "tokens/day"), limit(key.concurrency, "concurrent"),
             "models: " + (",".join(key.allowed_models) or "all"),
             f"expires {key.expires_at:%Y-%m-%d %H:%M}" if key.expires_at else "no expiry"]
    return ", ".join(parts)


def cmd_keys_list(args) -> None:
    from console.models import ApiKey

    for key in ApiKey.objects.select_related("user"):
        state = "revoked" if key.revoked_at else "expired" if key.is_expired else \
            "active" if key.is_active else "owner deactivated"
        print(f"{key.prefix}…  {key.name:20}  {key.user.username:12}  {state:8}  {describe(key)}")


def cmd_keys_limits(args) -> None:
    from console.services import ConsoleError, set_key_limits

    key = _key(args.prefix)
    try:
        set_key_limits(key=key, rpm=args.rpm, tokens_per_day=args.tokens_per_day, concurrency=args.concurrency,
                       models=models(args.models), expires_at=expiry(args.expires))
    except ConsoleError as exc:
        raise CommandError(exc.message) from exc
    print(f"{key}: {describe(key)}")


def cmd_keys_revoke(args) -> None:
    from console.services import revoke_api_key

    key = _key(args.prefix)
    revoke_api_key(key=key)
    print(f"Revoked {key}")


def key_limit_arguments(parser) -> None:
    limit_arguments(parser)
    parser.add_argument("--models", help="comma-separated model names the key may use (default: all)")
    parser.add_argument("--expires", help="a duration from now: 12h, 30d, 2w (default: never)")


def register(sub) -> None:
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create an API key (printed once, on the last line)")
    create.add_argument("--name", required=True)
    create.add_argument("--user", help="owner (default: the first admin)")
    key_limit_arguments(create)
    create.set_defaults(func=cmd_keys_create)
    keys.add_parser("list", help="list API keys and their limits").set_defaults(func=cmd_keys_list)
    limits = keys.add_parser("limits", help="replace a key's limits (those not given: no limit)")
    limits.add_argument("prefix", help="the key's first characters, as `keys list` shows them")
    key_limit_arguments(limits)
    limits.set_defaults(func=cmd_keys_limits)
    revoke = keys.add_parser("revoke", help="revoke an API key")
    revoke.add_argument("prefix", help="the key's first characters, as `keys list` shows them")
    revoke.set_defaults(func=cmd_keys_revoke)
