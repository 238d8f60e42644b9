"""The attention of prompt pieces, computed by Lanthorn instead of ggml where that pays.

Measured on 2 cores with the default model (Gemma 3 270M: 4 query heads share one KV head of
256 components; 15 of its 18 layers see a window of 512 tokens, 3 see everything): the 10th
turn of a chat (about 160 new tokens after 1,450 of history) took 130 ms more than the first,
nearly all of it ggml's flash attention. For each block of 64 query rows and each query head,
ggml turns the block's KV cells from fp16 into floats again, one value at a time, and it pads a
last block of fewer rows to 64. `native/attention.c` turns each tile of 64 cells into floats
once for a block of 16 rows and all 4 heads that share it, and computes no padding rows.
See the README's Performance for what it gives.

A row's result does not depend on the rows beside it, the block it is in, the thread that
computes it or the instruction set (each row visits the tiles it sees, in order, with the same
float operations). Like ggml's tiled kernel, which it replaces, it takes only 64 query rows or
more: the engine's prompt pieces (see inference/engine.py); a decoding step's rows stay with
ggml's one-row kernel. Its results are ggml's to rounding, not to the bit.

How it fits in ggml: libggml-cpu calls ggml_compute_forward_flash_attn_ext through its PLT;
`install` points that entry at the library's attention_forward, which computes fp16 KV without
ALiBi, soft-capping or sinks itself and passes every other call to the original. It is one
switch for the whole process, set before the first decode and left on.
"""

from inference import kernels

# The llama-cpp-python versions whose ggml attention.c was checked against: the signature of
# ggml_compute_forward_flash_attn_ext, the layout of its tensors and the head of struct
# ggml_compute_params (ith, nth). Another version leaves attention to ggml.
CHECKED_VERSIONS = {"0.3.36"}

_hook = kernels.Hook("attention", what="the attention of prompt pieces", checked_versions=CHECKED_VERSIONS)
install = _hook.install
taken = _hook.taken
