"""`make run`: everything a fresh machine needs, in the foreground; Ctrl-C stops it all.

Redis: REDIS_URL if set, else one on 127.0.0.1:6379 (a database chosen by LANTHORN_HOME),
else a private redis-server.
Then migrate, the admin user, the default model, the inference worker, the jobs worker
(pulls, checks) and the ASGI server.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from lanthorn import processes

BASE_DIR = Path(__file__).resolve().parent.parent


class LaunchError(Exception):
    pass


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _redis(children: list, home: Path) -> str:
    from lanthorn import redis_server

    url = os.environ.get("REDIS_URL")
    if url:
        if not redis_server.ping(url):
            raise LaunchError(f"REDIS_URL={url} does not answer")
        return url
    url = redis_server.default_url(home)
    if redis_server.ping(url):
        return url
    try:
        proc, url = redis_server.start_private(home / "redis")
    except RuntimeError as exc:
        raise LaunchError(str(exc)) from exc
    children.append(proc)
    print(f"Started a private Redis at {url}", flush=True)
    return url


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def setup() -> str | None:
    """Migrate, create the admin once and install the default model once (Django set up).
    Returns the admin password when it was just made."""
    from django.core.management import call_command

    from console.services import ensure_admin
    from registry.services import install_default_model

    call_command("migrate", interactive=False, verbosity=0)
    password = ensure_admin(password=os.environ.get("LANTHORN_ADMIN_PASSWORD") or None)
    if install_default_model():
        print("Installed the default model gemma3-270m (Gemma 3 270M Q4_K_M)", flush=True)
    return password


def main() -> None:
    host = os.environ.get("LANTHORN_HOST", "127.0.0.1")
    try:
        port = int(os.environ.get("LANTHORN_PORT", "8000"))
    except ValueError:
        sys.exit(f"LANTHORN_PORT={os.environ['LANTHORN_PORT']!r} is not a port number")
    if not _port_free(host, port):
        sys.exit(f"Port {port} on {host} is already in use: set LANTHORN_PORT to a free port.")
    home = Path(os.environ.get("LANTHORN_HOME", BASE_DIR / "var")).resolve()
    children: list[subprocess.Popen] = []
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even where a shell ignored it
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        os.environ["REDIS_URL"] = _redis(children, home)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanthorn.settings")
        import django

        django.setup()
        password = setup()
        children.append(processes.start_worker())
        children.append(processes.start_worker(jobs=True))  # pulls and checks never take a model's threads
        children.append(processes.start_server(host=host, port=port))
        url = f"http://{host}:{port}"
        try:
            processes.wait_healthy(url, children)
        except RuntimeError as exc:
            raise LaunchError(str(exc)) from exc
        print(f"\nLanthorn is running: {url}/", flush=True)
        print(f"  OpenAI API base URL: {url}/v1   (create a key: .venv/bin/lanthorn keys create --name NAME)")
        if password:
            print(f"  Admin login: admin / {password}   (shown once; stored hashed)")
        else:
            print("  Admin login: admin (password shown at first run; change it with "
                  "`.venv/bin/python manage.py changepassword admin`)")
        print("Press Ctrl-C to stop.", flush=True)
        while all(proc.poll() is None for proc in children):
            time.sleep(0.5)
        raise LaunchError("a Lanthorn process stopped; shutting down")
    except KeyboardInterrupt:
        print("\nStopping Lanthorn...", flush=True)
    except LaunchError as exc:
        print(f"lanthorn: {exc}", file=sys.stderr, flush=True)
        processes.stop(children)
        sys.exit(1)
    finally:
        processes.stop(children)
