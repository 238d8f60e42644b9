"""Faults under load: 4 streaming clients for 2 minutes while the worker is SIGKILLed 3 times and
Redis is restarted once. Lanthorn runs as `make run` runs it (`lanthorn run`: the launcher, which
restarts a dead worker), on a throwaway SQLite database and a Redis this script owns.

Prints requests sent, completed, failed with a clear error (an OpenAI error object, as the HTTP
answer or as an SSE event), failed without one, hung (no end within --hang seconds; goal 0) and
without a usage row (goal 0), and for each fault the time until a request started after it
completed again.

    .venv/bin/python bench/faults.py [--seconds 120] [--clients 4] [--max-tokens 32] [--threads 1]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lanthorn import processes, redis_server  # noqa: E402


@dataclass
class Outcome:
    started: float
    ended: float
    kind: str  # completed, error, unclear, hung
    detail: str = ""


def one_request(url: str, key: str, args) -> Outcome:
    body = {"model": "gemma3-270m", "prompt": "Once upon a time", "max_tokens": args.max_tokens, "stream": True}
    started = time.monotonic()
    try:
        with httpx.stream("POST", url + "/v1/completions", json=body, headers={"Authorization": f"Bearer {key}"},
                          timeout=httpx.Timeout(10, read=args.hang)) as r:
            if r.status_code != 200:
                error = json.loads(r.read())["error"]
                return Outcome(started, time.monotonic(), "error", f"{r.status_code} {error['code']}")
            finish, error = None, None
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    event = json.loads(line[6:])
                    if "error" in event:
                        error = event["error"]["code"]
                    elif event.get("choices") and event["choices"][0].get("finish_reason"):
                        finish = event["choices"][0]["finish_reason"]
                elif line == "data: [DONE]":
                    break
            if error:
                return Outcome(started, time.monotonic(), "error", f"sse {error}")
            if finish:
                return Outcome(started, time.monotonic(), "completed", finish)
            return Outcome(started, time.monotonic(), "unclear", "the stream ended without [DONE] or an error")
    except httpx.ReadTimeout:
        return Outcome(started, time.monotonic(), "hung", f"nothing for {args.hang:.0f} s")
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return Outcome(started, time.monotonic(), "unclear", f"{type(exc).__name__}: {exc}")


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def worker_pid(launcher: int) -> int | None:
    """The launcher's inference worker (not its jobs worker, Celery hostname lanthorn-jobs-...)."""
    for pid in children(launcher):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"celery" in cmdline and b"lanthorn-jobs" not in cmdline:
                return pid
        except OSError:
            pass
    return None


def wait_for(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--hang", type=float, default=60, help="seconds of silence that count as hung")
    parser.add_argument("--threads", type=int, default=1, help="the model's n_threads")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="lanthorn-faults-")
    home = Path(tmp.name)
    redis_proc, redis_url = redis_server.start_private(home / "redis")
    redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    port = redis_server.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LANTHORN_HOME": str(home), "REDIS_URL": redis_url, "LANTHORN_PORT": str(port),
           "LANTHORN_GRPC_PORT": str(redis_server.free_port()),
           "DATABASE_URL": f"sqlite:///{home}/faults.sqlite3", "LANTHORN_ADMIN_PASSWORD": "faults-bench",
           "PYTHONUNBUFFERED": "1"}
    os.environ.update({k: env[k] for k in ("LANTHORN_HOME", "REDIS_URL", "DATABASE_URL")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanthorn.settings")
    # Set up first (what `lanthorn run` would do), so that the model can be given --threads before a
    # worker loads it: the figures here are about faults, and fewer threads keep a busy machine's
    # decode speed steady.
    for command in (["setup"], ["config", "gemma3-270m", "--set", f"n_threads={args.threads}"]):
        subprocess.run([sys.executable, "-m", "lanthorn.cli", *command], env=env, cwd=processes.BASE_DIR,
                       check=True, capture_output=True, timeout=600)
    log = open(home / "launcher.log", "w")
    launcher = processes.spawn([sys.executable, "-m", "lanthorn.cli", "run"], env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    outcomes: list[Outcome] = []
    faults: list[tuple[str, float]] = []
    try:
        processes.wait_healthy(url, [launcher], timeout=300)
        import django

        django.setup()
        from django.contrib.auth import get_user_model

        from console.models import UsageRecord
        from console.services import create_api_key

        key = create_api_key(user=get_user_model().objects.get(username="admin"), name="faults")
        start = time.monotonic()
        stop = start + args.seconds
        lock = threading.Lock()

        def client() -> None:
            while time.monotonic() < stop:
                outcome = one_request(url, key.raw, args)
                with lock:
                    outcomes.append(outcome)
                if outcome.kind != "completed":
                    time.sleep(0.5)  # a client backs off a little after a failure

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        redis_box = {"proc": redis_proc}

        def kill_worker() -> None:
            pid = worker_pid(launcher.pid)
            if pid is None:
                wait_for("a worker to kill", lambda: worker_pid(launcher.pid) is not None, 60)
                pid = worker_pid(launcher.pid)
            os.kill(pid, signal.SIGKILL)

        def restart_redis() -> None:
            processes.stop([redis_box["proc"]])
            redis_box["proc"], _ = redis_server.start_private(home / "redis", port=redis_port)

        schedule = [(0.15, "worker SIGKILL", kill_worker), (0.40, "worker SIGKILL", kill_worker),
                    (0.62, "Redis restart", restart_redis), (0.85, "worker SIGKILL", kill_worker)]
        for share, name, act in schedule:
            at = start + share * args.seconds
            time.sleep(max(0.0, at - time.monotonic()))
            faults.append((name, time.monotonic()))
            act()
        for t in threads:
            t.join(args.hang + 30)
        redis_proc = redis_box["proc"]
        time.sleep(1)  # the last rows are written just before the last events leave
        rows = UsageRecord.objects.filter(api_key=key.key).count()
    finally:
        processes.stop([launcher])
        processes.stop([redis_proc])
        log.close()

    counts = {kind: sum(1 for o in outcomes if o.kind == kind) for kind in ("completed", "error", "unclear", "hung")}
    sent = len(outcomes)
    print(f"faults.py: {args.clients} streaming clients for {args.seconds:.0f} s, max_tokens {args.max_tokens}, "
          f"n_threads {args.threads}; 3 worker SIGKILLs and 1 Redis restart")
    print(f"requests sent:                  {sent}")
    print(f"completed:                      {counts['completed']}")
    print(f"failed with a clear error:      {counts['error']}")
    print(f"failed without a clear error:   {counts['unclear']}")
    print(f"hung (goal 0):                  {counts['hung']}")
    print(f"without a usage row (goal 0):   {max(0, sent - rows)}   ({rows} rows for {sent} requests)")
    errors: dict[str, int] = {}
    for o in outcomes:
        if o.kind in ("error", "unclear", "hung"):
            errors[o.detail] = errors.get(o.detail, 0) + 1
    for detail, n in sorted(errors.items(), key=lambda e: -e[1]):
        print(f"    {n:4d} x {detail}")
    for name, at in faults:
        after = [o.ended for o in outcomes if o.kind == "completed" and o.started >= at]
        recovered = f"{min(after) - at:5.1f} s" if after else "never"
        failed = sum(1 for o in outcomes if o.kind != "completed" and o.started <= at <= o.ended)
        print(f"{name:16} at {at - start:5.1f} s: recovered in {recovered} (first request started after it "
              f"completed); {failed} requests in flight failed")


if __name__ == "__main__":
    main()
