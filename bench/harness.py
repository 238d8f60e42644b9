"""What the benchmarks share: Lanthorn started as `make run` starts it, on a throwaway database,
and a minimal streaming client (http.client and one json.loads a chunk: the client's CPU time is
taken from the model's threads on a small machine)."""

import atexit
import contextlib
import http.client
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lanthorn import processes, redis_server  # noqa: E402

MODEL = "gemma3-270m"


@dataclass
class Lanthorn:
    url: str
    key: str
    model_path: Path
    workers: list[int]  # the worker processes' ids


@dataclass
class _Base:
    """What every `lanthorn()` of one bench process shares: Django is set up once per process, so
    its database, Redis and API key are made once, and each run only sets the model's config."""

    tmp: tempfile.TemporaryDirectory
    redis: object  # the private redis-server's process, or None for REDIS_URL's
    key: str
    defaults: dict  # the model's config as installed, restored before each run's own


_base: _Base | None = None


def _setup() -> _Base:
    global _base
    if _base is not None:
        return _base
    tmp = tempfile.TemporaryDirectory(prefix="lanthorn-bench-")
    redis = None
    if not os.environ.get("REDIS_URL"):
        redis, os.environ["REDIS_URL"] = redis_server.start_private(Path(tmp.name) / "redis")
    os.environ["DATABASE_URL"] = f"sqlite:///{tmp.name}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanthorn.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from console.services import create_api_key
    from registry.models import CONFIG_FIELDS, Model
    from registry.services import install_default_model

    call_command("migrate", verbosity=0)
    install_default_model()
    model = Model.objects.get(name=MODEL)
    user = get_user_model().objects.create_user("bench")
    _base = _Base(tmp=tmp, redis=redis, key=create_api_key(user=user, name="bench").raw,
                  defaults={field: getattr(model, field) for field in CONFIG_FIELDS})
    atexit.register(_teardown)
    return _base


def _teardown() -> None:
    if _base.redis is not None:
        processes.stop([_base.redis])
    _base.tmp.cleanup()


@contextlib.contextmanager
def lanthorn(*, threads: int, workers: int = 1, **config):
    """Lanthorn with the default model (`threads` threads, and any load config in `config`); a
    process may start it several times, one after another."""
    base = _setup()
    from django.conf import settings

    from registry.models import Model

    Model.objects.filter(name=MODEL).update(**{**base.defaults, "n_threads": threads, **config})
    model = Model.objects.get(name=MODEL)
    children = []
    try:
        port = redis_server.free_port()
        url = f"http://127.0.0.1:{port}"
        started = [processes.start_worker(loglevel="WARNING", index=i) for i in range(workers)]
        children.extend(started)
        children.append(processes.start_server(host="127.0.0.1", port=port,
                                               web_processes=settings.LANTHORN_WEB_PROCESSES))
        processes.wait_healthy(url, children[-1 - workers:])
        yield Lanthorn(url=url, key=base.key, model_path=model.active_version.path,
                       workers=[p.pid for p in started])
    finally:
        processes.stop(children)


@dataclass
class Run:
    ttft: float  # seconds from sending to the first text
    tokens: int  # text chunks received
    start: float
    end: float
    text: str
    headers: dict


def stream(url: str, path: str, body: dict, *, key: str = "") -> Run:
    """One streaming request (OpenAI completions or chat); counts the SSE chunks that carry text."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=300)
    times, parts = [], []
    start = time.perf_counter()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    connection.request("POST", path, body=json.dumps({**body, "stream": True}), headers=headers)
    response = connection.getresponse()
    assert response.status == 200, response.read()
    while line := response.readline():
        if not line.startswith(b"data: {"):
            continue
        choices = json.loads(line[6:]).get("choices")
        piece = (choices[0].get("text") or choices[0].get("delta", {}).get("content")) if choices else ""
        if piece:
            parts.append(piece)
            times.append(time.perf_counter())
    end = time.perf_counter()
    connection.close()
    return Run(ttft=(times[0] - start) if times else float("nan"), tokens=len(times), start=start, end=end,
               text="".join(parts), headers={k.lower(): v for k, v in response.getheaders()})


def load() -> str:
    """The machine's load average, to print next to every figure."""
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
