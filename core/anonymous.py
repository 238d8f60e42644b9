"""Requests refused before anyone was authenticated (no key, a wrong key, a body too large).

They write no usage row: a flood of them would grow the table and contend for the database's
write lock. Each is counted instead, in one Redis hash with a field per reason, which stays the
same size however many arrive.
"""

import logging

from asgiref.sync import sync_to_async

from core.redis import redis_client

log = logging.getLogger(__name__)

REFUSED_KEY = "lanthorn:refused"


def count_refusal_sync(reason: str) -> None:
    try:
        redis_client().hincrby(REFUSED_KEY, reason or "other", 1)
    except Exception:  # counting must never turn a refusal into a 500
        log.warning("could not count a refused request (%s)", reason, exc_info=True)


count_refusal = sync_to_async(count_refusal_sync, thread_sensitive=False)


def refusal_counts() -> dict[str, int]:
    """How many requests were refused without a valid key, per reason."""
    return {k.decode(): int(v) for k, v in redis_client().hgetall(REFUSED_KEY).items()}
