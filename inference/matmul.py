"""The layers' quantized matmuls, computed by Lanthorn instead of ggml where that pays.

Measured on 2 cores with the default model (Gemma 3 270M, whose layers are Q5_0, Q8_0, Q4_K and
Q6_K), after the output layer had its own kernel (inference/head.py): in a step of 8 sequences
the layers' matmuls took a third of the time, in ggml's kernels that cost about as much per row
for 8 rows as for one (tinyBLAS for Q5_0 and Q8_0, one row at a time for the K-quants, whose
batched and repacked kernels sum in another order for one row than for several, so the engine
turns them off; see inference/engine.py). `native/matmul.c` reads each block of 8 weight rows
once for up to 8 activation rows, as the output layer's kernel does, with AVX-512 VNNI where the
CPU has it, else AVX2. In-process, 1 / 8 sequences: 103 / 315 tok/s, against 86 / 240 with
ggml's kernels (see the README's Performance).

A row's result does not depend on the rows beside it, the thread that computes it or the
instruction set: a block's products are one exact integer, and the float steps that follow are
the same for any number of rows. So the engine's greedy answers stay the same alone and beside
others. They are ggml's to rounding, not to the bit (ggml sums a block in 8 float lanes).

How it fits in ggml: the CPU backend offers every matmul to llamafile_sgemm first, through its
library's PLT; `install` points that entry of libggml-cpu at the library's matmul_sgemm, which
computes the four types itself and passes every other matmul to the original. It is one switch
for the whole process, set before the first decode and left on.
"""

from inference import kernels

# The llama-cpp-python versions whose ggml matmul.c was checked against: llamafile_sgemm's
# signature and the head of struct ggml_compute_params (ith, nth). Another version leaves the
# matmuls to ggml until someone checks it and adds it here (requirements.txt pins one).
CHECKED_VERSIONS = {"0.3.36"}

_hook = kernels.Hook("matmul", what="the layers' matmuls", checked_versions=CHECKED_VERSIONS)
install = _hook.install
taken = _hook.taken
