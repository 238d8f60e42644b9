"""The `lanthorn` command: `lanthorn run`, `lanthorn keys create --name NAME`, `lanthorn list`, ...

Each command is a thin shell over the apps' services. A failing command exits
non-zero with a one-line reason on stderr.
"""

import argparse
import os
import sys
from pathlib import Path


class CommandError(Exception):
    pass


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanthorn.settings")
    import django

    django.setup()


def cmd_run(args) -> None:
    from lanthorn import launcher

    launcher.main()


def cmd_setup(args) -> None:
    from lanthorn.launcher import setup

    password = setup()
    print(f"Admin login: admin / {password}" if password else "Set up; the admin user exists already.")


def cmd_worker(args) -> None:
    from registry.models import Model

    queues = ",".join(["lanthorn", *(m.queue for m in Model.objects.all())])
    os.execv(sys.executable, [sys.executable, "-m", "celery", "-A", "lanthorn", "worker",
                              "--pool", "threads", "--concurrency", str(args.concurrency),
                              "--queues", queues, "--loglevel", args.loglevel,
                              "--hostname", f"lanthorn-{os.getpid()}@%h", "--without-gossip",
                              "--without-mingle"])


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


def cmd_list(args) -> None:
    from registry.models import Model

    for model in Model.objects.select_related("active_version"):
        v = model.active_version
        detail = f"v{v.number}  {v.digest[:12]}  {v.size / 1e6:.0f} MB  {v.architecture} {v.quantization}" if v else "no active version"
        print(f"{model.name:24} {detail}")


def cmd_import(args) -> None:
    from registry.gguf_info import NotGGUF
    from registry.services import import_file

    path = Path(args.path)
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    try:
        version = import_file(name=args.name, path=path, sha256=args.sha256)
    except NotGGUF as exc:
        raise CommandError(str(exc)) from exc
    print(f"{version} is active ({version.architecture} {version.quantization}, {version.digest[:12]})")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lanthorn", description="Lanthorn, a self-hosted LLM server.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="set up and run server, worker and Redis").set_defaults(func=cmd_run, django=False)
    sub.add_parser("setup", help="migrate, create the admin user, install the default model").set_defaults(func=cmd_setup)
    w = sub.add_parser("worker", help="run an inference worker")
    w.add_argument("--concurrency", type=int, default=4)
    w.add_argument("--loglevel", default="INFO")
    w.set_defaults(func=cmd_worker)
    sub.add_parser("list", help="list installed models").set_defaults(func=cmd_list)
    imp = sub.add_parser("import", help="add a local GGUF file as a new version of a model")
    imp.add_argument("name")
    imp.add_argument("path")
    imp.add_argument("--sha256", help="refuse the file unless it has this digest")
    imp.set_defaults(func=cmd_import)
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create an API key (printed once, on the last line)")
    create.add_argument("--name", required=True)
    create.add_argument("--user", help="owner (default: the first admin)")
    create.set_defaults(func=cmd_keys_create)
    keys.add_parser("list", help="list API keys").set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke an API key")
    revoke.add_argument("prefix", help="the key's first characters, as `keys list` shows them")
    revoke.set_defaults(func=cmd_keys_revoke)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if getattr(args, "django", True):
            _setup_django()
        args.func(args)
    except CommandError as exc:
        print(f"lanthorn: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        print(f"lanthorn: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
