"""Giving back the pages of a new llama context that are still zero.

llama.cpp clears a new context's KV cache and logits buffer with memset, which makes every page of
them resident before any request: 288 MB for the default model's 4 slots of 4,096 tokens, in each
worker process, where the weights (mmapped) are shared. A private anonymous page that holds only
zeros can be handed back with madvise(MADV_DONTNEED): the kernel maps a zero page again at its next
touch, so the buffer reads the same, and a worker holds the cells its requests have filled rather
than all of them. Measured with the default model: a loaded worker went from 676 to ~390 MB of PSS.

Only runs of MIN_RUN bytes or more of zero pages, in address ranges that the context's creation
mapped, are given back, so no other thread's memory is: contexts are created one at a time in a
process (`giving_back_zero_pages`), so no other context's buffers are being made meanwhile; a
running engine's buffers were all mapped when its context was made (its logits buffer has a row
per slot, as many as a step asks for, so it never grows), and a buffer that can grow while others
load (an embedder's outputs, 5 MB at most) is smaller than MIN_RUN; and the rest of the process
(Python's arenas, thread stacks, malloc's arenas of 64 MB at most) does not hold tens of megabytes
of resident zero pages in a row.
"""

import ctypes
import ctypes.util
import mmap
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy

MIN_RUN = 32 << 20
_MADV_DONTNEED = 4
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_malloc_trim = getattr(_libc, "malloc_trim", None)  # glibc's; musl and macOS have none
_creating = threading.Lock()
# Where there is no /proc (macOS), contexts keep what llama.cpp made resident.
SUPPORTED = os.path.exists("/proc/self/maps") and os.path.exists("/proc/self/smaps_rollup")


@contextmanager
def giving_back_zero_pages(*, enabled: bool = True) -> Iterator[dict]:
    """Around the creation of a llama context (one at a time in the process): afterwards, the
    zero pages of what it mapped are given back; the dict it yields then holds `released`, the
    bytes by which the process's resident memory went down. Not `enabled` (a context with layers
    on a GPU, whose driver may pin host memory that it maps), it gives back nothing."""
    enabled = enabled and SUPPORTED
    with _creating:
        before = anonymous_ranges() if enabled else []
        result = {"released": 0}
        yield result
        if enabled:
            result["released"] = release_zero_pages(since=before)


def anonymous_ranges() -> list[tuple[int, int]]:
    """This process's private, writable mappings of no file, as (start, end) addresses."""
    ranges = []
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) == 5 and fields[1] == "rw-p":  # [heap], [stack] and files have a 6th field
                start, end = (int(x, 16) for x in fields[0].split("-"))
                ranges.append((start, end))
    return ranges


def new_ranges(after: list[tuple[int, int]], before: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of `after` that no range of `before` covers."""
    new, before = [], sorted(before)
    for start, end in after:
        for b_start, b_end in before:
            if b_end <= start or b_start >= end:
                continue
            if b_start > start:
                new.append((start, b_start))
            start = max(start, b_end)
            if start >= end:
                break
        if start < end:
            new.append((start, end))
    return new


def zero_runs(start: int, end: int, *, min_run: int = MIN_RUN) -> list[tuple[int, int]]:
    """The runs of at least `min_run` bytes of pages that hold only zeros in [start, end).
    Reading a page that was never touched maps the shared zero page, which costs no memory."""
    page = mmap.PAGESIZE
    words = numpy.frombuffer((ctypes.c_char * (end - start)).from_address(start), dtype=numpy.uint64)
    zero = ~words.reshape(-1, page // 8).any(axis=1)
    edges = numpy.flatnonzero(numpy.diff(numpy.concatenate(([False], zero, [False])).astype(numpy.int8)))
    return [(start + int(a) * page, start + int(b) * page) for a, b in zip(edges[::2], edges[1::2])
            if (b - a) * page >= min_run]


def release_zero_pages(*, since: list[tuple[int, int]], min_run: int = MIN_RUN) -> int:
    """Give back the zero pages of the mappings made since `since` (an `anonymous_ranges()`), and
    malloc's free heap pages; returns by how many bytes the process's resident memory went down."""
    resident = anonymous_bytes()
    for start, end in new_ranges(anonymous_ranges(), since):
        for run_start, run_end in zero_runs(start, end, min_run=min_run):
            _libc.madvise(run_start, run_end - run_start, _MADV_DONTNEED)
    if _malloc_trim is not None:
        _malloc_trim(ctypes.c_size_t(0))  # what the model load's temporaries left free on the heap
    return resident - anonymous_bytes()


def anonymous_bytes() -> int:
    with open("/proc/self/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Anonymous:")) * 1024
