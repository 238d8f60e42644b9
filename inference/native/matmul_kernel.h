// The layers' matmul kernels, included by matmul.c once for each instruction set (per_isa.h), with
// KERNEL(name) naming its functions and VNNI 1 (AVX-512 VNNI) or 0 (AVX2).
//
// Each float lane holds one output row (a row of the weights): a pass takes 8 weight rows, turns
// each 32 bytes of their quants so that lane i holds row i's (an 8 x 8 transpose of 4-byte
// groups), and then, for each activation row, sums the products 4 at a time into one int32
// lane. The weights are unpacked and turned once for up to 8 activation rows.
//
// A block's products (a sub-block's, for K-quants, times its integer scale) are one exact
// integer, whichever instruction set; the float steps that follow are the same for any number of
// rows or threads: out = fma(dw · dx, float(Σ), out), blocks in order (K-quants: then
// fma(-(dmin · dx), float(Σ mins), out)). So a row's result does not depend on the rows beside it.

// sum + Σ of 4 products of unsigned weight bytes w (below 128: AVX2's maddubs saturates above)
// and the 4 signed bytes of x4, in each lane.
static inline __attribute__((always_inline)) __m256i KERNEL(dot4)(__m256i sum, __m256i w, int32_t x4) {
#if VNNI
    return _mm256_dpbusd_epi32(sum, w, _mm256_set1_epi32(x4));
#else
    const __m256i pairs = _mm256_maddubs_epi16(w, _mm256_set1_epi32(x4));
    return _mm256_add_epi32(sum, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
#endif
}

// The CPU's prefetchers do not follow 8 rows read a block at a time: each pass fetches the rows
// of the pass after next, a part in each block (as the output layer's kernel does).
#define PREFETCH(lda, nb, v, b)                                                                  \
    do {                                                                                         \
        const int part_ = (int)((8 * (lda) + (nb) - 1) / (nb));                                  \
        const char *ahead_ = A + ((v) + 16) * (lda) + (int64_t)(b) * part_;                      \
        for (int off_ = 0; off_ < part_; off_ += 64) _mm_prefetch(ahead_ + off_, _MM_HINT_T0);   \
    } while (0)

// Elements 32c .. 32c + 31 of a Q6_K super-block, as q + 32 (0 .. 63): from 128·(c/4) + 32·(c%4),
// the low 4 bits in a nibble of ql, the high 2 in a pair of bits of qh.
static inline __attribute__((always_inline)) __m256i KERNEL(q6_K_chunk)(const block_q6_K *w, int c) {
    const int half = c / 4, j = c % 4;
    const __m256i ql = _mm256_loadu_si256((const __m256i *)(w->ql + 64 * half + 32 * (j & 1)));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(w->qh + 32 * half));
    const __m256i low = _mm256_and_si256(j & 2 ? _mm256_srli_epi16(ql, 4) : ql, _mm256_set1_epi8(0x0f));
    const __m256i high = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * j), 4),
                                          _mm256_set1_epi8(0x30));
    return _mm256_or_si256(low, high);
}

// The low and the high nibbles of 32 bytes.
static inline __attribute__((always_inline)) void KERNEL(nibbles)(const uint8_t *q, __m256i *lo, __m256i *hi) {
    const __m256i bytes = _mm256_loadu_si256((const __m256i *) q);
    *lo = _mm256_and_si256(bytes, _mm256_set1_epi8(0x0f));
    *hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), _mm256_set1_epi8(0x0f));
}

// Q5_0 weights (taken as w + 16, 0 .. 31) and Q8_0 activations: Σ = Σ (w + 16)·x - 16·Σx.
static inline __attribute__((always_inline)) void KERNEL(rows_q5_0)(
        const char *A, int64_t lda, int64_t v, int nb, const char *B, int64_t ldb, int N,
        const int32_t (*sx)[MAX_BLOCKS], float *C, int64_t ldc) {
    __m256 acc[8];
    for (int r = 0; r < N; r++) acc[r] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        PREFETCH(lda, nb, v, b);
        __m256i w[8], t[8];
        uint16_t d[8];
        for (int i = 0; i < 8; i++) {
            const block_q5_0 *blk = (const block_q5_0 *)(A + (v + i) * lda) + b;
            const __m128i q = _mm_loadu_si128((const __m128i *) blk->qs);
            const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q),
                                                 _mm256_set1_epi8(0x0f));
            uint32_t qh;
            memcpy(&qh, blk->qh, 4);
