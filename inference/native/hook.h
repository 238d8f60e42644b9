// Repointing one of libggml-cpu's calls at a Lanthorn function (hook.c). libggml-cpu calls its own
// exported functions through its PLT, so each call looks its target up in the library's GOT; a
// hook writes another address into that entry. Nothing in llama.cpp is patched or rebuilt.
#pragma once

struct compute_params { int ith, nth; };  // the head of ggml's struct ggml_compute_params

struct hook {
    const char *symbol;  // the function libggml-cpu calls, e.g. "llamafile_sgemm"
    void **entry;        // its GOT entry in libggml-cpu, once found
    void *original;      // the function itself
};

// Points libggml-cpu's calls to hook->symbol at fn, or back at the original (fn NULL). Returns 0;
// -1 where libggml-cpu is not loaded or does not call it through its GOT, -2 where the entry
// cannot be written.
int hook_point(struct hook *hook, void *fn);
