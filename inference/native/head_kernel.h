// The output layer's kernel, included by head.c once for each instruction set, with KERNEL(name)
// naming its functions and VNNI 1 (AVX-512 VNNI) or 0 (AVX2). The two sum a block's 32 int8
// products x·w into the same 8 int32 lanes (4 products each), so they give the same logits:
// - with VNNI, one instruction takes unsigned bytes times signed bytes, so a row is kept as x + 128
//   and each lane starts from -128·Σw, which the block computes once for all rows;
// - with AVX2, maddubs would saturate on 255·127 pairs, so it takes |w| times x·sign(w).

// A row in Q8_0, as ggml's quantize_row_q8_0 makes it (its AVX path: round to nearest, even).
static void KERNEL(quantize)(const float *x, int nb, int8_t *xq, float *dx) {
    for (int b = 0; b < nb; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        const float d = amax / 127.f, id = d ? 127.f / amax : 0.f;
        dx[b] = _cvtsh_ss(_cvtss_sh(d, 0));
        for (int j = 0; j < 32; j++) xq[b * 32 + j] = (int8_t) ((int) nearbyintf(x[b * 32 + j] * id) + 128 * VNNI);
    }
}

// Logits of N rows for the output rows [v0, v1). Each block of the matrix is loaded once for
// all N rows; each row's int8 dot product is scaled by both blocks' scales.
static inline __attribute__((always_inline)) void KERNEL(rows)(
        const block_q8_0 *W, int64_t v0, int64_t v1, int nb, int8_t (*xq)[MAX_BLOCKS * 32],
        float (*dx)[MAX_BLOCKS], float *const *out, const int N) {
    for (int64_t v = v0; v < v1; v++) {
        const block_q8_0 *wr = W + v * nb;
        __m256 acc[8];  // a fixed size, so that the compiler keeps them in registers
        for (int r = 0; r < N; r++) acc[r] = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            const __m256i w = _mm256_loadu_si256((const __m256i *) wr[b].qs);
            const __m256 dw = _mm256_set1_ps(_cvtsh_ss(wr[b].d));
#if VNNI
            const __m256i zero = _mm256_setzero_si256();
            const __m256i start = _mm256_sub_epi32(zero, _mm256_dpbusd_epi32(zero, _mm256_set1_epi8((char) 128), w));
#else
            const __m256i aw = _mm256_sign_epi8(w, w);  // |w|: Q8_0 holds -127 to 127
#endif
            for (int r = 0; r < N; r++) {
                const __m256i x = _mm256_loadu_si256((const __m256i *)(xq[r] + b * 32));
#if VNNI
                const __m256i sum = _mm256_dpbusd_epi32(start, x, w);  // -128·Σw + Σ(x + 128)·w
#else
                const __m256i sum = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w)),
                                                      _mm256_set1_epi16(1));
#endif
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

static void KERNEL(logits)(struct head_state *s, float *const *out, int n_threads) {
    const int nb = (int)(s->n_embd / 32), n_rows = (int) s->rows;
    int8_t (*xq)[MAX_BLOCKS * 32] = s->xq;
    float (*dx)[MAX_BLOCKS] = s->dx;
    for (int r = 0; r < n_rows; r++) KERNEL(quantize)(s->hidden + (int64_t) r * s->n_embd, nb, xq[r], dx[r]);
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
            case 1: KERNEL(rows)(W, v0, v1, nb, xq + r0, dx + r0, o, 1); break;
            case 2: KERNEL(rows)(W, v0, v1, nb, xq + r0, dx + r0, o, 2); break;
            case 3: KERNEL(rows)(W, v0, v1, nb, xq + r0, dx + r0, o, 3); break;
            case 4: KERNEL(rows)(W, v0, v1, nb, xq + r0, dx + r0, o, 4); break;
            case 5: KERNEL(rows)(W, v0, v1, nb, xq + r0, dx + r0, o, 5); break;
            case 6: KERNEL(rows)(W, v0, v1, nb, xq + r0, dx + r0, o, 6); break;
            case 7: KERNEL(rows)(W, v0, v1, nb, xq + r0, dx + r0, o, 7); break;
            default: KERNEL(rows)(W, v0, v1, nb, xq + r0, dx + r0, o, 8); break;
            }
        }
    }
}