#if VNNI
            w[i] = _mm256_mask_blend_epi8((__mmask32) qh, nib, _mm256_or_si256(nib, _mm256_set1_epi8(0x10)));
#else       // byte j all ones where bit j of qh is set (ggml's bytes_from_bits_32)
            const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int) qh),
                _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
            const __m256i bit = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
            const __m256i set = _mm256_cmpeq_epi8(bit, _mm256_set1_epi64x(-1));
            w[i] = _mm256_or_si256(nib, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
#endif
            d[i] = blk->d;
        }
        KERNEL(turn8)(w, t);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) d));
        for (int r = 0; r < N; r++) {
            const block_q8_0 *x = (const block_q8_0 *)(B + r * ldb) + b;
            const int32_t *x4 = (const int32_t *) x->qs;
            __m256i sum = _mm256_set1_epi32(-16 * sx[r][b]);
            for (int k = 0; k < 8; k++) sum = KERNEL(dot4)(sum, t[k], x4[k]);
            acc[r] = KERNEL(add_block)(acc[r], dw, _cvtsh_ss(x->d), sum);
        }
    }
    for (int r = 0; r < N; r++) _mm256_storeu_ps(C + r * ldc + v, acc[r]);
}

// Q8_0 weights and Q8_0 activations (q8_0_sums in shared_kernel.h).
static inline __attribute__((always_inline)) void KERNEL(rows_q8_0)(
        const char *A, int64_t lda, int64_t v, int nb, const char *B, int64_t ldb, int N,
        const int32_t (*sx)[MAX_BLOCKS], float *C, int64_t ldc) {
    __m256 acc[8];
    for (int r = 0; r < N; r++) acc[r] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        PREFETCH(lda, nb, v, b);
        __m256i w[8], t[8];
        uint16_t d[8];
        for (int i = 0; i < 8; i++) {
            const block_q8_0 *blk = (const block_q8_0 *)(A + (v + i) * lda) + b;
            w[i] = _mm256_loadu_si256((const __m256i *) blk->qs);
            d[i] = blk->d;
        }
        KERNEL(turn8)(w, t);
        KERNEL(q8_0_prepare)(t);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) d));
        for (int r = 0; r < N; r++) {
            const block_q8_0 *x = (const block_q8_0 *)(B + r * ldb) + b;
            const __m256i sum = KERNEL(q8_0_sums)(t, (const int32_t *) x->qs, sx[r][b]);
            acc[r] = KERNEL(add_block)(acc[r], dw, _cvtsh_ss(x->d), sum);
        }
    }
    for (int r = 0; r < N; r++) _mm256_storeu_ps(C + r * ldc + v, acc[r]);
}

