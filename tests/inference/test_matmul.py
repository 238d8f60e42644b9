"""The layers' matmul kernel (inference/matmul.py, inference/native/matmul.c) on the default
model's own weights: it computes the matmul to rounding, a row's result does not depend on the
rows beside it, and the engine's matmuls run on it."""

import ctypes

import llama_cpp
import numpy
import pytest
from gguf import GGUFReader
from gguf.constants import GGMLQuantizationType as Q
from gguf.quants import dequantize

from inference import kernels, matmul
from tests.inference.test_engine import PROMPTS, model_path, new_engine
from tests.inference.test_head import ISAS, cpu_runs_the_kernel

pytestmark = pytest.mark.skipif(not cpu_runs_the_kernel(),
                                reason="this CPU has no AVX2 for the matmul kernel")

WEIGHT_TYPES = [Q.Q5_0, Q.Q8_0, Q.Q4_K, Q.Q6_K]  # the default model's layers have all four
BLOCK_BYTES = {Q.Q5_0: 22, Q.Q8_0: 34, Q.Q4_K: 144, Q.Q6_K: 210, Q.Q8_K: 292}


@pytest.fixture(scope="module")
def lib():
    lib = kernels.load()
    assert lib is not None
    lib.matmul_compute.argtypes = ([ctypes.c_int] * 4 + [ctypes.c_int64] * 3
                                   + [ctypes.c_void_p, ctypes.c_int64] * 3)
    yield lib
    lib.matmul_use(2)


@pytest.fixture(scope="module")
def weights() -> dict:
    """One layer matrix of each type, as its raw blocks."""
    found = {}
    for tensor in GGUFReader(str(model_path())).tensors:
        kind = tensor.tensor_type
        if kind in WEIGHT_TYPES and tensor.name.startswith("blk.") and kind not in found:
            raw = numpy.array(tensor.data).view(numpy.uint8).reshape(int(tensor.shape[1]), -1)
            found[kind] = numpy.ascontiguousarray(raw)
    assert set(found) == set(WEIGHT_TYPES)
    return found


def x_type(weight_type: Q) -> Q:
    """The type ggml quantizes the activations to for this weight type."""
    return Q.Q8_0 if weight_type in (Q.Q5_0, Q.Q8_0) else Q.Q8_K


def columns(weight_type: Q, raw: numpy.ndarray) -> int:
    return raw.shape[1] // BLOCK_BYTES[weight_type] * (32 if x_type(weight_type) == Q.Q8_0 else 256)


