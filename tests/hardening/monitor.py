"""What the worker says, read on the Redis side: a MONITOR connection sees every PUBLISH a worker
makes to a request's reply channel, without subscribing (a subscriber would change what the
worker sees: it stops generating when nobody listens)."""

import re
import threading

import redis
from channels.layers import get_channel_layer

_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b", b"\\": b"\\", b'"': b'"'}


def _unescape(text: bytes) -> bytes:
    """Redis prints MONITOR arguments with sdscatrepr: \\xHH and C escapes."""
    out, i = bytearray(), 0
    while i < len(text):
        if text[i:i + 1] == b"\\":
            if text[i + 1:i + 2] == b"x":
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
            out += _ESCAPES[text[i + 1:i + 2]]
            i += 2
            continue
        out.append(text[i])
        i += 1
    return bytes(out)


class Published:
    """Collects the messages published to reply channels (`asgireq.*`) while it runs."""

    def __init__(self, url: str):
        self.messages: list[tuple[str, dict]] = []  # (channel, message)
        self.unreadable: list = []
        self._client = redis.Redis.from_url(url, socket_timeout=0.5)
        self._conn = self._client.connection_pool.get_connection()
        self._conn.send_command("MONITOR")
        self._conn.read_response()  # OK
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deserialize = get_channel_layer().deserialize
        while not self._stop:
            try:
                line = self._conn.read_response(disconnect_on_error=False)
            except (redis.TimeoutError, TimeoutError):
                continue
            except (redis.ConnectionError, OSError):
                return
            if not line or b'"PUBLISH"' not in line.upper():
                continue
            args = [_unescape(a) for a in _ARG.findall(line)]
            if len(args) == 3 and b"req." in args[1]:
                try:
                    self.messages.append((args[1].decode(), deserialize(args[2])))
                except Exception as exc:
                    self.unreadable.append((line, exc))

    def final(self, channel_prefix: str = "") -> list[dict]:
        """The final events (`inference.done`, `inference.error`) seen so far."""
        return [m for c, m in self.messages if c.startswith(channel_prefix)
                and m["type"] in ("inference.done", "inference.error")]

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        self._conn.disconnect()
