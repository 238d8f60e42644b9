"""`lanthorn run` (what `make run` runs), driven for real: its children end with it however it
ends, and a worker that dies is restarted while the server stays up."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from lanthorn import launcher, processes, redis_server

LONG = {"model": "gemma3-270m", "prompt": "1, 2, 3, 4, 5, 6, 7,", "temperature": 0, "max_tokens": 3000,
        "stream": True}


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def the_worker(pid: int) -> int | None:
    """The inference worker (not the jobs worker, whose Celery hostname is lanthorn-jobs-...)."""
    return next((c for c in children(pid) if b"celery" in cmdline(c) and b"lanthorn-jobs" not in cmdline(c)), None)


class Launched:
    def __init__(self, tmp_path: Path, *, redis_password: str | None = None):
        self.redis, redis_url = redis_server.start_private(tmp_path / "redis", password=redis_password)
        self.redis_url = redis_url
        port = redis_server.free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, "LANTHORN_PORT": str(port), "LANTHORN_HOME": str(tmp_path / "home"),
                    "REDIS_URL": redis_url, "LANTHORN_ADMIN_PASSWORD": "a-password-for-tests",
                    "LANTHORN_GRPC_PORT": str(redis_server.free_port()),
                    "PYTHONUNBUFFERED": "1"}
        self.env.pop("DATABASE_URL", None)
        self.log = tmp_path / "launcher.log"
        with open(self.log, "w") as log:
            self.proc = processes.spawn([sys.executable, "-m", "lanthorn.cli", "run"], env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT)
        try:
            processes.wait_healthy(self.url, [self.proc], timeout=240)
        except RuntimeError:
            self.stop()
            raise AssertionError(self.log.read_text()[-3000:]) from None

    def key(self) -> str:
        out = subprocess.run([sys.executable, "-m", "lanthorn.cli", "keys", "create", "--name", "test"],
                             env=self.env, cwd=processes.BASE_DIR, capture_output=True, text=True, timeout=60,
                             check=True)
        return out.stdout.strip().splitlines()[-1].split()[-1]

    def stop(self) -> None:
        kids = children(self.proc.pid)
        processes.stop([self.redis, self.proc])
        for pid in kids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGKILL])
def test_the_launchers_children_end_with_it(tmp_path, sig):
    launched = Launched(tmp_path)
    try:
        kids = children(launched.proc.pid)
        assert len(kids) == 4  # the worker, the jobs worker, the ASGI server and the gRPC server (Redis is the test's)
        server = next(c for c in kids if b"uvicorn" in cmdline(c))
        helpers = children(server)  # its web processes and multiprocessing's resource tracker
        assert len([c for c in helpers if b"spawn_main" in cmdline(c)]) == 2  # LANTHORN_WEB_PROCESSES' default
        kids += helpers
        os.kill(launched.proc.pid, sig)
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in kids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in kids if alive(pid)], f"orphans after {sig.name}"
        with pytest.raises(httpx.HTTPError):
            httpx.get(launched.url + "/healthz", timeout=2)
    finally:
        launched.stop()


def test_a_killed_worker_is_restarted_and_its_request_fails_with_worker_lost(tmp_path):
    launched = Launched(tmp_path)
    try:
        key = launched.key()
        server = next(c for c in children(launched.proc.pid) if b"uvicorn" in cmdline(c))
        worker = the_worker(launched.proc.pid)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.stream("POST", launched.url + "/v1/completions", json=LONG, headers=headers, timeout=60) as r:
            lines = r.iter_lines()
            assert next(lines).startswith("data: {")
            os.kill(worker, signal.SIGKILL)
            killed = time.monotonic()
            errors = [line for line in lines if '"error"' in line]
            failed_after = time.monotonic() - killed
        assert errors and '"worker_lost"' in errors[0]
        assert failed_after < 5, f"the request failed {failed_after:.1f} s after its worker died"

        deadline = time.monotonic() + 120
        while the_worker(launched.proc.pid) in (None, worker):
            assert time.monotonic() < deadline, "no new worker: " + launched.log.read_text()[-2000:]
            time.sleep(0.2)
        processes.wait_healthy(launched.url, [launched.proc], timeout=120)
        r = httpx.post(launched.url + "/v1/completions", headers=headers, timeout=60,
                       json={"model": "gemma3-270m", "prompt": "Hello", "max_tokens": 4})
        assert r.status_code == 200, r.text
        assert alive(server) and server in children(launched.proc.pid)  # the same server all along
        assert "restarting it" in launched.log.read_text()
    finally:
        launched.stop()


# Which Redis `lanthorn run` uses: it says so, and a password in REDIS_URL serves everything.

PASSWORD = "s3cret-pass"


def test_lanthorn_run_says_it_uses_redis_url_and_its_password_serves_the_web_the_workers_and_streams(tmp_path):
    launched = Launched(tmp_path, redis_password=PASSWORD)
    try:
        assert not redis_server.ping(launched.redis_url.replace(f":{PASSWORD}@", ""))  # it does ask for it
        # The key (the CLI), the request's queue (Celery), the worker's heartbeat and the streamed
        # answer (the channel layer) all go through that Redis.
        headers = {"Authorization": f"Bearer {launched.key()}"}
        body = {"model": "gemma3-270m", "prompt": "Hello", "max_tokens": 4, "stream": True}
        with httpx.stream("POST", launched.url + "/v1/completions", json=body, headers=headers, timeout=60) as r:
            assert r.status_code == 200
            lines = [line for line in r.iter_lines() if line]
        assert lines[-1] == "data: [DONE]" and not [line for line in lines if '"error"' in line]
        log = launched.log.read_text()
        port = launched.redis_url.rsplit(":", 1)[1].split("/")[0]
        assert (f"Redis: redis://:***@127.0.0.1:{port}/0, from REDIS_URL (found running; Lanthorn did not "
                f"start it)") in log
        assert PASSWORD not in log
    finally:
        launched.stop()


def test_the_launcher_says_it_found_a_redis_running_on_the_default_port(tmp_path, monkeypatch, capsys):
    proc, url = redis_server.start_private(tmp_path / "redis")
    try:
        monkeypatch.delenv("REDIS_URL", raising=False)
        monkeypatch.setattr(redis_server, "default_url", lambda home: url)
        children = []

        assert launcher._redis(children, tmp_path / "home") == url

        assert children == []  # not Lanthorn's to stop
        assert capsys.readouterr().out == (f"Redis: {url}, found running on that port and used (Lanthorn did not "
                                           f"start it; set REDIS_URL to choose another)\n")
    finally:
        processes.stop([proc])


def test_the_launcher_says_it_started_a_private_redis_when_none_answers(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setattr(redis_server, "default_url", lambda home: f"redis://127.0.0.1:{redis_server.free_port()}/0")
    children = []
    try:
        url = launcher._redis(children, tmp_path / "home")

        assert [redis_server.ping(url), len(children)] == [True, 1]
        assert capsys.readouterr().out == (f"Redis: {url}, started by Lanthorn (private: loopback only, nothing "
                                           f"kept on disk, stops with Lanthorn)\n")
    finally:
        processes.stop(children)


def test_the_launcher_refuses_a_redis_url_that_does_not_answer_without_showing_its_password(monkeypatch):
    port = redis_server.free_port()
    monkeypatch.setenv("REDIS_URL", f"redis://:{PASSWORD}@127.0.0.1:{port}/0")

    with pytest.raises(launcher.LaunchError) as caught:
        launcher._redis([], Path("/nonexistent"))

    assert str(caught.value).startswith(f"REDIS_URL=redis://:***@127.0.0.1:{port}/0 does not answer")
    assert PASSWORD not in str(caught.value)
