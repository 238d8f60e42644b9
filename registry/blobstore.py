"""Content-addressed files under LANTHORN_HOME/blobs, named by their sha256.

A blob is written to a partial file and renamed into place only after its digest
is verified, so a file under its final name is always whole.
"""

import hashlib
import os
import shutil
from pathlib import Path

from django.conf import settings

CHUNK = 1024 * 1024


class DigestMismatch(Exception):
    pass


def blobs_dir() -> Path:
    path = Path(settings.LANTHORN_HOME) / "blobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def blob_path(digest: str) -> Path:
    return blobs_dir() / f"sha256-{digest}"


def partial_path(digest_or_name: str) -> Path:
    return blobs_dir() / f"sha256-{digest_or_name}.partial"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def commit_partial(partial: Path, *, expected: str | None = None) -> str:
    """Hash a finished partial file and move it to its content address; returns the digest."""
    digest = sha256_file(partial)
    if expected and digest != expected.lower():
        partial.unlink(missing_ok=True)
        raise DigestMismatch(f"sha256 mismatch: expected {expected}, got {digest}")
    final = blob_path(digest)
    if final.exists():
        partial.unlink()
    else:
        os.replace(partial, final)
    return digest


def add_file(source: Path, *, expected: str | None = None) -> str:
    """Copy a local file into the store; returns its digest."""
    if expected and blob_path(expected.lower()).exists():
        return expected.lower()
    partial = partial_path(f"import-{os.getpid()}-{Path(source).name}")
    shutil.copyfile(source, partial)
    return commit_partial(partial, expected=expected)