// Q4_K weights and Q8_K activations: per super-block of 256, Σ = Σ_s scale_s · Σ_s q·x (8
// sub-blocks of 32) and M = Σ_s min_s · Σ_s x; out += d·dx·Σ - dmin·dx·M.
static inline __attribute__((always_inline)) void KERNEL(rows_q4_K)(
        const char *A, int64_t lda, int64_t v, int nb, const char *B, int64_t ldb, int N,
        float *C, int64_t ldc) {
    __m256 acc[8];
    for (int r = 0; r < N; r++) acc[r] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        PREFETCH(lda, nb, v, b);
        const block_q4_K *blk[8];
        uint16_t d[8], dmin[8];
        int32_t scale[8][8], min[8][8];  // [sub-block][weight row]
        for (int i = 0; i < 8; i++) {
            blk[i] = (const block_q4_K *)(A + (v + i) * lda) + b;
            d[i] = blk[i]->d;
            dmin[i] = blk[i]->dmin;
            uint8_t sm[16];
            q4_K_scales(blk[i]->scales, sm);
            for (int s = 0; s < 8; s++) {
                scale[s][i] = sm[s];
                min[s][i] = sm[8 + s];
            }
        }
        __m256i S[8], M[8];
        for (int r = 0; r < N; r++) S[r] = M[r] = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {  // 32 bytes: sub-block 2c in the low nibbles, 2c + 1 in the high
            __m256i lo[8], hi[8], t[8];
            for (int i = 0; i < 8; i++) KERNEL(nibbles)(blk[i]->qs + 32 * c, &lo[i], &hi[i]);
            for (int h = 0; h < 2; h++) {
                const int s = 2 * c + h;
                KERNEL(turn8)(h ? hi : lo, t);
                const __m256i sc = _mm256_loadu_si256((const __m256i *) scale[s]);
                const __m256i mn = _mm256_loadu_si256((const __m256i *) min[s]);
                for (int r = 0; r < N; r++) {
                    const block_q8_K *x = (const block_q8_K *)(B + r * ldb) + b;
                    const int32_t *x4 = (const int32_t *)(x->qs + 32 * s);
                    __m256i sum = _mm256_setzero_si256();
                    for (int k = 0; k < 8; k++) sum = KERNEL(dot4)(sum, t[k], x4[k]);
                    S[r] = _mm256_add_epi32(S[r], _mm256_mullo_epi32(sum, sc));
                    const __m256i xs = _mm256_set1_epi32(x->bsums[2 * s] + x->bsums[2 * s + 1]);  // Σ_s x
                    M[r] = _mm256_add_epi32(M[r], _mm256_mullo_epi32(mn, xs));
                }
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) d));
        const __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) dmin));
        for (int r = 0; r < N; r++) {
            const float dx = ((const block_q8_K *)(B + r * ldb) + b)->d;
            acc[r] = KERNEL(add_block)(acc[r], dw, dx, S[r]);
            acc[r] = _mm256_fnmadd_ps(_mm256_mul_ps(dm, _mm256_set1_ps(dx)), _mm256_cvtepi32_ps(M[r]), acc[r]);
        }
    }
    for (int r = 0; r < N; r++) _mm256_storeu_ps(C + r * ldc + v, acc[r]);
}

// Q6_K weights (taken as q + 32, 0 .. 63) and Q8_K activations: per super-block, Σ = Σ_g
// scale_g · (Σ_g (q + 32)·x - 32·Σ_g x) over 16 groups of 16; out += d·dx·Σ.
static inline __attribute__((always_inline)) void KERNEL(rows_q6_K)(
        const char *A, int64_t lda, int64_t v, int nb, const char *B, int64_t ldb, int N,
        float *C, int64_t ldc) {
    __m256 acc[8];
    for (int r = 0; r < N; r++) acc[r] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        PREFETCH(lda, nb, v, b);
        const block_q6_K *blk[8];
        uint16_t d[8];
        int32_t scale[16][8];  // [group][weight row]
        for (int i = 0; i < 8; i++) {
            blk[i] = (const block_q6_K *)(A + (v + i) * lda) + b;
            d[i] = blk[i]->d;
            for (int g = 0; g < 16; g++) scale[g][i] = blk[i]->scales[g];
        }
        __m256i S[8];
        for (int r = 0; r < N; r++) {  // -32 · Σ_g scale_g · Σ_g x
            const block_q8_K *x = (const block_q8_K *)(B + r * ldb) + b;
            __m256i m = _mm256_setzero_si256();
            for (int g = 0; g < 16; g++)
                m = _mm256_add_epi32(m, _mm256_mullo_epi32(_mm256_loadu_si256((const __m256i *) scale[g]),
                                                           _mm256_set1_epi32(x->bsums[g])));
            S[r] = _mm256_slli_epi32(_mm256_sub_epi32(_mm256_setzero_si256(), m), 5);
        }
        for (int c = 0; c < 8; c++) {  // elements 32c .. 32c + 31: groups 2c and 2c + 1
            __m256i w[8], t[8];
            for (int i = 0; i < 8; i++) w[i] = KERNEL(q6_K_chunk)(blk[i], c);
            KERNEL(turn8)(w, t);
            const __m256i sc0 = _mm256_loadu_si256((const __m256i *) scale[2 * c]);
            const __m256i sc1 = _mm256_loadu_si256((const __m256i *) scale[2 * c + 1]);
            for (int r = 0; r < N; r++) {
                const block_q8_K *x = (const block_q8_K *)(B + r * ldb) + b;
                const int32_t *x4 = (const int32_t *)(x->qs + 32 * c);
                __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
                for (int k = 0; k < 4; k++) s0 = KERNEL(dot4)(s0, t[k], x4[k]);
                for (int k = 4; k < 8; k++) s1 = KERNEL(dot4)(s1, t[k], x4[k]);
                S[r] = _mm256_add_epi32(S[r], _mm256_mullo_epi32(s0, sc0));
                S[r] = _mm256_add_epi32(S[r], _mm256_mullo_epi32(s1, sc1));
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) d));
        for (int r = 0; r < N; r++) {
            acc[r] = KERNEL(add_block)(acc[r], dw, ((const block_q8_K *)(B + r * ldb) + b)->d, S[r]);
        }
    }
    for (int r = 0; r < N; r++) _mm256_storeu_ps(C + r * ldc + v, acc[r]);
}


