// The attention of prompt pieces (ggml's FLASH_ATTN_EXT with 64 or more query rows), computed by
// Lanthorn instead of ggml. Built by inference/kernels.py, installed by inference/attention.py;
// see its docstring for why.
//
// libggml-cpu calls ggml_compute_forward_flash_attn_ext through its PLT, so attention_install
// points that call (hook.c) at attention_forward, which computes the shapes it knows (fp16 K and
// V, no ALiBi, soft-capping or sinks) itself and passes everything else, and every call with
// fewer than 64 query rows (a decoding step's), to the original.
//
// How: a unit of work is a block of query rows of one stream, for all the query heads that share
// a KV head. It walks the KV cells in tiles of 64 from cell 0, skips a tile where the mask hides
// all its cells from every row of the block, and otherwise turns the tile's K into floats once
// for all those rows and heads (ggml does it for each head and each block of 64 rows), computes
// the scores, the online softmax and the weighted sum of V (attention_kernel.h).
//
// A query row's result does not depend on the rows beside it, on the block size or on the thread
// that computes it: it visits the tiles in which it sees a cell, in order, through the same
// operations; a tile it does not see leaves it as it was.
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "hook.h"

#define TILE 64        // KV cells per tile, and the fewest query rows taken (ggml's GGML_FA_TILE_Q)
#define MAX_D 256      // head size
#define MAX_GROUP 8    // query heads per KV head
#define MAX_ROWS 32    // query rows per unit of work
#define ROWS 16        // the rows per unit attention_forward uses
#define MAX_Q (MAX_ROWS * MAX_GROUP + 8)

// One attention: the addresses of query row r of head h in stream i3, etc. (byte strides).
struct attention {
    const char *q, *k, *v, *mask;  // q f32; k, v, mask fp16 (mask may be NULL)
    char *out;                     // f32
    size_t q_row, q_head, q_seq, k_row, k_head, k_seq, v_row, v_head, v_seq;
    size_t mask_row, mask_seq, out_row, out_head, out_seq;
    int n_rows, n_head, n_head_kv, n_seq, n_seq_kv, n_kv, d;
    float scale;
};

// A thread's working memory for one unit.
struct scratch {
    float kt[MAX_D * TILE], vf[TILE * MAX_D];
    float s[MAX_Q * TILE], p[MAX_Q * TILE], o[MAX_Q * MAX_D];
    float mx[MAX_Q], sum[MAX_Q], mask[MAX_ROWS * TILE];
    const float *q[MAX_Q];
    int act[MAX_Q];
    char open[MAX_ROWS];
};

static int isa = -1;  // the kernel in use: 2 AVX-512, 1 AVX2, 0 none

#define KERNEL_HEADER "attention_kernel.h"
#include "per_isa.h"

int attention_supported(void) { return cpu_isa(); }

// Which kernel to use (the tests try each one this CPU has); returns the one used.
int attention_use(int which) {
    const int best = attention_supported();
    isa = which < best ? which : best;
    return isa;
}

static struct scratch *thread_scratch(void) {
    static __thread struct scratch *w;  // one per thread, kept for the process's life
    if (!w) w = aligned_alloc(64, sizeof(struct scratch));
    if (!w) abort();  // the other threads are computing their share: none may fall back alone
    return w;
}

// Thread ith of nth computes its units: blocks of `rows` query rows, taken in turn.
static int compute(const struct attention *p, int rows, int ith, int nth) {
    if (isa < 0) attention_use(2);
    if (isa == 0 || rows < 1 || rows > MAX_ROWS) return -1;
    struct scratch *w = thread_scratch();
    const int blocks = (p->n_rows + rows - 1) / rows;
    const int units = p->n_seq * p->n_head_kv * blocks;
    for (int u = ith; u < units; u += nth) {
        const int b = u % blocks, g = u / blocks % p->n_head_kv, i3 = u / blocks / p->n_head_kv;
        const int r1 = (b + 1) * rows < p->n_rows ? (b + 1) * rows : p->n_rows;
#if defined(__x86_64__)
        (isa == 2 ? attend_vnni : attend_avx2)(p, i3, g, b * rows, r1, w);
#endif
    }
    return 0;
}

static bool shape_ok(int d, int n_head, int n_head_kv) {
    return d > 0 && d % 16 == 0 && d <= MAX_D && n_head_kv > 0 && n_head % n_head_kv == 0 &&
           n_head / n_head_kv <= MAX_GROUP;
}

// For the tests: out[r][h] (d floats) = attention of q[h][r] over k[h_kv][c], v[h_kv][c] (fp16)
// with mask[r][c] (fp16, or NULL), for one stream, in blocks of `rows` rows, split the way nth
// threads would split it (run here one after the other). Returns 0, or -1 for what it does not
// compute.
int attention_rows(const float *q, const uint16_t *k, const uint16_t *v, const uint16_t *mask, float *out,
                   int n_rows, int n_head, int n_head_kv, int n_kv, int d, float scale, int rows, int nth) {
    if (!shape_ok(d, n_head, n_head_kv)) return -1;
    const struct attention p = {
        .q = (const char *) q, .k = (const char *) k, .v = (const char *) v, .mask = (const char *) mask,
        .out = (char *) out,
        .q_row = d * 4, .q_head = (size_t) n_rows * d * 4, .k_row = d * 2, .k_head = (size_t) n_kv * d * 2,
        .v_row = d * 2, .v_head = (size_t) n_kv * d * 2, .mask_row = (size_t) n_kv * 2,
        .out_row = (size_t) n_head * d * 4, .out_head = d * 4,
        .n_rows = n_rows, .n_head = n_head, .n_head_kv = n_head_kv, .n_seq = 1, .n_seq_kv = 1,
        .n_kv = n_kv, .d = d, .scale = scale};
    for (int ith = 0; ith < nth; ith++)
        if (compute(&p, rows, ith, nth) != 0) return -1;
    return 0;
}

