// The output layer ("lm head") of a model whose output matrix is Q8_0, for the few rows of one
// decoding step, with AVX-512 VNNI or AVX2. Built by inference/head.py; see its docstring for why.
//
// llama.cpp computes the logits of a step with one matmul of the output matrix (for Gemma 3,
// 262,144 rows of 640) and the step's rows. On x86 ggml has no interleaved ("repacked") layout
// for Q8_0, and its kernels for two rows or more cost about as much per row as one row alone, so
// that matmul, not the layers, bounds what batching gains. This kernel reads each block of the
// matrix once for all the rows of the step, 8 output rows at a time, one to a lane, so that a
// row of the step costs one dot-4 instruction per 4 weights of 8 output rows (head_kernel.h).
// Measured alone on 2 cores (AMD EPYC, AVX-512 VNNI), a synthetic matrix of this shape: 3.3 / 3.5
// / 3.4 / 5.5 ms for 1 / 2 / 4 / 8 rows, against 3.7 / 3.4 / 4.9 / 10.3 ms for the kernel before
// it (one output row at a time, in ggml's order) and 9.2 / 23.4 / 30.7 ms (1 / 4 / 8) in ggml.
//
// A row's result does not depend on the other rows: each row's sums are taken in the same order
// whatever the number of rows, threads or instruction set, and each output row is computed by
// one thread. It differs from llama.cpp's in the last bits (ggml adds a block's products in 8
// lanes and the lanes at the end; here a block is one exact integer).
//
// head_eval is a ggml scheduler callback (llama_context_params.cb_eval): it finds the matmul of
// the output layer in the graph ("result_output", whose input is "result_norm"), and once armed
// it keeps the rows of "result_norm" and stops the graph there, so llama.cpp's own matmul of the
// output layer is not computed. head_logits then computes the logits from the kept rows.
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"

#define MAX_ROWS 64     // rows kept per step (the engine asks for far fewer: one per slot)
#define MAX_BLOCKS 256  // 8,192 embedding dimensions

typedef struct {
    uint16_t d;  // scale, IEEE half
    int8_t qs[32];
} __attribute__((packed)) block_q8_0;

struct head_state {
    int armed;             // keep result_norm's rows and stop the graph there
    int weight_ok;         // result_output is a plain matmul of a Q8_0 matrix and result_norm
    const block_q8_0 *weight;
    int64_t n_vocab, n_embd;
    int64_t rows;          // rows kept at the last decode; -1 when result_norm was not seen
    int64_t output_asks;   // times the scheduler reached llama.cpp's output matmul (for the tests)
    float hidden[MAX_ROWS * MAX_BLOCKS * 32];
    int isa;                                // the kernel: 2 AVX-512 VNNI, 1 AVX2, 0 none
    int8_t xq[MAX_ROWS][MAX_BLOCKS * 32];   // the rows in Q8_0
    float dx[MAX_ROWS][MAX_BLOCKS];         // their blocks' scales
    int32_t sx[MAX_ROWS][MAX_BLOCKS];       // and their blocks' sums (for VNNI)
};

int head_supported(void);

struct head_state *head_new(void) {
    struct head_state *s = calloc(1, sizeof *s);  // its pages are mapped as the rows come
    if (s) {
        s->rows = -1;
        s->isa = head_supported();
    }
    return s;
}

void head_free(struct head_state *s) { free(s); }
void head_arm(struct head_state *s, int armed) { s->armed = armed && s->weight_ok; }
int head_weight_ok(const struct head_state *s) { return s->weight_ok; }
int64_t head_rows(const struct head_state *s) { return s->rows; }
int64_t head_output_asks(const struct head_state *s) { return s->output_asks; }

static void inspect_output(struct head_state *s, const struct ggml_tensor *t) {
    const struct ggml_tensor *w = t->src[0], *x = t->src[1];
    s->weight_ok = t->op == GGML_OP_MUL_MAT && w && x && w->type == GGML_TYPE_Q8_0 &&
                   w->extra == NULL &&  // not in a repacked layout
                   strcmp(x->name, "result_norm") == 0 && x->type == GGML_TYPE_F32 &&
                   w->ne[0] % 32 == 0 && w->ne[0] <= MAX_BLOCKS * 32 && w->ne[1] % 8 == 0 &&
                   w->ne[2] == 1 && w->ne[3] == 1 &&
                   w->nb[1] == (size_t)(w->ne[0] / 32) * sizeof(block_q8_0) && w->data != NULL;
    if (s->weight_ok) {
        s->weight = w->data;
        s->n_embd = w->ne[0];
        s->n_vocab = w->ne[1];
    }
}

bool head_eval(struct ggml_tensor *t, bool ask, void *user_data) {
    struct head_state *s = user_data;
    if (ask) {
        if (strcmp(t->name, "result_output") == 0) {
            s->output_asks++;
            inspect_output(s, t);
            return false;
        }
        if (strcmp(t->name, "result_norm") == 0) {
            s->rows = -1;
            return s->armed;
        }
        return false;
    }
    // result_norm, computed: keep its rows, and compute no further (the output layer is ours)
    if (t->type != GGML_TYPE_F32 || t->ne[0] != s->n_embd || t->ne[1] > MAX_ROWS ||
        t->nb[1] != (size_t) t->ne[0] * sizeof(float)) {
        s->rows = -1;
        return true;  // unexpected: let llama.cpp finish the graph (the engine then fails the step)
    }
    memcpy(s->hidden, t->data, (size_t) t->ne[1] * t->ne[0] * sizeof(float));
    s->rows = t->ne[1];
    return false;
}

// The kernel, compiled once for each instruction set (head_kernel.h): its one difference is how
// a block's 32 int8 products are summed, 4 to an int32 lane, which gives the same integers.
#define KERNEL_HEADER "head_kernel.h"
#include "per_isa.h"

int head_supported(void) { return cpu_isa(); }

// Which kernel the state uses (the tests try each one this CPU has); returns the one it uses.
int head_use(struct head_state *s, int isa) {
    const int best = head_supported();
    s->isa = isa < best ? isa : best;
    return s->isa;
}

// The logits of the rows kept at the last decode: row r into out[r] (n_vocab floats each).
// Returns 0, or -1 when there is nothing to compute them from.
int head_logits(struct head_state *s, float *const *out, int n_threads) {
    if (!s->weight_ok || s->rows < 0 || s->isa == 0) return -1;
#if defined(__x86_64__)
    if (s->rows > 0) (s->isa == 2 ? logits_vnni : logits_avx2)(s, out, n_threads);
    return 0;
#else
    (void) out; (void) n_threads;
    return -1;
#endif
}