// The 32 products of unsigned weight bytes w (below 128) and signed bytes x, in 8 int32 lanes.
static inline __attribute__((always_inline)) __m256i KERNEL(dot32)(__m256i w, const int8_t *x) {
    const __m256i xv = _mm256_loadu_si256((const __m256i *) x);
#if VNNI
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, xv);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w, xv), _mm256_set1_epi16(1));
#endif
}

static inline __attribute__((always_inline)) int32_t KERNEL(hsum)(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

// out = fma(a, b, out) in one rounding, as the lanes of the 8-row kernels compute it.
static inline __attribute__((always_inline)) float KERNEL(fma1)(float a, float b, float out) {
    return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(out)));
}

// One activation row against Q4_K weight rows [v, v + 8), one weight row at a time: the same
// integers and float steps as rows_q4_K, where unpacking and turning 8 rows would cost more than
// the products of one.
static inline __attribute__((always_inline)) void KERNEL(row1_q4_K)(
        const char *A, int64_t lda, int64_t v, int nb, const char *B, float *C) {
    for (int i = 0; i < 8; i++) {
        float out = 0;
        for (int b = 0; b < nb; b++) {
            const block_q4_K *w = (const block_q4_K *)(A + (v + i) * lda) + b;
            const block_q8_K *x = (const block_q8_K *) B + b;
            uint8_t sm[16];
            q4_K_scales(w->scales, sm);
            __m256i s = _mm256_setzero_si256();
            for (int c = 0; c < 4; c++) {
                __m256i lo, hi;
                KERNEL(nibbles)(w->qs + 32 * c, &lo, &hi);
                const __m256i s0 = KERNEL(dot32)(lo, x->qs + 64 * c);
                const __m256i s1 = KERNEL(dot32)(hi, x->qs + 64 * c + 32);
                s = _mm256_add_epi32(s, _mm256_mullo_epi32(s0, _mm256_set1_epi32(sm[2 * c])));
                s = _mm256_add_epi32(s, _mm256_mullo_epi32(s1, _mm256_set1_epi32(sm[2 * c + 1])));
            }
            int32_t mins = 0;
            for (int j = 0; j < 8; j++) mins += sm[8 + j] * (x->bsums[2 * j] + x->bsums[2 * j + 1]);
            out = KERNEL(fma1)(_cvtsh_ss(w->d) * x->d, (float) KERNEL(hsum)(s), out);
            out = KERNEL(fma1)(-(_cvtsh_ss(w->dmin) * x->d), (float) mins, out);
        }
        C[v + i] = out;
    }
}

