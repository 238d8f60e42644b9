"""The output layer of a decoding step, computed by Lanthorn instead of llama.cpp where that pays.

Measured on 2 cores: of a step that decodes 4 sequences of the default model (Gemma 3 270M), two
thirds went to the output layer, the matmul of its 262,144 × 640 Q8_0 output matrix with the
step's rows. ggml has no batched kernel for Q8_0 on x86 that does better than one row at a time,
so that matmul bounded what batching gained. `native/head.c` reads the matrix once for all the
rows of a step, 8 output rows at a time, one to a SIMD lane, with AVX-512 VNNI where the CPU has
it, else AVX2 (see its header for the figures); no maintained library computes Q8_0 matmuls
outside ggml. Its logits are llama.cpp's to rounding (a block's 32 products are summed as one
exact integer, where ggml sums them in 8 lanes), the same with either instruction set, and a
row's logits do not depend on the rows beside it.

How it fits in llama.cpp: the context gets `head_eval` as its scheduler callback, which notes the
output layer's matrix and, once armed, keeps the rows of the final norm and stops the graph
before llama.cpp's own output matmul. After `llama_decode`, `Head.logits` writes the logits of the
kept rows where llama.cpp would have written them, so sampling reads them as before.

The kernel is part of the library that inference/kernels.py builds. Where it cannot be built or
loaded, or the CPU lacks AVX2, or the model's output layer is not a plain Q8_0 matmul, or
LANTHORN_OUTPUT_KERNEL is false, the engine leaves the output layer to llama.cpp.
"""

import ctypes
import logging
import threading

import llama_cpp

from inference import kernels

log = logging.getLogger(__name__)

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_tried = False


def load() -> ctypes.CDLL | None:
    """The kernels' library, where this CPU can run the output layer's kernel; else None."""
    global _library, _tried
    with _lock:
        if not _tried:
            _tried = True
            lib = kernels.load()
            if lib is None:
                log.warning("llama.cpp computes the output layer: Lanthorn's kernels are unavailable")
            else:
                _declare(lib)
                if lib.head_supported():
                    _library = lib
                else:
                    log.info("llama.cpp computes the output layer: this CPU has no AVX2")
        return _library


def _declare(lib: ctypes.CDLL) -> None:
    lib.head_new.restype = ctypes.c_void_p
    lib.head_free.argtypes = [ctypes.c_void_p]
    lib.head_arm.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.head_weight_ok.argtypes = [ctypes.c_void_p]
    lib.head_rows.argtypes = [ctypes.c_void_p]
    lib.head_rows.restype = ctypes.c_int64
    lib.head_output_asks.argtypes = [ctypes.c_void_p]
    lib.head_output_asks.restype = ctypes.c_int64
    lib.head_use.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.head_logits.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.POINTER(ctypes.c_float)), ctypes.c_int]


class Head:
    """The output layer of one llama context. `attach` before the context is made; `arm` after a
    first decode has shown the graph; then `logits` after each decode."""

    def __init__(self, lib: ctypes.CDLL, *, n_threads: int):
        self.lib = lib
        self.n_threads = n_threads
        self.state = lib.head_new()
        if not self.state:
            raise MemoryError("head_new")
        self.armed = False
        self._callback = llama_cpp.ggml_backend_sched_eval_callback(ctypes.cast(lib.head_eval, ctypes.c_void_p).value)

    def attach(self, params: llama_cpp.llama_context_params) -> None:
        params.cb_eval = self._callback
        params.cb_eval_user_data = self.state

    def arm(self, on: bool = True) -> bool:
        """Takes over the output layer if the graph seen so far has one this kernel computes (or,
        `on` false, leaves it to llama.cpp); returns whether it is taken over."""
        self.lib.head_arm(self.state, int(on))
        self.armed = on and bool(self.lib.head_weight_ok(self.state))
        return self.armed

    def logits(self, ctx: llama_cpp.llama_context_p, rows: list[int]) -> None:
        """Writes the logits of the last decode's output rows (batch rows `rows`, in batch order)."""
        if self.lib.head_rows(self.state) != len(rows):
            raise RuntimeError(f"the output layer kept {self.lib.head_rows(self.state)} rows, "
                               f"not the {len(rows)} the step wants")
        out = (ctypes.POINTER(ctypes.c_float) * len(rows))(*(llama_cpp.llama_get_logits_ith(ctx, row) for row in rows))
        if self.lib.head_logits(self.state, out, self.n_threads) != 0:
            raise RuntimeError("the output layer's kernel had nothing to compute from")

    def close(self) -> None:
        if self.state:
            self.lib.head_free(self.state)
            self.state = None


def for_context(*, n_threads: int, enabled: bool) -> Head | None:
    """A Head for a new context, or None where llama.cpp keeps the output layer."""
    lib = load() if enabled else None
    return Head(lib, n_threads=n_threads) if lib is not None else None
