"""Real HTTP file servers for the model-pull tests.

`FileServer` serves the files under a directory over plain HTTP on 127.0.0.1, from a
`ThreadingHTTPServer` running in a background thread. It speaks enough HTTP for a
resumable download (HEAD, Range, If-Range, ETag, Last-Modified), records every request,
and can be told to misbehave for a path (error statuses, dropped or stalled connections,
slow transfers).

It also mimics the Hugging Face Hub's file URLs, so `huggingface_hub` pointed at it works:

    /{org}/{repo}/resolve/{revision}/{filename}   ->   root/{org}/{repo}/{filename}

Those responses carry the headers `huggingface_hub.get_hf_file_metadata` reads for an LFS
file: `X-Repo-Commit`, `X-Linked-Etag` ("<sha256>"), `X-Linked-Size`, and an `ETag` that is
the quoted sha256 as well. The library reads HF_ENDPOINT once, at import, so point it here
with `hf_hub_url(repo_id, filename, endpoint=server.url)` (or set HF_ENDPOINT in a child
process's environment).

    def test_resume(file_server):
        file_server.put("org/repo/model.gguf", size=1_000_000)
        file_server.fail("/org/repo/resolve/main/model.gguf", cut_after=4096, times=1)
        ...
        assert file_server.requests[-1] == ("GET", "/org/repo/resolve/main/model.gguf", "bytes=4096-")
"""

import email.utils
import hashlib
import json
import random
import re
import socket
import sys
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple, Self
from urllib.parse import unquote, urlsplit

import pytest

CHUNK = 64 * 1024
HF_COMMIT = "0123456789abcdef0123456789abcdef01234567"  # X-Repo-Commit for a branch or tag revision

RESOLVE_PATH = re.compile(r"^/(?P<repo_id>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$")
COMMIT_HASH = re.compile(r"^[0-9a-f]{40}$")


class Request(NamedTuple):
    """One logged request; compares equal to a plain (method, path, range) tuple."""

    method: str
    path: str
    range: str | None


@dataclass
class Fault:
    """How to misbehave for the next `times` requests to a path (None: every request).

    `status` applies to GET and HEAD. The body faults (cut_after, stall_after, throttle)
    only make sense with a body, so they apply to GET only and a HEAD does not use them up.
    """

    status: int | None = None
    body: str | bytes | dict | None = None  # for `status`: a dict is sent as JSON, the default is {"error": ...}
    error_code: str | None = None  # for `status` on a resolve path: the X-Error-Code header huggingface_hub reads
    cut_after: int | None = None  # send the full headers, then this many body bytes, then close
    stall_after: int | None = None  # send this many body bytes, then sleep `stall_seconds`, then close
    stall_seconds: float = 30.0
    throttle: int | None = None  # bytes per second
    times: int | None = None

    def applies_to(self, method: str) -> bool:
        return self.status is not None or method == "GET"


