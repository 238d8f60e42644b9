"""Lanthorn's native kernels: one library, built from inference/native/*.c.

- native/head.c: the output layer of a decoding step (inference/head.py);
- native/matmul.c: the layers' quantized matmuls (inference/matmul.py);
- native/attention.c: the attention of prompt pieces (inference/attention.py);
- native/hook.c: how the last two take ggml's calls.

The library is built against llama-cpp-python's ggml.h into the gitignored build/kernels/ (by
`scripts/bootstrap.sh`, or at first use), named by a digest of its sources and ggml.h, so a
change to either builds a new one. Where it cannot be built or loaded, `load` returns None and
llama.cpp computes everything itself.
"""

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import llama_cpp

log = logging.getLogger(__name__)

BASE_DIR = Path(__file__).resolve().parent.parent
NATIVE = Path(__file__).resolve().parent / "native"
SOURCES = [NATIVE / "head.c", NATIVE / "matmul.c", NATIVE / "attention.c", NATIVE / "hook.c"]
OUT = BASE_DIR / "build" / "kernels"
INCLUDE = Path(llama_cpp.__file__).resolve().parent.parent / "include"  # llama-cpp-python's headers

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_tried = False


def library_path() -> Path:
    """Where the library of these sources and these ggml headers lives."""
    files = sorted(NATIVE.glob("*.[ch]")) + [INCLUDE / "ggml.h"]
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in files)).hexdigest()[:16]
    return OUT / f"libkernels-{digest}.so"


def build() -> Path:
    """Compiles the sources unless build/kernels/ already holds them; returns the library's path."""
    path = library_path()
    if path.exists():
        return path
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler (cc) to build Lanthorn's kernels")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        built = Path(tmp) / path.name
        # -ffp-contract=off: no multiply-add fused behind the kernels' back, so each instruction
        # set's build does the float steps its source spells out, and gives the same bits.
        subprocess.run([compiler, "-O3", "-ffp-contract=off", "-fPIC", "-shared", "-fopenmp", f"-I{INCLUDE}",
                        *map(str, SOURCES), "-ldl", "-lm", "-o", str(built)],
                       check=True, capture_output=True, text=True)
        os.replace(built, path)  # atomic: a process loading it meanwhile sees a whole file
    return path


def load() -> ctypes.CDLL | None:
    """The library, built if need be; None where it cannot be had."""
    global _library, _tried
    with _lock:
        if not _tried:
            _tried = True
            try:
                _library = ctypes.CDLL(str(build()))
            except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
                detail = getattr(exc, "stderr", "") or exc
                log.warning("llama.cpp computes everything: Lanthorn's kernels are unavailable (%s)", detail)
        return _library


class Hook:
    """One of ggml's functions that a kernel of the library takes calls of (native/hook.c), while
    llama-cpp-python is a version the kernel was checked against (requirements.txt pins one):
    `<name>_install(on)` repoints libggml-cpu's calls, `<name>_taken()` counts what it computed."""

    FAILURES = {-1: "libggml-cpu does not call it through its PLT",
                -2: "its GOT entry cannot be written", -3: "this CPU has no AVX2"}

    def __init__(self, name: str, *, what: str, checked_versions: set[str]):
        self.name, self.what, self.checked_versions = name, what, checked_versions
        self._lock = threading.Lock()
        self._installed: bool | None = None

    def install(self, on: bool = True) -> bool:
        """Points ggml's calls at Lanthorn's kernel (or, `on` false, back at ggml's); returns
        whether Lanthorn's kernel takes them."""
        with self._lock:
            if self._installed is on:
                return on
            self._installed = False
            lib = load()
            if lib is None:
                return False
            if on and llama_cpp.__version__ not in self.checked_versions:
                log.warning("ggml computes %s: the kernel was not checked against llama-cpp-python %s",
                            self.what, llama_cpp.__version__)
                return False
            status = getattr(lib, f"{self.name}_install")(int(on))
            if status != 0:
                log.warning("ggml computes %s: %s", self.what, self.FAILURES.get(status, status))
                return False
            self._installed = on
            if on:
                log.info("Lanthorn's kernel computes %s", self.what)
            return on

    def taken(self) -> int:
        """How many calls Lanthorn's kernel has computed in this process (for the tests)."""
        lib = load()
        if lib is None:
            return 0
        counter = getattr(lib, f"{self.name}_taken")
        counter.restype = ctypes.c_long
        return counter()


if __name__ == "__main__":
    print(f"kernels: {build()}")
