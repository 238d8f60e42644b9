"""Worker presence: each worker process marks itself alive in Redis; the web side asks who is."""

import os
import socket
import time

from django.conf import settings

from core.redis import redis_client

WORKER_KEY = "lanthorn:worker:{}"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(*, worker: str) -> None:
    """Marks this worker alive for the next LANTHORN_HEARTBEAT_TTL seconds."""
    redis_client().set(WORKER_KEY.format(worker), int(time.time()), ex=settings.LANTHORN_HEARTBEAT_TTL)


def forget(*, worker: str) -> None:
    """A worker that stops cleanly says so at once."""
    redis_client().delete(WORKER_KEY.format(worker))


def worker_alive(*, worker: str | None) -> bool:
    """Whether this worker (any worker, for None) sent a heartbeat lately."""
    if worker is None:
        return bool(live_workers())
    return bool(redis_client().exists(WORKER_KEY.format(worker)))


def live_workers() -> list[str]:
    prefix = WORKER_KEY.format("")
    return [k.decode()[len(prefix):] for k in redis_client().scan_iter(match=prefix + "*")]
