// The attention kernel's arithmetic (attention.c), included by per_isa.h once for each instruction
// set. Its vectors are 16 float lanes: one __m512 with AVX-512, two __m256 with AVX2. Each lane
// goes through the same operations in both, so the two give the same bits. How many vectors
// a loop keeps in registers differs (QB, CB, DB), which changes no lane's operations.

#if VNNI
typedef __m512 KERNEL(v16);
#define V KERNEL(v16)
#define QB 4  // query rows per pass of scores and of weigh
#define CB 4  // 16-cell vectors per pass of scores
#define DB 4  // 16-float vectors per pass of weigh
static inline __attribute__((always_inline)) V KERNEL(vzero)(void) { return _mm512_setzero_ps(); }
static inline __attribute__((always_inline)) V KERNEL(vload)(const float *p) { return _mm512_loadu_ps(p); }
static inline __attribute__((always_inline)) void KERNEL(vstore)(float *p, V x) { _mm512_storeu_ps(p, x); }
static inline __attribute__((always_inline)) V KERNEL(vset1)(float x) { return _mm512_set1_ps(x); }
static inline __attribute__((always_inline)) V KERNEL(vfma)(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
static inline __attribute__((always_inline)) V KERNEL(vadd)(V a, V b) { return _mm512_add_ps(a, b); }
static inline __attribute__((always_inline)) V KERNEL(vsub)(V a, V b) { return _mm512_sub_ps(a, b); }
static inline __attribute__((always_inline)) V KERNEL(vmul)(V a, V b) { return _mm512_mul_ps(a, b); }
static inline __attribute__((always_inline)) V KERNEL(vmax)(V a, V b) { return _mm512_max_ps(a, b); }
static inline __attribute__((always_inline)) V KERNEL(vhalf)(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) p));
}
static inline __attribute__((always_inline)) V KERNEL(vround)(V x) {
    return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
// y·2^n for whole n from -126 to 127.
static inline __attribute__((always_inline)) V KERNEL(vldexp)(V y, V n) {
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}
// r where x >= lo, else 0.
static inline __attribute__((always_inline)) V KERNEL(vkeep)(V x, float lo, V r) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(lo), _CMP_GE_OQ), r);
}
#else
typedef struct { __m256 lo, hi; } KERNEL(v16);
#define V KERNEL(v16)
#define QB 3
#define CB 2
#define DB 2
#define BOTH(op) (V){op(a.lo, b.lo), op(a.hi, b.hi)}
static inline __attribute__((always_inline)) V KERNEL(vzero)(void) {
    return (V){_mm256_setzero_ps(), _mm256_setzero_ps()};
}
static inline __attribute__((always_inline)) V KERNEL(vload)(const float *p) {
    return (V){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)};
}
static inline __attribute__((always_inline)) void KERNEL(vstore)(float *p, V x) {
    _mm256_storeu_ps(p, x.lo);
    _mm256_storeu_ps(p + 8, x.hi);
}
static inline __attribute__((always_inline)) V KERNEL(vset1)(float x) {
    return (V){_mm256_set1_ps(x), _mm256_set1_ps(x)};
}
static inline __attribute__((always_inline)) V KERNEL(vfma)(V a, V b, V c) {
    return (V){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
static inline __attribute__((always_inline)) V KERNEL(vadd)(V a, V b) { return BOTH(_mm256_add_ps); }
static inline __attribute__((always_inline)) V KERNEL(vsub)(V a, V b) { return BOTH(_mm256_sub_ps); }
static inline __attribute__((always_inline)) V KERNEL(vmul)(V a, V b) { return BOTH(_mm256_mul_ps); }
static inline __attribute__((always_inline)) V KERNEL(vmax)(V a, V b) { return BOTH(_mm256_max_ps); }
#undef BOTH
static inline __attribute__((always_inline)) V KERNEL(vhalf)(const uint16_t *p) {
    return (V){_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) p)),
               _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) p + 1))};
}
static inline __attribute__((always_inline)) V KERNEL(vround)(V x) {
    const int mode = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    return (V){_mm256_round_ps(x.lo, mode), _mm256_round_ps(x.hi, mode)};
}
static inline __attribute__((always_inline)) __m256 KERNEL(ldexp8)(__m256 y, __m256 n) {
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}
static inline __attribute__((always_inline)) V KERNEL(vldexp)(V y, V n) {
    return (V){KERNEL(ldexp8)(y.lo, n.lo), KERNEL(ldexp8)(y.hi, n.hi)};
}
static inline __attribute__((always_inline)) V KERNEL(vkeep)(V x, float lo, V r) {
    const __m256 bound = _mm256_set1_ps(lo);
    return (V){_mm256_and_ps(_mm256_cmp_ps(x.lo, bound, _CMP_GE_OQ), r.lo),
               _mm256_and_ps(_mm256_cmp_ps(x.hi, bound, _CMP_GE_OQ), r.hi)};
}
#endif

