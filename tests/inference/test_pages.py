"""Giving back the zero pages of a new llama context (inference/pages.py): on plain mappings of
this process, and on an engine with the real default model."""

import ctypes
import gc
import mmap

import pytest

from inference import pages
from tests.inference.test_engine import new_engine, run_together

MB = 1 << 20


def new_mapping(size: int) -> mmap.mmap:
    """A private anonymous mapping of `size` bytes, every page written (resident), all zero."""
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    m.write(b"\0" * size)
    return m


def resident_kb(m: mmap.mmap) -> int:
    """The mapping's resident memory (mincore: its VMA in /proc may have merged with a neighbour)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
    count = len(m) // mmap.PAGESIZE
    vec = ctypes.create_string_buffer(count)
    assert libc.mincore(ctypes.addressof(ctypes.c_char.from_buffer(m)), len(m), vec) == 0
    return sum(b & 1 for b in vec.raw) * mmap.PAGESIZE // 1024


@pytest.fixture(autouse=True)
def no_garbage():
    """Objects of earlier tests (a llama context among them) freed now, not while a test maps."""
    gc.collect()


def mapped_after_snapshot(size: int) -> tuple[list[tuple[int, int]], mmap.mmap]:
    """A snapshot of the anonymous ranges, then a new mapping (`new_mapping`). The snapshot leaves
    out any range the mapping took the place of: memory another thread unmapped in between (a
    llama context freed meanwhile), which the kernel then gave to the mapping."""
    before = pages.anonymous_ranges()
    m = new_mapping(size)
    start = ctypes.addressof(ctypes.c_char.from_buffer(m))
    return [(a, b) for a, b in before if b <= start or a >= start + size], m


def test_it_gives_back_the_zero_pages_of_a_new_mapping():
    before, m = mapped_after_snapshot(64 * MB)
    assert resident_kb(m) >= 64 * 1024

    pages.release_zero_pages(since=before)

    assert resident_kb(m) < 1024


def test_it_keeps_what_the_pages_it_leaves_hold():
    before, m = mapped_after_snapshot(16 * MB)
    m[3 * MB] = 7  # a page of data between two runs of zero pages

    pages.release_zero_pages(since=before, min_run=1 * MB)

    assert m[3 * MB] == 7 and m[:3 * MB].count(0) == 3 * MB and m[3 * MB + 1:].count(0) == 13 * MB - 1


def test_it_leaves_runs_of_zero_pages_shorter_than_its_minimum():
    before, m = mapped_after_snapshot(8 * MB)
    m[2 * MB] = 1  # the mapping holds a zero run of 2 MB, then one of 6 MB

    pages.release_zero_pages(since=before, min_run=4 * MB)

    assert 2 * 1024 <= resident_kb(m) < 3 * 1024


def test_it_leaves_mappings_made_before_alone():
    m = new_mapping(64 * MB)
    before = pages.anonymous_ranges()

    pages.release_zero_pages(since=before)

    assert resident_kb(m) >= 64 * 1024


def test_it_gives_back_what_a_context_creation_mapped():
    with pages.giving_back_zero_pages() as given_back:
        m = new_mapping(64 * MB)

    assert resident_kb(m) < 1024 and given_back["released"] >= 63 * MB


def test_it_gives_back_nothing_when_not_enabled():
    with pages.giving_back_zero_pages(enabled=False) as given_back:
        m = new_mapping(64 * MB)

    assert resident_kb(m) >= 64 * 1024 and given_back["released"] == 0


def test_new_ranges_are_what_no_earlier_range_covers():
    assert pages.new_ranges([(0, 100), (200, 300)], [(10, 20), (250, 400)]) == [(0, 10), (20, 100), (200, 250)]


def test_an_engine_holds_its_kv_cache_as_it_fills_not_at_load():
    before = pages.anonymous_bytes()
    engine = new_engine(slots=4, n_ctx=8192)  # a KV cache of 4 x 8,192 cells: 576 MB
    try:
        grown = pages.anonymous_bytes() - before
        assert grown < 200 * MB, f"the load took {grown // MB} MB of anonymous memory"
        (job, pieces), = run_together(engine, {"messages": [{"role": "user", "content": "List three fruits."}],
                                               "max_tokens": 8})
        assert job.completion_tokens == 8 and "".join(pieces).strip()
    finally:
        engine.retire()
