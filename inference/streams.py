"""The server's side of the token path: what a worker publishes for one request."""

import asyncio
import time

from asgiref.sync import sync_to_async
from django.conf import settings

from inference import services
from inference.errors import ApiError
from inference.publisher import FINAL_EVENTS

POLL = 2.0  # seconds between liveness checks while no event arrives


def _worker_alive(worker: str | None) -> bool:
    if worker is None:
        return bool(services.live_workers())
    return bool(services.redis_client().exists(services.WORKER_KEY.format(worker)))


async def worker_events(layer, channel: str):
    """Yields the request's events until its final one. Never hangs: a request that no worker
    takes, or whose worker dies, fails with a 503 error."""
    receive = None
    worker = None
    idle_since = time.monotonic()
    try:
        while True:
            if receive is None:
                # One receive stays pending across timeouts: cancelling a channels_redis
                # receive can drop a message.
                receive = asyncio.ensure_future(layer.receive(channel))
            done, _ = await asyncio.wait({receive}, timeout=POLL)
            if not done:
                idle = time.monotonic() - idle_since
                if not await sync_to_async(_worker_alive)(worker):
                    if worker is None:
                        raise ApiError(503, "No inference worker is running.", code="no_worker")
                    raise ApiError(503, "The worker serving this request stopped.", code="worker_lost")
                if idle > settings.LANTHORN_WORKER_TIMEOUT:
                    raise ApiError(503, f"No answer from a worker in {idle:.0f} seconds.", code="timeout")
                continue
            message, receive = receive.result(), None
            idle_since = time.monotonic()
            if message["type"] == "inference.started":
                worker = message["worker"]
                continue
            yield message
            if message["type"] in FINAL_EVENTS:
                return
    finally:
        if receive is not None:
            receive.cancel()