def activations(weight_type: Q, n: int, k: int) -> tuple[numpy.ndarray, numpy.ndarray]:
    """n random rows in the type ggml quantizes them to for this weight type (Q8_0 or Q8_K), and
    their values."""
    x = numpy.random.default_rng(n).standard_normal((n, k)).astype(numpy.float32)
    size = 32 if x_type(weight_type) == Q.Q8_0 else 256
    blocks = x.reshape(n, k // size, size)
    amax = numpy.abs(blocks).max(-1, keepdims=True)
    if size == 32:
        d = (amax / 127).astype(numpy.float16)
        q = numpy.rint(blocks / d.astype(numpy.float32)).clip(-127, 127).astype(numpy.int8)
        raw = numpy.concatenate([d.view(numpy.uint8), q.view(numpy.uint8)], axis=-1)
    else:  # Q8_K: a float scale, the quants, and their sums in groups of 16
        d = (amax / 127).astype(numpy.float32)
        q = numpy.rint(blocks / d).clip(-127, 127).astype(numpy.int8)
        sums = q.reshape(n, k // size, 16, 16).astype(numpy.int16).sum(-1, dtype=numpy.int16)
        raw = numpy.concatenate([d.view(numpy.uint8), q.view(numpy.uint8), sums.view(numpy.uint8)], axis=-1)
    values = q.astype(numpy.float64) * d.astype(numpy.float64)
    return numpy.ascontiguousarray(raw.reshape(n, -1)), values.reshape(n, k)


def compute(lib, weight_type: Q, raw: numpy.ndarray, x: numpy.ndarray, *, ith: int = 0, nth: int = 1,
            isa: int | None = None) -> numpy.ndarray:
    """The kernel's product, from the given instruction set's kernel (default: this CPU's best)."""
    isa = lib.matmul_supported() if isa is None else isa
    if lib.matmul_supported() < isa:
        pytest.skip(f"this CPU has no {ISAS[isa]}")
    assert lib.matmul_use(isa) == isa
    m, n, xt = raw.shape[0], x.shape[0], x_type(weight_type)
    out = numpy.zeros((n, m), numpy.float32)
    blocks = x.shape[1] // BLOCK_BYTES[xt]
    assert lib.matmul_compute(ith, nth, int(weight_type), int(xt), m, n, blocks,
                              raw.ctypes.data, raw.shape[1] // BLOCK_BYTES[weight_type],
                              x.ctypes.data, blocks, out.ctypes.data, m) == 0
    return out


@pytest.mark.parametrize("weight_type", WEIGHT_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("isa", ISAS, ids=ISAS.values())
def test_it_computes_the_matmul_to_rounding(lib, weights, weight_type, isa):
    raw = weights[weight_type]
    w = dequantize(raw, weight_type).astype(numpy.float64)
    x, values = activations(weight_type, 11, w.shape[1])
    exact = values @ w.T
    ours = compute(lib, weight_type, raw, x, isa=isa)
    assert numpy.abs(ours - exact).max() <= 1e-6 * numpy.abs(exact).max()


@pytest.mark.parametrize("weight_type", WEIGHT_TYPES, ids=lambda t: t.name)
def test_a_rows_result_does_not_depend_on_the_rows_beside_it(lib, weights, weight_type):
    raw = weights[weight_type]
    x, _ = activations(weight_type, 11, columns(weight_type, raw))
    together = compute(lib, weight_type, raw, x)
    alone = numpy.vstack([compute(lib, weight_type, raw, x[i:i + 1]) for i in range(len(x))])
    assert numpy.array_equal(alone, together)  # to the bit (one row of a K-quant takes other code)
    shared = sum(compute(lib, weight_type, raw, x, ith=i, nth=3) for i in range(3))  # each its rows
    assert numpy.array_equal(shared, together)


@pytest.mark.parametrize("weight_type", WEIGHT_TYPES, ids=lambda t: t.name)
def test_the_two_instruction_sets_give_the_same_result(lib, weights, weight_type):
    raw = weights[weight_type]
    x, _ = activations(weight_type, 5, columns(weight_type, raw))
    vnni, avx2 = compute(lib, weight_type, raw, x, isa=2), compute(lib, weight_type, raw, x, isa=1)
    assert numpy.array_equal(vnni, avx2)


def test_it_was_checked_against_the_installed_llama_cpp():
    # An upgrade of llama-cpp-python fails here, instead of leaving the matmuls to ggml unnoticed.
    assert llama_cpp.__version__ in matmul.CHECKED_VERSIONS


def test_it_leaves_other_types_to_ggml(lib):
    assert lib.matmul_takes(int(Q.Q5_0), 8, 256, 20)
    assert not lib.matmul_takes(int(Q.F32), 0, 256, 640)
    assert not lib.matmul_takes(int(Q.Q4_0), 8, 256, 20)
    assert not lib.matmul_takes(int(Q.Q5_0), 8, 252, 20)  # rows not in eights


@pytest.fixture(scope="module")
def engine():
    engine = new_engine(slots=4)
    yield engine
    engine.retire()


def prompt_logits(engine, tokens: list[int]) -> numpy.ndarray:
    """The logits (llama.cpp's) of the last of `tokens`, from one decode on the engine's context."""
    ctx, memory = engine.ctx.ctx, engine.ctx.memory
    llama_cpp.llama_memory_seq_rm(memory, 0, -1, -1)
    try:
        engine.head.arm(False)
        for i, token in enumerate(tokens):
            engine._row(i, token=token, pos=i, seq_id=0, logits=i == len(tokens) - 1)
        engine.batch.n_tokens = len(tokens)
        assert llama_cpp.llama_decode(ctx, engine.batch) == 0
        return numpy.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, len(tokens) - 1),
                                        shape=(engine.n_vocab,)).copy()
    finally:
        engine.head.arm()
        llama_cpp.llama_memory_seq_rm(memory, 0, -1, -1)
        engine.slots[0].cached, engine.slots[0].prompted = [], 0


def test_the_engines_matmuls_run_on_it(engine):
    before = matmul.taken()
    prompt_logits(engine, engine.tokenize(PROMPTS[0]))
    assert matmul.taken() - before >= 18 * 7  # every matmul of the 18 layers, at least
    matmul.install(False)
    try:
        before = matmul.taken()
        prompt_logits(engine, engine.tokenize(PROMPTS[0]))
        assert matmul.taken() == before
    finally:
        matmul.install(True)