class FileServer:
    """Serves the files under `root` at http://127.0.0.1:PORT/<relative path>.

    Attributes: `url`, `root`, `commit` (the X-Repo-Commit sent for branch revisions),
    `requests` (list of (method, path, range header or None)), `request_headers` (a dict of
    each request's headers, in the same order), `bytes_sent` (file bytes sent in bodies, all requests;
    error bodies do not count).
    """

    def __init__(self, root, *, commit: str = HF_COMMIT):
        self.root = Path(root).resolve()
        self.commit = commit
        self.requests: list[Request] = []
        self.request_headers: list[dict[str, str]] = []
        self.bytes_sent = 0
        self._faults: dict[str, list[Fault]] = {}
        self._sha256_cache: dict[tuple, str] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.file_server = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="FileServer", daemon=True
        )

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving; wakes any handler that is stalling or throttling so it drops its connection."""
        self._stopping.set()
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- files ---------------------------------------------------------------------------------

    def put(self, relpath: str, data: bytes | None = None, *, size: int | None = None) -> Path:
        """Writes a file under root: `data`, or `size` pseudo-random bytes (the same for the same path)."""
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is not None:
            path.write_bytes(data)
            return path
        rng = random.Random(relpath)
        with open(path, "wb") as f:
            left = size or 0
            while left > 0:
                piece = rng.randbytes(min(1024 * 1024, left))
                f.write(piece)
                left -= len(piece)
        return path

    def url_for(self, relpath: str) -> str:
        return f"{self.url}/{relpath.lstrip('/')}"

    def hf_url(self, repo_id: str, filename: str, revision: str = "main") -> str:
        """The resolve URL huggingface_hub builds for this file with endpoint=server.url."""
        return f"{self.url}/{repo_id}/resolve/{revision}/{filename}"

    def sha256(self, path) -> str:
        """Hex sha256 of a file (a path under root, absolute or relative); cached by size and mtime."""
        path = self.root / path
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._sha256_cache:
                return self._sha256_cache[key]
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while piece := f.read(1024 * 1024):
                digest.update(piece)
        with self._lock:
            self._sha256_cache[key] = digest.hexdigest()
        return digest.hexdigest()

    # -- faults --------------------------------------------------------------------------------

    def fail(self, path: str, *, times: int | None = None, **options) -> Fault:
        """Misbehave for the next `times` requests to `path` (all of them when None).

        `path` is the URL path ("/org/repo/resolve/main/x.gguf"), a full URL on this server, or
        "*" for every path. Options are Fault's fields: status, body, error_code, cut_after,
        stall_after, stall_seconds, throttle. Faults added for one path queue up: the first
        one is used until its `times` run out, then the next.
        """
        fault = Fault(times=times, **options)
        with self._lock:
            self._faults.setdefault(self._path_key(path), []).append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.request_headers.clear()
            self.bytes_sent = 0

    def _path_key(self, path: str) -> str:
        if path == "*":
            return path
        if path.startswith(("http://", "https://")):
            path = urlsplit(path).path
        return "/" + unquote(path).lstrip("/")

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for key in (path, "*"):
                queue = self._faults.get(key, [])
                if queue and queue[0].applies_to(method):
                    fault = queue[0]
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            queue.pop(0)
                    return fault
        return None

    def _log(self, method: str, path: str, headers) -> None:
        with self._lock:
            self.requests.append(Request(method, path, headers.get("Range")))
            self.request_headers.append(dict(headers.items()))

    def _count(self, n: int) -> None:
        with self._lock:
            self.bytes_sent += n


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    file_server: FileServer

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # a client hanging up is routine here; a bug is not


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LanthornTestFileServer/1.0"
    timeout = 30  # idle keep-alive connections end on their own

    @property
    def files(self) -> FileServer:
        return self.server.file_server

    def log_message(self, format, *args):
        pass

    def do_HEAD(self):
        self._serve(send_body=False)

    def do_GET(self):
        self._serve(send_body=True)

    def _serve(self, *, send_body: bool):
        path = unquote(urlsplit(self.path).path)
        self.files._log(self.command, path, self.headers)
        fault = self.files._take_fault(self.command, path)

        hf = RESOLVE_PATH.match(path)
        if hf:
            repo_dir = self.files.root / hf["repo_id"]
            file = repo_dir / hf["filename"]
        else:
            repo_dir = None
            file = self.files.root / path.lstrip("/")

        if fault and fault.status is not None:
            return self._send_error(fault.status, fault.body, fault.error_code, hf, send_body)
        if not _is_inside(file, self.files.root) or not file.is_file():
            error_code = None
            if hf:
                error_code = "EntryNotFound" if repo_dir.is_dir() else "RepoNotFound"
            return self._send_error(404, None, error_code, hf, send_body)

        stat = file.stat()
        size = stat.st_size
        last_modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
        if hf:
            sha256 = self.files.sha256(file)
            etag = f'"{sha256}"'
        else:
            etag = f'"{size:x}-{stat.st_mtime_ns:x}"'

        status, start, length = 200, 0, size
        range_header = self.headers.get("Range")
        if range_header and self._if_range_holds(etag, last_modified):
            wanted = _parse_range(range_header, size)
            if wanted == "unsatisfiable":
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if wanted is not None:
                status, (start, length) = 206, wanted

        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{start + length - 1}/{size}")
        if hf:
            self.send_header("X-Repo-Commit", self._commit(hf["revision"]))
            self.send_header("X-Linked-Etag", etag)
            self.send_header("X-Linked-Size", str(size))
        self.end_headers()
        if send_body:
            self._send_body(file, start, length, fault)

    def _if_range_holds(self, etag: str, last_modified: str) -> bool:
        """No If-Range, or one that matches the current ETag or Last-Modified: the Range applies."""
        if_range = self.headers.get("If-Range")
        return if_range is None or if_range.strip() in (etag, last_modified)

    def _commit(self, revision: str) -> str:
        return revision if COMMIT_HASH.match(revision) else self.files.commit

    def _send_error(self, status, body, error_code, hf, send_body):
        if body is None:
            body = {"error": HTTPStatus(status).phrase}
        if isinstance(body, dict):
            content, content_type = json.dumps(body).encode(), "application/json"
        else:
            content = body.encode() if isinstance(body, str) else body
            content_type = "text/plain; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(content)))
        if hf and error_code:
            self.send_header("X-Error-Code", error_code)
        if hf and error_code == "EntryNotFound":
            self.send_header("X-Repo-Commit", self._commit(hf["revision"]))
        self.end_headers()
        if send_body:
            self.wfile.write(content)

    def _send_body(self, file: Path, start: int, length: int, fault: Fault | None):
        """Streams `length` bytes from `start`, in 64 KiB pieces (smaller when throttled)."""
        limit = length
        throttle = None
        if fault:
            for cut in (fault.cut_after, fault.stall_after):
                if cut is not None:
                    limit = min(limit, cut)
            throttle = fault.throttle
        piece_size = min(CHUNK, max(1, throttle // 20)) if throttle else CHUNK
        stopping = self.files._stopping

        try:
            with open(file, "rb") as f:
                f.seek(start)
                left = limit
                while left > 0:
                    piece = f.read(min(piece_size, left))
                    if not piece:
                        break
                    self.wfile.write(piece)
                    self.files._count(len(piece))
                    left -= len(piece)
                    if throttle and stopping.wait(len(piece) / throttle):
                        return self._drop_connection()
            if limit < length:
                if fault.stall_after is not None and fault.stall_after <= limit:
                    stopping.wait(fault.stall_seconds)
                self._drop_connection()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client hung up

    def _drop_connection(self):
        """Ends the connection mid-body: the client sees fewer bytes than Content-Length."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _is_inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root)


def _parse_range(header: str, size: int):
    """`bytes=N-`, `bytes=N-M` or `bytes=-N` as (start, length); "unsatisfiable"; or None to ignore it."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or match.groups() == ("", ""):
        return None  # malformed, or several ranges: serve the whole file
    first, last = match.groups()
    if first == "":  # the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        start = max(0, size - n)
        return start, size - start
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return "unsatisfiable" if start >= size else None
    return start, end - start + 1


def unused_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def file_server(tmp_path_factory):
    """A started FileServer over a fresh, empty directory; stopped after the test."""
    server = FileServer(tmp_path_factory.mktemp("files")).start()
    yield server
    server.stop()
