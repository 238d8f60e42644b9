"""Starting and stopping Lanthorn's processes: used by `make run`, the tests and the benchmarks."""

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def start_worker(*, env: dict | None = None, loglevel: str = "INFO", jobs: bool = False) -> subprocess.Popen:
    """An inference worker, or (`jobs`) the worker of background jobs: pulls and checks."""
    return subprocess.Popen([sys.executable, "-m", "lanthorn.cli", "worker", "--loglevel", loglevel,
                             *(["--jobs"] if jobs else [])],
                            cwd=BASE_DIR, env=env, start_new_session=True)


def start_server(*, host: str, port: int, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "lanthorn.asgi:application", "--host", host, "--port", str(port),
         "--no-access-log", "--log-level", "warning"],
        cwd=BASE_DIR, env=env, start_new_session=True)


def wait_healthy(url: str, procs: list[subprocess.Popen], timeout: float = 120, *,
                 need_worker: bool = True) -> None:
    """Waits until GET url/healthz answers 200 (any answer, without `need_worker`: a server with
    no worker answers 503); RuntimeError if a process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(map(str, proc.args[:4]))} exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError:
            if not need_worker:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become healthy in {timeout:.0f} s")


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL, as a crash would."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def stop(procs: list[subprocess.Popen]) -> None:
    """Stops the processes one by one, the last started first (Redis, started first, goes last)."""
    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
