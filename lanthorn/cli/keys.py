"""`lanthorn keys create|list|revoke`: API keys."""

from lanthorn.cli.base import CommandError


def cmd_keys_create(args) -> None:
    from django.contrib.auth import get_user_model

    from console.services import create_api_key

    User = get_user_model()
    if args.user:
        user = User.objects.filter(username=args.user).first()
        if user is None:
            raise CommandError(f"no user named {args.user!r}")
    else:
        user = User.objects.filter(is_superuser=True).order_by("pk").first()
        if user is None:
            raise CommandError("no admin user yet: run `make run` once, or pass --user")
    new = create_api_key(user=user, name=args.name)
    print(f"Created key {args.name!r} for {user.username}. It is shown only now; store it safely:")
    print(new.raw)


def cmd_keys_list(args) -> None:
    from console.models import ApiKey

    for key in ApiKey.objects.select_related("user"):
        state = "revoked" if key.revoked_at else "active"
        print(f"{key.prefix}…  {key.name:20}  {key.user.username:12}  {state}")


def cmd_keys_revoke(args) -> None:
    from console.models import ApiKey
    from console.services import revoke_api_key

    keys = list(ApiKey.objects.filter(prefix__startswith=args.prefix[:10]))
    if len(keys) != 1:
        raise CommandError(f"{len(keys)} keys start with {args.prefix!r}; give one key's prefix")
    revoke_api_key(key=keys[0])
    print(f"Revoked {keys[0]}")


def register(sub) -> None:
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create an API key (printed once, on the last line)")
    create.add_argument("--name", required=True)
    create.add_argument("--user", help="owner (default: the first admin)")
    create.set_defaults(func=cmd_keys_create)
    keys.add_parser("list", help="list API keys").set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke an API key")
    revoke.add_argument("prefix", help="the key's first characters, as `keys list` shows them")
    revoke.set_defaults(func=cmd_keys_revoke)
