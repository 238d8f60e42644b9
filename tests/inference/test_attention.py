"""The attention kernel for prompt pieces (inference/attention.py, inference/native/attention.c):
it computes attention to rounding, a row's result does not depend on the rows beside it, and the
engine's prompt pieces run on it."""

import ctypes

import llama_cpp
import numpy
import pytest

from inference import attention, kernels
from tests.inference.test_engine import PROMPTS, new_engine
from tests.inference.test_head import ISAS, cpu_runs_the_kernel
from tests.inference.test_matmul import prompt_logits

pytestmark = pytest.mark.skipif(not cpu_runs_the_kernel(),
                                reason="this CPU has no AVX2 for the attention kernel")

HEADS, KV_HEADS, D = 4, 1, 256  # the default model's: 4 query heads share a KV head of 256
SCALE = 1 / 16


@pytest.fixture(scope="module")
def lib():
    lib = kernels.load()
    assert lib is not None
    lib.attention_rows.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int] * 5 + [ctypes.c_float] + [ctypes.c_int] * 2
    yield lib
    lib.attention_use(2)


def problem(rows: int, cells: int, *, first: int, window: int | None, heads: int = HEADS,
            kv_heads: int = KV_HEADS, d: int = D) -> tuple:
    """Random queries for the prompt positions first .. first + rows - 1 over `cells` cells of fp16
    K and V, and the causal mask (within `window` positions, if given) as llama.cpp builds it."""
    rng = numpy.random.default_rng(rows * 7 + cells)
    q = (rng.standard_normal((heads, rows, d)) * 2).astype(numpy.float32)
    k = rng.standard_normal((kv_heads, cells, d)).astype(numpy.float16)
    v = rng.standard_normal((kv_heads, cells, d)).astype(numpy.float16)
    mask = numpy.full((rows, cells), -numpy.inf, numpy.float16)
    for r in range(rows):
        position = first + r
        mask[r, (0 if window is None else max(0, position - window + 1)):position + 1] = 0
    return q, k, v, mask


def compute(lib, q, k, v, mask, *, rows: int = 16, nth: int = 1, isa: int | None = None) -> numpy.ndarray:
    """The kernel's output [row, head, d], from the given instruction set's kernel (default: this
    CPU's best), in blocks of `rows` query rows split the way nth threads split them."""
    isa = lib.attention_supported() if isa is None else isa
    if lib.attention_supported() < isa:
        pytest.skip(f"this CPU has no {ISAS[isa]}")
    assert lib.attention_use(isa) == isa
    heads, n, d = q.shape
    kv_heads, cells, _ = k.shape
    q, k, v = (numpy.ascontiguousarray(a) for a in (q, k, v))
    mask = None if mask is None else numpy.ascontiguousarray(mask)
    out = numpy.zeros((n, heads, d), numpy.float32)
    assert lib.attention_rows(q.ctypes.data, k.ctypes.data, v.ctypes.data,
                              None if mask is None else mask.ctypes.data, out.ctypes.data,
                              n, heads, kv_heads, cells, d, SCALE, rows, nth) == 0
    return out


def exact(q, k, v, mask) -> numpy.ndarray:
    """softmax(q·kᵀ·scale + mask)·v in float64."""
    heads, n, d = q.shape
    group = heads // k.shape[0]
    out = numpy.zeros((n, heads, d))
    for h in range(heads):
        s = q[h].astype(numpy.float64) @ k[h // group].astype(numpy.float64).T * SCALE
        if mask is not None:
            s = s + mask.astype(numpy.float64)
        p = numpy.exp(s - s.max(axis=1, keepdims=True))
        out[:, h] = (p / p.sum(axis=1, keepdims=True)) @ v[h // group].astype(numpy.float64)
    return out


@pytest.mark.parametrize("isa", ISAS, ids=ISAS.values())
@pytest.mark.parametrize("window", [None, 512], ids=["global", "sliding-window"])
def test_it_computes_attention_to_rounding(lib, isa, window):
    q, k, v, mask = problem(150, 1792, first=1445, window=window)
    ours = compute(lib, q, k, v, mask, isa=isa)
    assert numpy.abs(ours - exact(q, k, v, mask)).max() <= 1e-5


def test_it_computes_attention_without_a_mask(lib):
    q, k, v, _ = problem(70, 200, first=0, window=None, heads=8, kv_heads=2, d=128)
    assert numpy.abs(compute(lib, q, k, v, None) - exact(q, k, v, None)).max() <= 1e-5


def test_a_rows_result_does_not_depend_on_the_rows_beside_it(lib):
    q, k, v, mask = problem(150, 1792, first=1445, window=512)
    together = compute(lib, q, k, v, mask)
    for block, nth in [(1, 1), (7, 3), (32, 2)]:  # other blocks of rows, split across threads
        assert numpy.array_equal(compute(lib, q, k, v, mask, rows=block, nth=nth), together)
    for r in (0, 37, 149):
        alone = compute(lib, q[:, r:r + 1], k, v, mask[r:r + 1])
        assert numpy.array_equal(alone[0], together[r])  # to the bit


def test_the_two_instruction_sets_give_the_same_result(lib):
    q, k, v, mask = problem(80, 700, first=600, window=512)
    assert numpy.array_equal(compute(lib, q, k, v, mask, isa=2), compute(lib, q, k, v, mask, isa=1))


def test_it_declines_shapes_it_does_not_compute(lib):
    q, k, v, mask = problem(64, 64, first=0, window=None, heads=4, kv_heads=1, d=72)  # d not in 16s
    out = numpy.zeros((64, 4, 72), numpy.float32)
    assert lib.attention_rows(q.ctypes.data, k.ctypes.data, v.ctypes.data, mask.ctypes.data, out.ctypes.data,
                              64, 4, 1, 64, 72, SCALE, 16, 1) == -1


def test_it_was_checked_against_the_installed_llama_cpp():
    # An upgrade of llama-cpp-python fails here, instead of leaving attention to ggml unnoticed.
    assert llama_cpp.__version__ in attention.CHECKED_VERSIONS


@pytest.fixture(scope="module")
def engine():
    engine = new_engine(slots=2)
    yield engine
    engine.retire()


def test_the_engines_prompt_pieces_run_on_it_and_give_ggmls_logits_to_rounding(engine):
    tokens = engine.tokenize(" ".join(PROMPTS) * 3)[:150]
    before = attention.taken()
    ours = prompt_logits(engine, tokens)
    assert attention.taken() - before == 18  # each layer's attention
    attention.install(False)
    try:
        before = attention.taken()
        ggml = prompt_logits(engine, tokens)
        assert attention.taken() == before
    finally:
        attention.install(True)
    # Measured: 0.9 to 1.1 apart at most (logits up to 25), as far as the layers' matmul kernel
    # puts them from ggml's; a kernel that ignored the mask put them 17 to 27 apart.
    assert numpy.abs(ours - ggml).max() <= 0.1 * numpy.abs(ggml).max()
    assert ours.argmax() == ggml.argmax()


def test_it_leaves_fewer_than_64_query_rows_to_ggml(engine):  # a decoding step's, a short prompt's
    tokens = engine.tokenize(PROMPTS[0])
    assert len(tokens) < 64
    before = attention.taken()
    prompt_logits(engine, tokens)
    assert attention.taken() == before
