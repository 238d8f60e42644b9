"""Starting and stopping Lanthorn's processes: used by `make run`, the tests and the benchmarks."""

import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PR_SET_PDEATHSIG = 1


def _killed_with(parent: int, libc) -> None:
    """SIGKILL for this process when `parent` ends, however it ends (a signal, a crash, SIGKILL);
    an exit now if it has ended already."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(1)


def die_with_parent():
    """A `preexec_fn`: the child gets SIGKILL when the process that started it ends: no child
    outlives `make run`, a test run or a benchmark. Each child also leads a process group of its
    own, which `stop` and `kill` signal whole."""
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, not in the child
    return lambda: _killed_with(parent, libc)


def die_with_supervisor() -> None:
    """In a web process that uvicorn's supervisor started (`--workers`): SIGKILL when the supervisor
    ends, as `die_with_parent` gives the supervisor itself. Elsewhere, nothing."""
    import multiprocessing

    supervisor = multiprocessing.parent_process()
    if supervisor is not None:
        _killed_with(supervisor.pid, ctypes.CDLL(None, use_errno=True))


def spawn(args: list, *, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=BASE_DIR, env=env, start_new_session=True, preexec_fn=die_with_parent(),
                            **kwargs)


def start_worker(*, env: dict | None = None, loglevel: str = "INFO", models: list[str] | None = None,
                 index: int = 0, jobs: bool = False, stderr=None) -> subprocess.Popen:
    """`lanthorn worker`: for every model, or for `models` only; worker `index` (0, 1, ...) serves the
    models whose `max_workers` is more than its index; or (`jobs`) the worker of background jobs:
    pulls and checks."""
    only = ["--jobs"] if jobs else ["--index", str(index), *(["--models", ",".join(models)] if models else [])]
    return spawn([sys.executable, "-m", "lanthorn.cli", "worker", "--loglevel", loglevel, *only], env=env,
                 stderr=stderr)


def start_server(*, host: str, port: int, env: dict | None = None, stderr=None, web_processes: int = 1
                 ) -> subprocess.Popen:
    """uvicorn: one process, or `web_processes` behind one port under a supervising one (all in one
    process group, which `stop` and `kill` signal whole)."""
    several = ["--workers", str(web_processes)] if web_processes > 1 else []
    return spawn([sys.executable, "-m", "uvicorn", "lanthorn.asgi:application", "--host", host, "--port", str(port),
                  "--no-access-log", "--log-level", "warning", *several], env=env, stderr=stderr)


def start_grpc(*, host: str, port: int, env: dict | None = None) -> subprocess.Popen:
    return spawn([sys.executable, "-m", "lanthorn.cli", "grpc", "--host", host, "--port", str(port)], env=env)


def wait_healthy(url: str, procs: list[subprocess.Popen], timeout: float = 120, *,
                 need_worker: bool = True) -> None:
    """Waits until GET url/readyz answers 200 (the database, Redis and a worker for each active
    model), or without `need_worker` until GET url/healthz does (the server answers);
    RuntimeError, with the last reason, if a process dies or time runs out."""
    deadline = time.monotonic() + timeout
    reason = "no answer"
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(map(str, proc.args[:4]))} exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + ("/readyz" if need_worker else "/healthz"), timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            reason = exc.read().decode(errors="replace")[:500]
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready in {timeout:.0f} s ({reason})")


def clear_metrics(directory: Path) -> None:
    """Empties prometheus_client's multi-process directory: at launch, before any process writes
    to it, so that counts from processes of an earlier run do not linger."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.glob("*.db"):
        path.unlink(missing_ok=True)


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
