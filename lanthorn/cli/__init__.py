"""The `lanthorn` command: `lanthorn run`, `lanthorn keys create --name NAME`, `lanthorn list`, ...

Each command is a thin shell over the apps' services. A failing command exits
non-zero with a one-line reason on stderr.
"""

import argparse
import getpass
import os
import sys


from lanthorn.cli import audit, doctor, grpc, keys, models, server, shell, users
from lanthorn.cli.base import CommandError

# Each module adds its subcommands; a new area of commands is a new module here.
COMMANDS = [server, models, shell, keys, users, audit, doctor, grpc]


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanthorn.settings")
    import django

    django.setup()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lanthorn", description="Lanthorn, a self-hosted LLM server.")
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if getattr(args, "django", True):
            _setup_django()
        from core.actions import acting

        # The audit trail records what a command does as the OS user who ran it.
        with acting(actor_username=f"os:{getpass.getuser()}", user_agent="lanthorn-cli"):
            args.func(args)
    except CommandError as exc:
        print(f"lanthorn: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # What the services raise (RegistryError, an inference ApiError) carries a message for users.
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        print(f"lanthorn: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
