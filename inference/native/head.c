// The output layer ("lm head") of a model whose output matrix is Q8_0, for the few rows of one
// decoding step, with AVX-512 VNNI. Built by inference/head.py; see its docstring for why.
//
// llama.cpp computes the logits of a step with one matmul of the output matrix (for Gemma 3,
// 262,144 rows of 640) and the step's rows. On x86 ggml has no interleaved ("repacked") layout
// for Q8_0, and its kernels for two rows or more cost about as much per row as one row alone, so
// that matmul, not the layers, bounds what batching gains. This kernel reads each block of the
// matrix once for all the rows of the step and takes the dot products of 32 int8 pairs in one
// instruction: measured on 2 cores (AMD EPYC, AVX-512), 6.5 / 10.3 / 20.4 ms for 1 / 4 / 8 rows,
// against 9.2 / 23.4 / 30.7 ms in ggml.
//
// A row's result does not depend on the other rows: each row's sums are taken in the same order
// whatever the number of rows or threads, and each output row is computed by one thread.
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
    uint8_t xu[MAX_ROWS][MAX_BLOCKS * 32];  // the rows in Q8_0, each value + 128
    float dx[MAX_ROWS][MAX_BLOCKS];         // and their blocks' scales
};

struct head_state *head_new(void) {
    struct head_state *s = calloc(1, sizeof *s);  // its pages are mapped as the rows come
    if (s) s->rows = -1;
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
                   w->ne[0] % 32 == 0 && w->ne[0] <= MAX_BLOCKS * 32 && w->ne[2] == 1 && w->ne[3] == 1 &&
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

#if defined(__x86_64__)
#include <immintrin.h>

#define KERNEL __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))

// A row in Q8_0 as ggml's quantize_row_q8_0 makes it (its AVX path: round to nearest, even),
// each value stored plus 128 (the unsigned operand of the dot-product instruction).
KERNEL static void quantize(const float *x, int nb, uint8_t *xu, float *dx) {
    for (int b = 0; b < nb; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        const float d = amax / 127.f, id = d ? 127.f / amax : 0.f;
        dx[b] = _cvtsh_ss(_cvtss_sh(d, 0));
        for (int j = 0; j < 32; j++) xu[b * 32 + j] = (uint8_t)((int) nearbyintf(x[b * 32 + j] * id) + 128);
    }
}

// Logits of N rows for the output rows [v0, v1). For each block, the weights are loaded once;
// (x + 128)·w - 128·Σw is each row's int8 dot product, scaled by both blocks' scales.
static inline __attribute__((always_inline)) KERNEL void rows_kernel(
        const block_q8_0 *W, int64_t v0, int64_t v1, int nb, uint8_t (*xu)[MAX_BLOCKS * 32],
        float (*dx)[MAX_BLOCKS], float *const *out, const int N) {
    const __m256i k128 = _mm256_set1_epi8((char) 0x80);
    for (int64_t v = v0; v < v1; v++) {
        const block_q8_0 *wr = W + v * nb;
        __m256 acc[8];  // a fixed size, so that the compiler keeps them in registers
        for (int r = 0; r < N; r++) acc[r] = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            const __m256i w = _mm256_loadu_si256((const __m256i *) wr[b].qs);
            const __m256i corr = _mm256_dpbusd_epi32(_mm256_setzero_si256(), k128, w);
            const __m256 dw = _mm256_set1_ps(_cvtsh_ss(wr[b].d));
            for (int r = 0; r < N; r++) {
                const __m256i xv = _mm256_loadu_si256((const __m256i *)(xu[r] + b * 32));
                const __m256i sum = _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), xv, w), corr);
                acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_broadcast_ss(&dx[r][b])),
                                         _mm256_cvtepi32_ps(sum), acc[r]);
            }
        }
        for (int r = 0; r < N; r++) {
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc[r]), _mm256_extractf128_ps(acc[r], 1));
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            h = _mm_add_ss(h, _mm_movehdup_ps(h));
            out[r][v] = _mm_cvtss_f32(h);
        }
    }
}

KERNEL static void logits_avx512(struct head_state *s, float *const *out, int n_threads) {
    const int nb = (int)(s->n_embd / 32), n_rows = (int) s->rows;
    uint8_t (*xu)[MAX_BLOCKS * 32] = s->xu;
    float (*dx)[MAX_BLOCKS] = s->dx;
    for (int r = 0; r < n_rows; r++) quantize(s->hidden + (int64_t) r * s->n_embd, nb, xu[r], dx[r]);
    const int64_t n_vocab = s->n_vocab;
    const block_q8_0 *W = s->weight;
    // Chunks of the output rows, taken by whichever thread is free: on a machine as busy as its
    // cores (the web processes, Redis), a thread that loses its core for a while holds up no one.
    const int64_t chunk = 2048, n_chunks = (n_vocab + chunk - 1) / chunk;
    #pragma omp parallel for num_threads(n_threads) schedule(dynamic, 1)
    for (int64_t c = 0; c < n_chunks; c++) {
        const int64_t v0 = c * chunk, v1 = v0 + chunk < n_vocab ? v0 + chunk : n_vocab;
        for (int r0 = 0; r0 < n_rows; r0 += 8) {  // up to 8 rows a pass over the matrix
            const int n = n_rows - r0 < 8 ? n_rows - r0 : 8;
            float *const *o = out + r0;
            switch (n) {
            case 1: rows_kernel(W, v0, v1, nb, xu + r0, dx + r0, o, 1); break;
            case 2: rows_kernel(W, v0, v1, nb, xu + r0, dx + r0, o, 2); break;
            case 3: rows_kernel(W, v0, v1, nb, xu + r0, dx + r0, o, 3); break;
            case 4: rows_kernel(W, v0, v1, nb, xu + r0, dx + r0, o, 4); break;
            case 5: rows_kernel(W, v0, v1, nb, xu + r0, dx + r0, o, 5); break;
            case 6: rows_kernel(W, v0, v1, nb, xu + r0, dx + r0, o, 6); break;
            case 7: rows_kernel(W, v0, v1, nb, xu + r0, dx + r0, o, 7); break;
            default: rows_kernel(W, v0, v1, nb, xu + r0, dx + r0, o, 8); break;
            }
        }
    }
}

int head_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
}
#else
int head_supported(void) { return 0; }
#endif

// The logits of the rows kept at the last decode: row r into out[r] (n_vocab floats each).
// Returns 0, or -1 when there is nothing to compute them from.
int head_logits(struct head_state *s, float *const *out, int n_threads) {
    if (!s->weight_ok || s->rows < 0) return -1;
#if defined(__x86_64__)
    if (s->rows > 0) logits_avx512(s, out, n_threads);
    return 0;
#else
    (void) out; (void) n_threads;
    return -1;
#endif
}
