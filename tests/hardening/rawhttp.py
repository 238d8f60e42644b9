"""HTTP spoken by hand over a socket, for requests no well-behaved client sends: huge or endless
bodies, chunked bodies with no length, senders that stall. Each call has a deadline."""

import json
import select
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes
    sent: int  # body bytes the server let us send before it answered

    def json(self):
        return json.loads(self.body)


def chunked(total: int, size: int = 1 << 20) -> Iterable[bytes]:
    """A chunked transfer-encoded body of `total` bytes of JSON-ish filler, without a Content-Length."""
    piece = b"[" * size
    sent = 0
    while sent < total:
        part = piece[: min(size, total - sent)]
        sent += len(part)
        yield b"%x\r\n%s\r\n" % (len(part), part)
    yield b"0\r\n\r\n"


def filler(total: int, size: int = 1 << 20) -> Iterable[bytes]:
    piece = b" " * size
    for start in range(0, total, size):
        yield piece[: min(size, total - start)]


def request(url: str, *, path: str, headers: dict, body: Iterable[bytes] = (), method: str = "POST",
            pause: float = 0, timeout: float = 60) -> Reply:
    """Sends the head, then the body until the server answers (or the body ends), and reads the answer.
    `pause`: seconds to wait after the head and before the body (a slow sender)."""
    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        head = [f"{method} {path} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        if pause:
            select.select([sock], [], [], pause)
        sent = 0
        for chunk in body:
            if select.select([sock], [], [], 0)[0] or time.monotonic() > deadline:
                break  # the server has answered (or closed): stop sending
            try:
                sock.sendall(chunk)
            except (OSError, socket.timeout):
                break
            sent += len(chunk)
        data = b""
        while time.monotonic() < deadline:
            if b"\r\n\r\n" in data:
                head_bytes, _, rest = data.partition(b"\r\n\r\n")
                lines = head_bytes.decode("latin-1").split("\r\n")
                found = dict(line.split(": ", 1) for line in lines[1:])
                found = {k.lower(): v for k, v in found.items()}
                status = int(lines[0].split()[1])
                if found.get("transfer-encoding") == "chunked":
                    body = _dechunk(rest)
                    if body is not None:
                        return Reply(status, found, body, sent)
                else:
                    length = int(found.get("content-length", -1))
                    if 0 <= length <= len(rest):
                        return Reply(status, found, rest[:length], sent)
            try:
                more = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                more = b""
            if not more:
                break
            data += more
    raise AssertionError(f"no whole answer from {path} before the deadline (got {data[:200]!r})")


def _dechunk(data: bytes) -> bytes | None:
    """The body of a chunked answer, or None while its last chunk has not arrived."""
    body = b""
    while True:
        size_line, found, data = data.partition(b"\r\n")
        if not found:
            return None
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return body
        if len(data) < size + 2:
            return None
        body, data = body + data[:size], data[size + 2:]


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")
