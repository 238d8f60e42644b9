"""Worker presence: each worker process marks itself alive in Redis, with a small JSON value
saying what it does (its kind, Celery hostname, state and loaded models); the web side asks who is."""

import json
import os
import socket
import time

from django.conf import settings

from core.redis import redis_client

WORKER_KEY = "lanthorn:worker:{}"
INFERENCE, JOBS = "inference", "jobs"  # a worker's kind: model queues, or the background jobs queue


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(*, worker: str, info: dict | None = None) -> None:
    """Marks this worker alive for the next LANTHORN_HEARTBEAT_TTL seconds; `info` is what the
    dashboard shows of it (e.g. {"kind": "inference", "state": "idle", "models": [...]})."""
    value = json.dumps({**(info or {}), "at": int(time.time())})
    redis_client().set(WORKER_KEY.format(worker), value, ex=settings.LANTHORN_HEARTBEAT_TTL)


def forget(*, worker: str) -> None:
    """A worker that stops cleanly says so at once."""
    redis_client().delete(WORKER_KEY.format(worker))


def worker_alive(*, worker: str | None) -> bool:
    """Whether this worker (any inference worker, for None) sent a heartbeat lately."""
    if worker is None:
        return bool(live_workers(kind=INFERENCE))
    return bool(redis_client().exists(WORKER_KEY.format(worker)))


def live_workers(*, kind: str | None = None) -> list[str]:
    """The names of the workers alive now (of one kind, if given)."""
    if kind is None:
        prefix = WORKER_KEY.format("")
        return [k.decode()[len(prefix):] for k in redis_client().scan_iter(match=prefix + "*")]
    return [name for name, info in worker_info().items() if info.get("kind", INFERENCE) == kind]


def worker_info() -> dict[str, dict]:
    """Each live worker's name → the info of its latest heartbeat."""
    prefix = WORKER_KEY.format("")
    client = redis_client()
    keys = list(client.scan_iter(match=prefix + "*"))
    values = client.mget(keys) if keys else []
    workers = {}
    for key, value in zip(keys, values):
        if value is None:  # expired between the scan and the read
            continue
        try:
            info = json.loads(value)
        except ValueError:
            info = {}
        workers[key.decode()[len(prefix):]] = info if isinstance(info, dict) else {}
    return dict(sorted(workers.items()))