typedef void (*forward_fn)(const void *, struct ggml_tensor *);

static struct hook flash_hook = {.symbol = "ggml_compute_forward_flash_attn_ext"};
static long taken;  // attentions computed here (for the tests)

// ggml's FLASH_ATTN_EXT as this kernel can take it: q [d, rows, heads, streams] f32, k and v
// [d, cells, KV heads, streams] fp16, mask [cells, rows, 1, 1 or streams] fp16; dst [d, heads,
// rows, streams] f32 (ggml_compute_forward_flash_attn_ext_f16's layout); false otherwise.
static bool describe(const struct ggml_tensor *dst, struct attention *p) {
    const struct ggml_tensor *q = dst->src[0], *k = dst->src[1], *v = dst->src[2], *mask = dst->src[3];
    float scale, max_bias, softcap;
    memcpy(&scale, (const float *) dst->op_params + 0, sizeof(float));
    memcpy(&max_bias, (const float *) dst->op_params + 1, sizeof(float));
    memcpy(&softcap, (const float *) dst->op_params + 2, sizeof(float));
    if (q->type != GGML_TYPE_F32 || k->type != GGML_TYPE_F16 || v->type != GGML_TYPE_F16 ||
        dst->type != GGML_TYPE_F32 || dst->src[4] != NULL || max_bias != 0.0f || softcap != 0.0f)
        return false;
    const int d = (int) q->ne[0];
    if (k->ne[0] != d || v->ne[0] != d || dst->ne[0] != d || !shape_ok(d, (int) q->ne[2], (int) k->ne[2]) ||
        v->ne[2] != k->ne[2] || v->ne[1] != k->ne[1] || v->ne[3] != k->ne[3] || q->ne[3] % k->ne[3] != 0 ||
        q->nb[0] != 4 || k->nb[0] != 2 || v->nb[0] != 2 || dst->nb[0] != 4 || q->ne[1] < TILE ||
        dst->ne[1] != q->ne[2] || dst->ne[2] != q->ne[1] || dst->ne[3] != q->ne[3])
        return false;
    if (mask && (mask->type != GGML_TYPE_F16 || mask->ne[0] < k->ne[1] || mask->ne[1] < q->ne[1] ||
                 mask->ne[2] != 1 || (mask->ne[3] != 1 && mask->ne[3] != q->ne[3]) || mask->nb[0] != 2))
        return false;
    *p = (struct attention){
        .q = q->data, .k = k->data, .v = v->data, .mask = mask ? mask->data : NULL, .out = dst->data,
        .q_row = q->nb[1], .q_head = q->nb[2], .q_seq = q->nb[3],
        .k_row = k->nb[1], .k_head = k->nb[2], .k_seq = k->nb[3],
        .v_row = v->nb[1], .v_head = v->nb[2], .v_seq = v->nb[3],
        .mask_row = mask ? mask->nb[1] : 0, .mask_seq = mask && mask->ne[3] > 1 ? mask->nb[3] : 0,
        // ggml writes row i1 of head i2 in stream i3 at (i3·ne2·ne1 + i2 + i1·ne1)·nb1
        .out_head = dst->nb[1], .out_row = dst->ne[1] * dst->nb[1], .out_seq = dst->ne[2] * dst->ne[1] * dst->nb[1],
        .n_rows = (int) q->ne[1], .n_head = (int) q->ne[2], .n_head_kv = (int) k->ne[2],
        .n_seq = (int) q->ne[3], .n_seq_kv = (int) k->ne[3], .n_kv = (int) k->ne[1], .d = d, .scale = scale};
    return true;
}

// ggml_compute_forward_flash_attn_ext's signature (ggml-cpu/ops.h; inference/attention.py installs
// this only for the llama-cpp-python versions checked against it). Each of ggml's threads calls
// it; every thread computes its own units, and ggml waits for all of them after the node.
void attention_forward(const void *params, struct ggml_tensor *dst) {
    const struct compute_params *cp = params;
    struct attention p;
    if (describe(dst, &p) && compute(&p, ROWS, cp->ith, cp->nth) == 0) {
        if (cp->ith == 0) __atomic_add_fetch(&taken, 1, __ATOMIC_RELAXED);
        return;
    }
    ((forward_fn) flash_hook.original)(params, dst);
}

long attention_taken(void) { return __atomic_load_n(&taken, __ATOMIC_RELAXED); }

// Points libggml-cpu's flash attention at attention_forward (on) or back at ggml's. Returns 0; -1
// where libggml-cpu is not loaded or does not call it through its GOT, -2 where the entry cannot
// be written, -3 where this CPU has no kernel.
int attention_install(int on) {
    if (on && attention_supported() == 0) return -3;
    return hook_point(&flash_hook, on ? (void *) attention_forward : NULL);
}