// e^x for x <= 0 (0 below -87, where it would leave the normal floats): x = n·ln 2 + r, e^r by
// Cephes' polynomial.
static inline __attribute__((always_inline)) V KERNEL(vexp)(V x) {
    const V xc = KERNEL(vmax)(x, KERNEL(vset1)(-87.0f));
    const V n = KERNEL(vround)(KERNEL(vmul)(xc, KERNEL(vset1)(1.44269504088896341f)));
    V r = KERNEL(vfma)(n, KERNEL(vset1)(-0.693359375f), xc);
    r = KERNEL(vfma)(n, KERNEL(vset1)(2.12194440e-4f), r);
    static const float poly[] = {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f,
                                 5.0000001201e-1f};
    V y = KERNEL(vset1)(1.9875691500e-4f);
    for (int i = 0; i < 5; i++) y = KERNEL(vfma)(y, r, KERNEL(vset1)(poly[i]));
    y = KERNEL(vadd)(KERNEL(vfma)(y, KERNEL(vmul)(r, r), r), KERNEL(vset1)(1.0f));
    return KERNEL(vkeep)(x, -87.0f, KERNEL(vldexp)(y, n));
}

// An 8 x 8 transpose of floats.
static inline __attribute__((always_inline)) void KERNEL(transpose8)(__m256 r[8]) {
    __m256 t[8], s[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        s[i + 0] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_permute2f128_ps(s[j], s[j + 4], 0x20);
        r[j + 4] = _mm256_permute2f128_ps(s[j], s[j + 4], 0x31);
    }
}

// kt[e·TILE + c] = K[c][e] as floats: the tile's n cells (fp16 rows `row` bytes apart) turned so
// that a vector holds 16 cells; cells from n on are 0.
static void KERNEL(pack_k)(const char *k, size_t row, int n, int d, float *kt) {
    for (int c = 0; c < TILE; c += 8)
        for (int e = 0; e < d; e += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++)
                r[i] = c + i < n ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + (c + i) * row) + e / 8))
                                 : _mm256_setzero_ps();
            KERNEL(transpose8)(r);
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(kt + (e + i) * TILE + c, r[i]);
        }
}

// vf[c·d + e] = V[c][e] as floats; cells from n on are 0.
static void KERNEL(pack_v)(const char *v, size_t row, int n, int d, float *vf) {
    for (int c = 0; c < TILE; c++)
        for (int e = 0; e < d; e += 16)
            KERNEL(vstore)(vf + c * d + e, c < n ? KERNEL(vhalf)((const uint16_t *)(v + c * row) + e) : KERNEL(vzero)());
}