// The same for Q6_K weight rows (rows_q6_K's integers and float steps).
static inline __attribute__((always_inline)) void KERNEL(row1_q6_K)(
        const char *A, int64_t lda, int64_t v, int nb, const char *B, float *C) {
    for (int i = 0; i < 8; i++) {
        float out = 0;
        for (int b = 0; b < nb; b++) {
            const block_q6_K *w = (const block_q6_K *)(A + (v + i) * lda) + b;
            const block_q8_K *x = (const block_q8_K *) B + b;
            __m256i s = _mm256_setzero_si256();
            for (int c = 0; c < 8; c++) {
                const int32_t s0 = w->scales[2 * c], s1 = w->scales[2 * c + 1];  // lanes 0-3, 4-7
                const __m256i scale = _mm256_setr_epi32(s0, s0, s0, s0, s1, s1, s1, s1);
                const __m256i sums = KERNEL(dot32)(KERNEL(q6_K_chunk)(w, c), x->qs + 32 * c);
                s = _mm256_add_epi32(s, _mm256_mullo_epi32(sums, scale));
            }
            int32_t m = 0;
            for (int g = 0; g < 16; g++) m += w->scales[g] * x->bsums[g];
            out = KERNEL(fma1)(_cvtsh_ss(w->d) * x->d, (float)(KERNEL(hsum)(s) - 32 * m), out);
        }
        C[v + i] = out;
    }
}

#define ROWS_N(call, N) switch (N) {                                                               \
    case 1: call(1); break; case 2: call(2); break; case 3: call(3); break; case 4: call(4); break; \
    case 5: call(5); break; case 6: call(6); break; case 7: call(7); break; default: call(8); break; }

// This thread's share of C = A·Bᵀ: the weight rows [m·ith/nth, m·(ith+1)/nth), in eights.
static void KERNEL(matmul)(int ith, int nth, int type, int64_t m, int64_t n, int nb, const char *A,
                           int64_t lda, const char *B, int64_t ldb, float *C, int64_t ldc) {
    const int64_t g0 = m / 8 * ith / nth, g1 = m / 8 * (ith + 1) / nth;
    int32_t sx[8][MAX_BLOCKS];  // Σx of each Q8_0 block of the pass's activation rows
    for (int64_t j0 = 0; j0 < n; j0 += 8) {
        const int N = n - j0 < 8 ? (int)(n - j0) : 8;
        const char *Bj = B + j0 * ldb;
        float *Cj = C + j0 * ldc;
        if (type == GGML_TYPE_Q5_0 || type == GGML_TYPE_Q8_0)
            for (int r = 0; r < N; r++)
                for (int b = 0; b < nb; b++) {
                    const int8_t *q = ((const block_q8_0 *)(Bj + r * ldb) + b)->qs;
                    int32_t s = 0;
                    for (int e = 0; e < 32; e++) s += q[e];
                    sx[r][b] = s;
                }
        for (int64_t g = g0; g < g1; g++) {
            const int64_t v = 8 * g;
#define Q5(R) KERNEL(rows_q5_0)(A, lda, v, nb, Bj, ldb, R, sx, Cj, ldc)
#define Q8(R) KERNEL(rows_q8_0)(A, lda, v, nb, Bj, ldb, R, sx, Cj, ldc)
#define Q4K(R) KERNEL(rows_q4_K)(A, lda, v, nb, Bj, ldb, R, Cj, ldc)
#define Q6K(R) KERNEL(rows_q6_K)(A, lda, v, nb, Bj, ldb, R, Cj, ldc)
            switch (type) {
            case GGML_TYPE_Q5_0: ROWS_N(Q5, N); break;
            case GGML_TYPE_Q8_0: ROWS_N(Q8, N); break;
            case GGML_TYPE_Q4_K:
                if (N == 1) KERNEL(row1_q4_K)(A, lda, v, nb, Bj, Cj);
                else ROWS_N(Q4K, N);
                break;
            default:
                if (N == 1) KERNEL(row1_q6_K)(A, lda, v, nb, Bj, Cj);
                else ROWS_N(Q6K, N);
                break;
            }
#undef Q5
#undef Q8
#undef Q4K
#undef Q6K
        }
    }
}
