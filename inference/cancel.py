"""A request's cancel flag in Redis: the web side raises it, the worker polls it between tokens."""

import time

from core.redis import redis_client

CANCEL_KEY = "lanthorn:cancel:{}"


def request_cancel(*, request_id: str) -> None:
    """Tells the worker to stop generating (the client went away, or pressed Stop)."""
    redis_client().set(CANCEL_KEY.format(request_id), 1, ex=600)


def cancel_check(request_id: str, every: float = 0.2):
    """A cheap `is_cancelled()` for the engine: asks Redis at most every `every` seconds."""
    key, last = CANCEL_KEY.format(request_id), [0.0]

    def is_cancelled() -> bool:
        now = time.monotonic()
        if now - last[0] < every:
            return False
        last[0] = now
        return bool(redis_client().exists(key))

    return is_cancelled