// s[j·TILE + c] = q_j · K[c] for the tile's cells: each a chain of FMAs over the d components in
// order. nq is a multiple of QB.
static void KERNEL(scores)(const float *const *q, int nq, int d, const float *kt, float *s) {
    for (int j = 0; j < nq; j += QB)
        for (int g0 = 0; g0 < TILE / 16; g0 += CB) {
            V acc[QB][CB];
            for (int b = 0; b < QB; b++)
                for (int g = 0; g < CB; g++) acc[b][g] = KERNEL(vzero)();
            for (int e = 0; e < d; e++) {
                V kv[CB];
                for (int g = 0; g < CB; g++) kv[g] = KERNEL(vload)(kt + e * TILE + 16 * (g0 + g));
                for (int b = 0; b < QB; b++) {
                    const V qe = KERNEL(vset1)(q[j + b][e]);
                    for (int g = 0; g < CB; g++) acc[b][g] = KERNEL(vfma)(qe, kv[g], acc[b][g]);
                }
            }
            for (int b = 0; b < QB; b++)
                for (int g = 0; g < CB; g++) KERNEL(vstore)(s + (j + b) * TILE + 16 * (g0 + g), acc[b][g]);
        }
}

// Query j's softmax step over the tile (the online softmax of flash attention): its scores
// (scaled, plus the mask row m) become weights p[j] against its running maximum mx[j], and its
// running sum sum[j] and output o[j] are rescaled where the maximum grows. Returns 0 where every
// cell of the tile is masked for it, which then leaves it as it was.
static int KERNEL(softmax)(const float *s, const float *m, float scale, int d, float *p, float *mx,
                           float *sum, float *o) {
    V x[TILE / 16];
    V top = KERNEL(vset1)(-INFINITY);
    for (int g = 0; g < TILE / 16; g++) {
        x[g] = KERNEL(vfma)(KERNEL(vload)(s + 16 * g), KERNEL(vset1)(scale), KERNEL(vload)(m + 16 * g));
        top = KERNEL(vmax)(top, x[g]);
    }
    float lanes[16];
    KERNEL(vstore)(lanes, top);
    float tile_max = -INFINITY;
    for (int i = 0; i < 16; i++) tile_max = fmaxf(tile_max, lanes[i]);
    if (tile_max == -INFINITY) return 0;
    if (tile_max > *mx) {
        const float ms = expf(*mx - tile_max);
        for (int e = 0; e < d; e += 16) KERNEL(vstore)(o + e, KERNEL(vmul)(KERNEL(vload)(o + e), KERNEL(vset1)(ms)));
        *sum *= ms;
        *mx = tile_max;
    }
    V total = KERNEL(vzero)();
    for (int g = 0; g < TILE / 16; g++) {
        const V w = KERNEL(vexp)(KERNEL(vsub)(x[g], KERNEL(vset1)(*mx)));
        KERNEL(vstore)(p + 16 * g, w);
        total = KERNEL(vadd)(total, w);
    }
    KERNEL(vstore)(lanes, total);
    for (int w = 8; w > 0; w /= 2)
        for (int i = 0; i < w; i++) lanes[i] += lanes[i + w];
    *sum += lanes[0];
    return 1;
}

// o[j] += Σ_c p[j][c]·V[c] for the queries in act (na of them, a multiple of QB): for each
// component, a chain of FMAs over the tile's n cells in order.
static void KERNEL(weigh)(const int *act, int na, int n, int d, const float *p, const float *vf, float *o) {
    for (int a = 0; a < na; a += QB)
        for (int e0 = 0; e0 < d; e0 += 16 * DB) {
            V acc[QB][DB];
            for (int b = 0; b < QB; b++)
                for (int t = 0; t < DB; t++) acc[b][t] = KERNEL(vload)(o + act[a + b] * d + e0 + 16 * t);
            for (int c = 0; c < n; c++) {
                V vv[DB];
                for (int t = 0; t < DB; t++) vv[t] = KERNEL(vload)(vf + c * d + e0 + 16 * t);
                for (int b = 0; b < QB; b++) {
                    const V pc = KERNEL(vset1)(p[act[a + b] * TILE + c]);
                    for (int t = 0; t < DB; t++) acc[b][t] = KERNEL(vfma)(pc, vv[t], acc[b][t]);
                }
            }
            for (int b = 0; b < QB; b++)
                for (int t = 0; t < DB; t++) KERNEL(vstore)(o + act[a + b] * d + e0 + 16 * t, acc[b][t]);
        }
}

