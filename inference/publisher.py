"""How a worker sends a request's events to the client's channel on the channel layer.

The layer is channels_redis' pub/sub layer, whose wire format is one Redis PUBLISH of the
layer's serialized message on the channel's name. The worker publishes in that format with a
plain Redis client, from the thread that runs the model: no event loop and no extra thread in
the worker, because on two cores every bit of work between tokens is taken from the model's
threads (`async_to_sync(channel_layer.send)` per token costs 13 % of decode speed here).

The first text leaves at once; after it, text leaves at most every BATCH_INTERVAL seconds,
in one message, and the server splits it back into one chunk per token.

PUBLISH answers how many subscribers got the message. None means no web process listens for the
request any more (the one that took it died, or lost Redis): the stream is then `gone`, which
the engine treats as a cancel instead of generating on to max_tokens for nobody.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from channels.layers import get_channel_layer

from core.errors import ApiError
from core.redis import redis_client

BATCH_INTERVAL = 0.05


@cache
def _serialize():
    return get_channel_layer().serialize


class Stream:
    """The events of one request, in order: `inference.started`, text in batches, a final event."""

    def __init__(self, channel: str) -> None:
        self._redis = redis_client()
        self._channel = channel
        self._pending: list[str] = []
        self._last = 0.0
        self.gone = False

    def token(self, text: str) -> None:
        self._pending.append(text)
        now = time.monotonic()
        if now - self._last >= BATCH_INTERVAL:
            self._flush(now)

    def event(self, type: str, **data) -> None:
        if self._pending:
            self._flush(time.monotonic())
        self._publish({"type": type, **data})

    @contextmanager
    def reporting_errors(self) -> Iterator[None]:
        """Whatever fails inside ends the request with an `inference.error` event (a bug re-raises)."""
        try:
            yield
        except ApiError as exc:
            self.event("inference.error", error=exc.as_dict())
        except Exception as exc:
            self.event("inference.error",
                       error=ApiError(500, f"the worker failed: {exc}", code="server_error").as_dict())
            raise

    def _flush(self, now: float) -> None:
        self._publish({"type": "inference.token", "text": self._pending})
        self._pending, self._last = [], now

    def _publish(self, message: dict) -> None:
        if self._redis.publish(self._channel, _serialize()(message)) == 0:
            self.gone = True
