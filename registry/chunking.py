"""Content-defined chunking of model files, for pulling only what changed between two versions.

A file is cut where its content says so (FastCDC: a rolling hash over the bytes
hits a pattern), not at fixed offsets, so inserting or removing bytes moves
only the cuts near the change: two versions of a GGUF that differ in their
metadata share all their chunks but the first one or two. Each chunk is named
by the SHA-256 of its bytes.

The cutting itself is done by pyfastcdc's compiled (Cython) FastCDC 2020, which
reads the file through mmap.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pyfastcdc

MIN_SIZE = 256 * 1024
AVG_SIZE = 768 * 1024  # pyfastcdc's chunks average about AVG_SIZE + MIN_SIZE: ~1 MiB
MAX_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True)
class Chunk:
    offset: int
    length: int
    sha256: str  # hex

    def as_dict(self) -> dict:
        return {"offset": self.offset, "length": self.length, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: dict) -> "Chunk":
        return cls(offset=int(data["offset"]), length=int(data["length"]), sha256=str(data["sha256"]))


def chunk_file(path: Path) -> list[Chunk]:
    """Cuts the file into chunks that follow each other from its first byte to its last (none if empty).

    The same bytes always give the same chunks.
    """
    cdc = pyfastcdc.FastCDC(avg_size=AVG_SIZE, min_size=MIN_SIZE, max_size=MAX_SIZE)
    return [Chunk(c.offset, c.length, hashlib.sha256(c.data).hexdigest()) for c in cdc.cut_file(path)]