// One unit of work: query rows [r0, r1) of stream i3, for the query heads of KV head g.
static void KERNEL(attend)(const struct attention *p, int i3, int g, int r0, int r1, struct scratch *w) {
    const int rk = p->n_head / p->n_head_kv, nr = r1 - r0, nq = nr * rk;
    for (int j = 0; j < nq; j++)
        w->q[j] = (const float *)(p->q + (size_t)(r0 + j / rk) * p->q_row + (size_t)(g * rk + j % rk) * p->q_head
                                  + (size_t) i3 * p->q_seq);
    int nqp = nq;
    while (nqp % QB) w->q[nqp++] = w->q[nq - 1];  // computed again, not used
    for (int j = 0; j < nq; j++) {
        w->mx[j] = -INFINITY;
        w->sum[j] = 0.0f;
    }
    memset(w->o, 0, sizeof(float) * (size_t) nq * p->d);
    const int kv_seq = i3 / (p->n_seq / p->n_seq_kv);
    const char *k = p->k + (size_t) g * p->k_head + (size_t) kv_seq * p->k_seq;
    const char *v = p->v + (size_t) g * p->v_head + (size_t) kv_seq * p->v_seq;
    for (int c0 = 0; c0 < p->n_kv; c0 += TILE) {
        const int n = p->n_kv - c0 < TILE ? p->n_kv - c0 : TILE;
        int any = 0;
        for (int r = 0; r < nr; r++) {
            float *m = w->mask + r * TILE;
            const uint16_t *row = p->mask ? (const uint16_t *)(p->mask + (size_t)(r0 + r) * p->mask_row
                                                               + (size_t) i3 * p->mask_seq) + c0 : NULL;
            int open = 0;
            if (row && n == TILE) {  // most tiles: whole, and hidden (fp16 -inf is 0xFC00) or not
                uint64_t words[TILE / 4];
                memcpy(words, row, sizeof(words));
                for (int i = 0; i < TILE / 4; i++) open |= words[i] != 0xFC00FC00FC00FC00ull;
                if (open)
                    for (int g = 0; g < TILE / 16; g++) KERNEL(vstore)(m + 16 * g, KERNEL(vhalf)(row + 16 * g));
            } else {
                for (int c = 0; c < TILE; c++) {
                    m[c] = c >= n ? -INFINITY : row ? _cvtsh_ss(row[c]) : 0.0f;
                    open |= m[c] != -INFINITY;
                }
            }
            w->open[r] = (char) open;
            any |= open;
        }
        if (!any) continue;  // no query row sees a cell of this tile
        KERNEL(pack_k)(k + (size_t) c0 * p->k_row, p->k_row, n, p->d, w->kt);
        KERNEL(scores)(w->q, nqp, p->d, w->kt, w->s);
        int na = 0;
        for (int j = 0; j < nq; j++)
            if (w->open[j / rk] && KERNEL(softmax)(w->s + j * TILE, w->mask + (j / rk) * TILE, p->scale, p->d,
                                                   w->p + j * TILE, &w->mx[j], &w->sum[j], w->o + j * p->d))
                w->act[na++] = j;
        if (na == 0) continue;
        const int last = w->act[na - 1];
        while (na % QB) w->act[na++] = last;  // the same query again: it stores the same values
        KERNEL(pack_v)(v + (size_t) c0 * p->v_row, p->v_row, n, p->d, w->vf);
        KERNEL(weigh)(w->act, na, n, p->d, w->p, w->vf, w->o);
    }
    for (int j = 0; j < nq; j++) {
        float *out = (float *)(p->out + (size_t)(r0 + j / rk) * p->out_row + (size_t)(g * rk + j % rk) * p->out_head
                               + (size_t) i3 * p->out_seq);
        const V inv = KERNEL(vset1)(w->sum[j] == 0.0f ? 0.0f : 1.0f / w->sum[j]);
        for (int e = 0; e < p->d; e += 16) KERNEL(vstore)(out + e, KERNEL(vmul)(KERNEL(vload)(w->o + j * p->d + e), inv));
    }
}

#undef V
#undef QB
#undef CB
#undef DB
