// The layers' quantized matmuls (Q5_0, Q8_0, Q4_K, Q6_K weights), computed by Lanthorn instead of
// ggml. Built by inference/kernels.py, installed by inference/matmul.py; see its docstring for why.
//
// ggml's CPU backend hands every quantized matmul to llamafile_sgemm first (its tinyBLAS), and
// takes its own one-row-at-a-time kernels when that declines. libggml-cpu calls llamafile_sgemm
// through its PLT, so matmul_install points that call (the library's GOT entry for it, hook.c) at
// matmul_sgemm, which computes the types above itself (matmul_kernel.h) for any number of rows,
// and passes everything else to the original.
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ggml.h"
#include "hook.h"

#define MAX_BLOCKS 256  // 8,192 columns of Q5_0 / Q8_0

typedef struct { uint16_t d; int8_t qs[32]; } __attribute__((packed)) block_q8_0;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } __attribute__((packed)) block_q5_0;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } block_q4_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } block_q6_K;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } block_q8_K;
_Static_assert(sizeof(block_q4_K) == 144 && sizeof(block_q6_K) == 210 && sizeof(block_q8_K) == 292,
               "ggml's layout");


typedef bool (*sgemm_fn)(const void *, int64_t, int64_t, int64_t, const void *, int64_t, const void *,
                         int64_t, void *, int64_t, int, int, int);

// The 6-bit scales (sm[0 .. 7]) and mins (sm[8 .. 15]) of a Q4_K super-block (ggml's get_scale_min_k4).
static inline void q4_K_scales(const uint8_t *q, uint8_t sm[16]) {
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            sm[j] = q[j] & 63;
            sm[8 + j] = q[j + 4] & 63;
        } else {
            sm[j] = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            sm[8 + j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }
}

static int isa = -1;  // the kernel in use: 2 AVX-512 VNNI, 1 AVX2, 0 none

#define KERNEL_HEADER "matmul_kernel.h"
#include "per_isa.h"

int matmul_supported(void) { return cpu_isa(); }

// Which kernel to use (the tests try each one this CPU has); returns the one used.
int matmul_use(int which) {
    const int best = matmul_supported();
    isa = which < best ? which : best;
    return isa;
}

// Whether matmul_sgemm computes a matmul of these types and shape itself.
int matmul_takes(int atype, int btype, int64_t m, int64_t k) {
    if (m % 8 != 0) return 0;
    switch (atype) {
    case GGML_TYPE_Q5_0: case GGML_TYPE_Q8_0: return btype == GGML_TYPE_Q8_0 && k <= MAX_BLOCKS;
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q6_K: return btype == GGML_TYPE_Q8_K;
    default: return 0;
    }
}

static size_t block_size(int type) {
    switch (type) {
    case GGML_TYPE_Q5_0: return sizeof(block_q5_0);
    case GGML_TYPE_Q8_0: return sizeof(block_q8_0);
    case GGML_TYPE_Q4_K: return sizeof(block_q4_K);
    case GGML_TYPE_Q6_K: return sizeof(block_q6_K);
    default: return sizeof(block_q8_K);
    }
}

// C (n rows of m floats, ldc apart) = A (m rows of k blocks, lda blocks apart) times B (n rows of
// k blocks, ldb apart), rows [m·ith/nth, m·(ith+1)/nth) of A in eights; for the tests and for
// matmul_sgemm. Returns 0, or -1 for what it does not compute.
int matmul_compute(int ith, int nth, int atype, int btype, int64_t m, int64_t n, int64_t k, const void *A,
                   int64_t lda, const void *B, int64_t ldb, float *C, int64_t ldc) {
    if (isa < 0) matmul_use(2);
    if (isa == 0 || !matmul_takes(atype, btype, m, k)) return -1;
#if defined(__x86_64__)
    (isa == 2 ? matmul_vnni : matmul_avx2)(ith, nth, atype, m, n, (int) k, A, lda * (int64_t) block_size(atype),
                                           B, ldb * (int64_t) block_size(btype), C, ldc);
    return 0;
#else
    (void) ith; (void) nth; (void) n; (void) A; (void) B; (void) C; (void) lda; (void) ldb; (void) ldc;
    return -1;
#endif
}

static struct hook sgemm_hook = {.symbol = "llamafile_sgemm"};
static long taken;  // matmuls computed here (for the tests)

// llamafile_sgemm's signature (ggml-cpu/llamafile/sgemm.h; inference/matmul.py installs this only
// for the llama-cpp-python versions checked against it). Each of ggml's threads calls it with
// its ith and nth; every thread computes its own share, and ggml waits for all of them.
bool matmul_sgemm(const void *params, int64_t m, int64_t n, int64_t k, const void *A, int64_t lda,
                  const void *B, int64_t ldb, void *C, int64_t ldc, int atype, int btype, int ctype) {
    const struct compute_params *p = params;
    if (ctype == GGML_TYPE_F32 &&
        matmul_compute(p->ith, p->nth, atype, btype, m, n, k, A, lda, B, ldb, C, ldc) == 0) {
        if (p->ith == 0) __atomic_add_fetch(&taken, 1, __ATOMIC_RELAXED);
        return true;
    }
    return ((sgemm_fn) sgemm_hook.original)(params, m, n, k, A, lda, B, ldb, C, ldc, atype, btype, ctype);
}

long matmul_taken(void) { return __atomic_load_n(&taken, __ATOMIC_RELAXED); }

// Points libggml-cpu's calls to llamafile_sgemm at matmul_sgemm (on) or back at the original.
// Returns 0; -1 where libggml-cpu is not loaded or does not call it through its GOT, -2 where the
// entry cannot be written, -3 where this CPU has no kernel.
int matmul_install(int on) {
    if (on && matmul_supported() == 0) return -3;
    return hook_point(&sgemm_hook, on ? (void *) matmul_sgemm : NULL);
}
