"""The output layer's kernel (inference/head.py, inference/native/head.c) with the real default
model: it computes the logits llama.cpp computes (to rounding), instead of llama.cpp, and a
row's logits do not depend on the rows beside it."""

import ctypes
from pathlib import Path

import llama_cpp
import numpy
import pytest
from django.test import override_settings

from inference import head, matmul
from tests.inference.test_engine import PROMPTS, ask, new_engine, run_together


def cpu_runs_the_kernel() -> bool:
    """From the CPU's flags, not from whether the kernel loads: a kernel that fails to build on a
    CPU that could run it fails these tests instead of skipping them."""
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text().split() if cpuinfo.exists() else []
    return all(flag in flags for flag in ("avx2", "fma", "f16c"))


pytestmark = pytest.mark.skipif(not cpu_runs_the_kernel(),
                                reason="this CPU has no AVX2 for the output layer's kernel")


@pytest.fixture(scope="module")
def engine():
    # llama.cpp's own output matmul, which these tests compare with, would otherwise run on the
    # layers' kernel (inference/matmul.py), which computes Q8_0 as this kernel does.
    with override_settings(LANTHORN_LAYER_KERNEL=False):
        matmul.install(False)
        engine = new_engine(slots=4)
        assert engine.head is not None and engine.head.armed
        yield engine
    matmul.install(True)


def step(engine, k: int, *, armed: bool) -> list[numpy.ndarray]:
    """Evaluates the prompts of k sequences, then one token of each in one decode, as the engine's
    steps do; returns each sequence's logits for that token."""
    engine.head.arm(armed)
    ctx, memory = engine.ctx.ctx, engine.ctx.memory
    prompts = [engine.tokenize(text) for text in PROMPTS[:k]]
    try:
        for seq_id, tokens in enumerate(prompts):
            llama_cpp.llama_memory_seq_rm(memory, seq_id, -1, -1)
            for i, token in enumerate(tokens[:-1]):
                engine._row(i, token=token, pos=i, seq_id=seq_id, logits=False)
            engine.batch.n_tokens = len(tokens) - 1
            assert llama_cpp.llama_decode(ctx, engine.batch) == 0
        for seq_id, tokens in enumerate(prompts):
            engine._row(seq_id, token=tokens[-1], pos=len(tokens) - 1, seq_id=seq_id, logits=True)
        engine.batch.n_tokens = k
        assert llama_cpp.llama_decode(ctx, engine.batch) == 0
        rows = [llama_cpp.llama_get_logits_ith(ctx, row) for row in range(k)]
        if armed:
            for row in rows:  # so that what is read below can only be what the kernel wrote
                ctypes.memset(row, 0, engine.n_vocab * 4)
            engine.head.logits(ctx, list(range(k)))
        return [numpy.ctypeslib.as_array(row, shape=(engine.n_vocab,)).copy() for row in rows]
    finally:
        for slot in engine.slots:  # the engine's own requests find empty streams
            llama_cpp.llama_memory_seq_rm(memory, slot.seq_id, -1, -1)
            slot.cached, slot.prompted = [], 0
        engine.head.arm()


ISAS = {2: "avx512_vnni", 1: "avx2"}


def with_isa(engine, isa: int, k: int) -> list[numpy.ndarray]:
    """The logits of `step` (k sequences) from the kernel of one instruction set."""
    if engine.head.lib.head_supported() < isa:
        pytest.skip(f"this CPU has no {ISAS[isa]}")
    assert engine.head.lib.head_use(engine.head.state, isa) == isa
    try:
        return step(engine, k, armed=True)
    finally:
        engine.head.lib.head_use(engine.head.state, 2)


@pytest.mark.parametrize("isa", ISAS, ids=ISAS.values())
@pytest.mark.parametrize("k", [1, 3])
def test_it_computes_the_logits_llama_cpp_computes_to_rounding(engine, k, isa):
    ours = with_isa(engine, isa, k)
    theirs = step(engine, k, armed=False)
    for mine, llamas in zip(ours, theirs, strict=True):
        assert numpy.abs(mine).max() > 1  # real logits, not the zeros it was given
        assert not numpy.array_equal(mine, llamas)  # its own sums, not llama.cpp's
        assert numpy.abs(mine - llamas).max() <= 1e-5 * numpy.abs(llamas).max()
        assert mine.argmax() == llamas.argmax()


@pytest.mark.parametrize("isa", ISAS, ids=ISAS.values())
def test_a_rows_logits_do_not_depend_on_the_rows_beside_it(engine, isa):
    alone, = with_isa(engine, isa, 1)
    together = with_isa(engine, isa, 3)
    assert numpy.array_equal(alone, together[0])  # to the bit
    assert not numpy.array_equal(together[0], together[1])


def test_the_two_instruction_sets_give_the_same_logits(engine):
    vnni, avx2 = with_isa(engine, 2, 3), with_isa(engine, 1, 3)
    for a, b in zip(vnni, avx2, strict=True):
        assert numpy.array_equal(a, b)  # to the bit: the same integers, then the same float steps


def test_it_stops_the_graph_before_llama_cpps_output_matmul(engine):
    asks = engine.head.lib.head_output_asks
    before = asks(engine.head.state)
    step(engine, 2, armed=True)
    assert asks(engine.head.state) == before
    step(engine, 2, armed=False)
    assert asks(engine.head.state) > before


def test_an_engine_without_the_kernel_gives_the_same_answers(engine, monkeypatch):
    requests = [ask(text, max_tokens=24) for text in PROMPTS]
    with_kernel = ["".join(pieces) for _, pieces in run_together(engine, *requests)]
    monkeypatch.setattr(head, "load", lambda: None)
    plain = new_engine(slots=4)
    try:
        assert plain.head is None
        assert ["".join(pieces) for _, pieces in run_together(plain, *requests)] == with_kernel
    finally:
        plain.retire()
