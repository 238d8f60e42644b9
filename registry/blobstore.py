"""Content-addressed files under LANTHORN_HOME/blobs, named by their sha256.

    blobs/sha256-<hex>               a whole, verified file
    blobs/sha256-<hex>.chunks.json   its manifest of content-defined chunks (for differential pulls)
    blobs/partial/<key>              a download in progress, kept across restarts so a pull resumes
    blobs/partial/<key>.json         what that download is of (URL, ETag, size)
    blobs/partial/<key>.lock         held (flock) by the process writing the partial file

A blob is written to a partial file and renamed into place only after its digest
is verified, so a file under its final name is always whole. Locks are `flock`s:
the kernel drops them when their process dies, so a killed pull never leaves a
lock that blocks the next one.
"""

import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from registry.chunking import Chunk, chunk_file

BLOCK = 1024 * 1024


class DigestMismatch(Exception):
    pass


def blobs_dir() -> Path:
    path = Path(settings.LANTHORN_HOME) / "blobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def partial_dir() -> Path:
    path = blobs_dir() / "partial"
    path.mkdir(parents=True, exist_ok=True)
    return path


def blob_path(digest: str) -> Path:
    return blobs_dir() / f"sha256-{digest}"


def manifest_path(digest: str) -> Path:
    return blobs_dir() / f"sha256-{digest}.chunks.json"


def partial_path(key: str) -> Path:
    """Where a download of `key` (a hash of its source, or the expected digest) is written."""
    return partial_dir() / key


def has_blob(digest: str) -> bool:
    return blob_path(digest).is_file()


def stored_digests() -> set[str]:
    return {p.name[len("sha256-"):] for p in blobs_dir().glob("sha256-*") if len(p.name) == 71}


def sha256_file(path: Path, *, progress: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
            if progress:
                progress(len(block))
    return h.hexdigest()


def commit_partial(partial: Path, *, digest: str) -> Path:
    """Moves a partial file whose sha256 is `digest` (already verified) to its content address."""
    final = blob_path(digest)
    if final.exists():
        partial.unlink()
    else:
        os.replace(partial, final)
    partial.with_name(partial.name + ".json").unlink(missing_ok=True)
    return final


def discard_partial(partial: Path) -> None:
    """Deletes a partial file whose bytes are wrong (resuming would keep them), with its sidecar."""
    partial.unlink(missing_ok=True)
    partial.with_name(partial.name + ".json").unlink(missing_ok=True)


def verify_and_commit(partial: Path, *, expected: str | None = None,
                      progress: Callable[[int], None] | None = None) -> str:
    """Hashes a finished partial file and moves it to its content address; returns the digest.
    On a mismatch the partial file is deleted (its bytes are wrong, resuming would keep them)."""
    digest = sha256_file(partial, progress=progress)
    if expected and digest != expected.lower():
        discard_partial(partial)
        raise DigestMismatch(f"sha256 mismatch: expected {expected.lower()}, got {digest}")
    commit_partial(partial, digest=digest)
    return digest


@contextmanager
def locked(partial: Path, *, on_wait: Callable[[], None] | None = None, poll: float = 0.5) -> Iterator[None]:
    """Holds the lock of one partial file. While another process (or thread) holds it, calls
    `on_wait` every `poll` seconds: two pulls of one file share one download."""
    with open(partial.with_name(partial.name + ".lock"), "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if on_wait:
                    on_wait()
                time.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def storing() -> Iterator[None]:
    """Held (shared) by each pull from its first byte until its version is recorded, so that
    garbage collection never deletes a blob that a version is about to refer to."""
    with open(blobs_dir() / ".gc.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def collecting() -> Iterator[bool]:
    """Yields whether garbage collection may run now: False while a pull is storing a file."""
    with open(blobs_dir() / ".gc.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_sidecar(partial: Path) -> dict:
    try:
        return json.loads(partial.with_name(partial.name + ".json").read_text())
    except (OSError, ValueError):
        return {}


def write_sidecar(partial: Path, data: dict) -> None:
    partial.with_name(partial.name + ".json").write_text(json.dumps(data))


def manifest(digest: str) -> list[Chunk]:
    """The blob's chunk manifest, computed once and kept next to it."""
    try:
        return [Chunk.from_dict(c) for c in json.loads(manifest_path(digest).read_text())["chunks"]]
    except (OSError, ValueError, KeyError):
        pass
    chunks = chunk_file(blob_path(digest))
    save_manifest(digest, chunks)
    return chunks


def save_manifest(digest: str, chunks: list[Chunk]) -> None:
    path = manifest_path(digest)
    # Unique per thread too: two pulls of one file in a threaded worker may write this at once.
    tmp = path.with_name(path.name + f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps({"digest": digest, "chunks": [c.as_dict() for c in chunks]}))
    os.replace(tmp, path)


def local_chunks() -> dict[str, tuple[Path, Chunk]]:
    """Every chunk held locally, by its sha256: where a differential pull finds bytes it needn't fetch."""
    index = {}
    for digest in stored_digests():
        for chunk in manifest(digest):
            index.setdefault(chunk.sha256, (blob_path(digest), chunk))
    return index


def remove_blob(digest: str) -> int:
    """Deletes a blob and its manifest; returns the bytes freed."""
    path = blob_path(digest)
    size = path.stat().st_size if path.exists() else 0
    path.unlink(missing_ok=True)
    manifest_path(digest).unlink(missing_ok=True)
    return size


def remove_old_records(*, older_than: float = 24 * 3600) -> None:
    """Deletes the `.done` notes of downloads that finished long ago (see sources._shared), and
    sidecars whose partial file is gone."""
    cutoff = time.time() - older_than
    for record in partial_dir().glob("*.done"):
        try:
            if record.stat().st_mtime < cutoff:
                record.unlink()
        except FileNotFoundError:
            pass
    for sidecar in partial_dir().glob("*.json"):
        if not sidecar.with_suffix("").exists():
            sidecar.unlink(missing_ok=True)


def free_bytes() -> int:
    return shutil.disk_usage(blobs_dir()).free
