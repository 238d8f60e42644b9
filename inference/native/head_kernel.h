// The output layer's kernel, included by head.c once for each instruction set (per_isa.h), with
// KERNEL(name) naming its functions and VNNI 1 (AVX-512 VNNI) or 0 (AVX2).
//
// Each float lane holds one output row (a token): a pass takes 8 output rows at once, turns each
// block of their 8 × 32 weights so that lane i holds row i's weights (an 8 × 8 transpose of
// 4-byte groups), and then, for each of the step's rows, sums the block's 32 products of each
// output row into one int32 lane, 4 at a time. The weights are loaded and turned once for all
// the step's rows, and a row then costs 8 dot-4 instructions and 3 float operations per block of
// 8 output rows, where one output row at a time (ggml's order) cost 4 to 6 per block of one.
//
// The two instruction sets give the same logits: a block's sum is one exact integer in both, and
// the floats that follow are the same operations in the same order,
//   logit = fma(dw_b · dx_b, float(Σ_b), ...), blocks in order,
// whatever the number of rows, threads or instruction set. (ggml sums a block in 8 lanes and
// adds the lanes at the end, so the logits differ from llama.cpp's in the last bits.)
// How each instruction set sums a block: q8_0_sums in shared_kernel.h (with VNNI, from the Σx of
// each block, which the row's quantization computes).

// A row in Q8_0, as ggml's quantize_row_q8_0 makes it (its AVX path: round to nearest, even),
// and the sum of each block's quants.
static void KERNEL(quantize)(const float *x, int nb, int8_t *xq, float *dx, int32_t *sx) {
    for (int b = 0; b < nb; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        const float d = amax / 127.f, id = d ? 127.f / amax : 0.f;
        dx[b] = _cvtsh_ss(_cvtss_sh(d, 0));
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            xq[b * 32 + j] = (int8_t) nearbyintf(x[b * 32 + j] * id);
            sum += xq[b * 32 + j];
        }
        sx[b] = sum;
    }
}

// Block b of output rows v0 .. v0 + 7, turned: lane i of t[k] holds bytes 4k .. 4k + 3 of row
// v0 + i; and the 8 rows' scales (8 loads: a gather was slower).
static inline __attribute__((always_inline)) void KERNEL(turn)(
        const block_q8_0 *W, int64_t v0, int nb, int b, __m256i t[8], __m256 *dw) {
    const block_q8_0 *blk = W + v0 * nb + b;
    __m256i r[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_si256((const __m256i *) blk[i * nb].qs);
    KERNEL(turn8)(r, t);
    const __m128i d16 = _mm_setr_epi16(blk[0].d, blk[nb].d, blk[2 * nb].d, blk[3 * nb].d,
                                       blk[4 * nb].d, blk[5 * nb].d, blk[6 * nb].d, blk[7 * nb].d);
    *dw = _mm256_cvtph_ps(d16);
}

// Logits of N rows for the output rows [v0, v1), v1 - v0 a multiple of 8.
static inline __attribute__((always_inline)) void KERNEL(rows)(
        const block_q8_0 *W, int64_t v0, int64_t v1, int nb, int8_t (*xq)[MAX_BLOCKS * 32],
        float (*dx)[MAX_BLOCKS], int32_t (*sx)[MAX_BLOCKS], float *const *out, const int N) {
    // The CPU's prefetchers do not follow 8 rows read a block at a time: each pass fetches the
    // rows of the pass after next (8 · 680 bytes for this model), a part in each block. Measured,
    // one row: 12.2 ms without, 3.3 ms with. (A prefetch past the matrix's end does not fault.)
    const int part = (8 * nb * (int) sizeof(block_q8_0) + nb - 1) / nb;
    for (int64_t v = v0; v < v1; v += 8) {
        __m256 acc[8];  // a fixed size, so that the compiler keeps them in registers
        for (int r = 0; r < N; r++) acc[r] = _mm256_setzero_ps();
        const char *ahead = (const char *)(W + (v + 16) * nb);
        for (int b = 0; b < nb; b++) {
            __m256i t[8];
            __m256 dw;
            for (int off = 0; off < part; off += 64) _mm_prefetch(ahead + b * part + off, _MM_HINT_T0);
            KERNEL(turn)(W, v, nb, b, t, &dw);
            KERNEL(q8_0_prepare)(t);
            for (int r = 0; r < N; r++) {
                const __m256i sum = KERNEL(q8_0_sums)(t, (const int32_t *)(xq[r] + b * 32), sx[r][b]);
                acc[r] = KERNEL(add_block)(acc[r], dw, dx[r][b], sum);
            }
        }
        for (int r = 0; r < N; r++) _mm256_storeu_ps(out[r] + v, acc[r]);
    }
}

static void KERNEL(logits)(struct head_state *s, float *const *out, int n_threads) {
    const int nb = (int)(s->n_embd / 32), n_rows = (int) s->rows;
    int8_t (*xq)[MAX_BLOCKS * 32] = s->xq;
    float (*dx)[MAX_BLOCKS] = s->dx;
    int32_t (*sx)[MAX_BLOCKS] = s->sx;
    for (int r = 0; r < n_rows; r++)
        KERNEL(quantize)(s->hidden + (int64_t) r * s->n_embd, nb, xq[r], dx[r], sx[r]);
    const int64_t n_vocab = s->n_vocab;  // a multiple of 8 (inspect_output)
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
            case 1: KERNEL(rows)(W, v0, v1, nb, xq + r0, dx + r0, sx + r0, o, 1); break;
            case 2: KERNEL(rows)(W, v0, v1, nb, xq + r0, dx + r0, sx + r0, o, 2); break;
            case 3: KERNEL(rows)(W, v0, v1, nb, xq + r0, dx + r0, sx + r0, o, 3); break;
            case 4: KERNEL(rows)(W, v0, v1, nb, xq + r0, dx + r0, sx + r0, o, 4); break;
            case 5: KERNEL(rows)(W, v0, v1, nb, xq + r0, dx + r0, sx + r0, o, 5); break;
            case 6: KERNEL(rows)(W, v0, v1, nb, xq + r0, dx + r0, sx + r0, o, 6); break;
            case 7: KERNEL(rows)(W, v0, v1, nb, xq + r0, dx + r0, sx + r0, o, 7); break;
            default: KERNEL(rows)(W, v0, v1, nb, xq + r0, dx + r0, sx + r0, o, 8); break;
            }
        }
    }
}
