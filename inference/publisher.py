"""How a worker sends a request's events to the client's channel.

Every send goes through one long-lived event loop in its own thread, so the
engine's thread never waits for Redis: it drops text into a queue and goes on
decoding. Text that piles up while a send is under way leaves in the next
message, so a slow hop costs fewer messages, not slower decoding.
"""

import asyncio
import logging
import queue
import threading
from functools import cache

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)
FINAL_EVENTS = ("inference.done", "inference.error")


class Publisher:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="publisher", daemon=True).start()
        self.layer = get_channel_layer()

    def stream(self, channel: str) -> "Stream":
        return Stream(self, channel)


class Stream:
    """The events of one request, in order: token text in batches, then one final event."""

    def __init__(self, publisher: Publisher, channel: str) -> None:
        self._publisher = publisher
        self._channel = channel
        self._items: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = asyncio.Event()
        self._sent = asyncio.run_coroutine_threadsafe(self._pump(), publisher.loop)

    def token(self, text: str) -> None:
        self._items.put(text)
        self._publisher.loop.call_soon_threadsafe(self._wake.set)

    def event(self, type: str, **data) -> None:
        self._items.put({"type": type, **data})
        self._publisher.loop.call_soon_threadsafe(self._wake.set)

    def wait_sent(self, timeout: float = 10) -> None:
        """Blocks until the final event has left (or the timeout passes)."""
        try:
            self._sent.result(timeout)
        except Exception:
            log.exception("could not deliver the events of %s", self._channel)

    async def _pump(self) -> None:
        send = self._publisher.layer.send
        while True:
            await self._wake.wait()
            self._wake.clear()
            texts: list[str] = []
            while True:
                try:
                    item = self._items.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, str):
                    texts.append(item)
                    continue
                if texts:
                    await send(self._channel, {"type": "inference.token", "text": texts})
                    texts = []
                await send(self._channel, item)
                if item["type"] in FINAL_EVENTS:
                    return
            if texts:
                await send(self._channel, {"type": "inference.token", "text": texts})


@cache
def publisher() -> Publisher:
    return Publisher()
