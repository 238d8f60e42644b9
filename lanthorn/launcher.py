"""`make run`: everything a fresh machine needs, in the foreground; Ctrl-C stops it all.

However the launcher ends (Ctrl-C, SIGTERM, SIGHUP, a crash, SIGKILL) its children end with it
(`processes.die_with_parent`). A worker that dies is restarted with back-off; the server stays up.

Redis: REDIS_URL if set, else one on 127.0.0.1:6379 (a database chosen by LANTHORN_HOME),
else a private redis-server.
Then migrate, the admin user, the default model, the inference worker, the jobs worker
(pulls, checks), the ASGI server and the gRPC server.
"""

import io
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
    """The Redis this run uses, said in one line (its password hidden): REDIS_URL's, the one found
    answering on 127.0.0.1:6379, or a private one started here."""
    from lanthorn import redis_server

    url = os.environ.get("REDIS_URL")
    if url:
        if not redis_server.ping(url):
            raise LaunchError(f"REDIS_URL={redis_server.masked(url)} does not answer (a wrong password "
                              f"does not answer either)")
        print(f"Redis: {redis_server.masked(url)}, from REDIS_URL (found running; Lanthorn did not start it)",
              flush=True)
        return url
    url = redis_server.default_url(home)
    if redis_server.ping(url):
        print(f"Redis: {redis_server.masked(url)}, found running on that port and used (Lanthorn did not start "
              f"it; set REDIS_URL to choose another)", flush=True)
        return url
    try:
        proc, url = redis_server.start_private(home / "redis")
    except RuntimeError as exc:
        raise LaunchError(str(exc)) from exc
    children.append(proc)
    print(f"Redis: {url}, started by Lanthorn (private: loopback only, nothing kept on disk, stops with "
          f"Lanthorn)", flush=True)
    return url


class Worker:
    """One of the launcher's workers (the inference worker, or with `jobs` the jobs worker):
    restarted with back-off when it dies, while the server stays up."""

    FIRST_BACKOFF, MAX_BACKOFF, STEADY = 1.0, 30.0, 60.0

    def __init__(self, *, index: int = 0, jobs: bool = False) -> None:
        self.index, self.jobs = index, jobs
        self.label = "the jobs worker" if jobs else "the worker"
        self.backoff = self.FIRST_BACKOFF
        self.proc = self._start()
        self.restart_at: float | None = None

    def _start(self) -> subprocess.Popen:
        self.started = time.monotonic()
        return processes.start_worker(index=self.index, jobs=self.jobs)

    def tend(self) -> None:
        """Called every half second: notices a death, restarts when its back-off is over."""
        now = time.monotonic()
        if self.restart_at is None and self.proc.poll() is not None:
            from core.workers import forget

            try:  # its requests (or jobs) fail at once instead of when its heartbeat expires
                forget(worker=f"{socket.gethostname()}:{self.proc.pid}", models=[] if self.jobs else None)
            except Exception:
                pass
            if now - self.started > self.STEADY:
                self.backoff = self.FIRST_BACKOFF
            print(f"lanthorn: {self.label} exited with status {self.proc.returncode}; restarting it in "
                  f"{self.backoff:.0f} s", file=sys.stderr, flush=True)
            self.restart_at = now + self.backoff
            self.backoff = min(self.backoff * 2, self.MAX_BACKOFF)
        if self.restart_at is not None and now >= self.restart_at:
            self.restart_at = None
            self.proc = self._start()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def setup() -> str | None:
    """Migrate, create the admin once and install the default model once (Django set up).
    Returns the admin password when it was just made."""
    from django.core.management import call_command

    from console.services import ensure_admin
    from registry.services import install_default_model

    call_command("migrate", interactive=False, verbosity=0)
    call_command("check", fail_level="ERROR", stdout=io.StringIO())  # Django's checks, which workers skip
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
    grpc_host = os.environ.get("LANTHORN_GRPC_HOST") or host
    try:
        grpc_port = int(os.environ.get("LANTHORN_GRPC_PORT", "50051"))
    except ValueError:
        sys.exit(f"LANTHORN_GRPC_PORT={os.environ['LANTHORN_GRPC_PORT']!r} is not a port number")
    if not _port_free(grpc_host, grpc_port):
        sys.exit(f"Port {grpc_port} on {grpc_host} is already in use: set LANTHORN_GRPC_PORT to a free port.")
    home = Path(os.environ.get("LANTHORN_HOME", BASE_DIR / "var")).resolve()
    # Every process of this run writes its metrics here (see lanthorn/settings.py); a fresh start.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(home / "metrics"))
    processes.clear_metrics(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    children: list[subprocess.Popen] = []
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even where a shell ignored it
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)  # the terminal closed
    try:
        os.environ["REDIS_URL"] = _redis(children, home)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanthorn.settings")
        import django

        try:
            django.setup()
        except ValueError as exc:  # a setting with a bad value names its variable
            raise LaunchError(f"configuration: {exc}") from exc
        password = setup()
        from django.conf import settings
        from django.db.models import Max

        from registry.models import Model

        # As many workers as a model wants (`max_workers`), and the jobs worker (pulls and checks
        # never take a model's threads); each one restarted when it dies.
        workers = [Worker(index=i) for i in range(Model.objects.aggregate(n=Max("max_workers"))["n"] or 1)]
        workers.append(Worker(jobs=True))
        server = processes.start_server(host=host, port=port, web_processes=settings.LANTHORN_WEB_PROCESSES)
        grpc = processes.start_grpc(host=grpc_host, port=grpc_port)
        others = children[:]  # Redis, when private
        children += [*(w.proc for w in workers), server, grpc]
        url = f"http://{host}:{port}"
        try:
            processes.wait_healthy(url, children)
        except RuntimeError as exc:
            raise LaunchError(str(exc)) from exc
        print(f"\nLanthorn is running: {url}/", flush=True)
        print(f"  OpenAI API base URL: {url}/v1   (create a key: .venv/bin/lanthorn keys create --name NAME)")
        print(f"  Ollama API: {url}   WebSocket API: ws://{host}:{port}/ws/v1/chat   gRPC: {grpc_host}:{grpc_port}")
        if password:
            print(f"  Admin login: admin / {password}   (shown once; stored hashed)")
        else:
            print("  Admin login: admin (password shown at first run; change it with "
                  "`.venv/bin/python manage.py changepassword admin`)")
        print("Press Ctrl-C to stop.", flush=True)
        while all(proc.poll() is None for proc in [*others, server, grpc]):
            for worker in workers:
                worker.tend()
            children[:] = [*others, *(w.proc for w in workers), server, grpc]
            time.sleep(0.5)
        raise LaunchError("the server, the gRPC server or Redis stopped; shutting down")
    except KeyboardInterrupt:
        print("\nStopping Lanthorn...", flush=True)
    except LaunchError as exc:
        print(f"lanthorn: {exc}", file=sys.stderr, flush=True)
        processes.stop(children)
        sys.exit(1)
    finally:
        processes.stop(children)
