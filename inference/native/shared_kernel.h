// What both kernels use, included by per_isa.h once for each instruction set, before the kernel's
// header.

// Lane i of t[k] gets bytes 4k .. 4k + 3 of r[i]: an 8 x 8 transpose of 4-byte groups, so that
// each lane holds one weight row.
static inline __attribute__((always_inline)) void KERNEL(turn8)(const __m256i r[8], __m256i t[8]) {
    __m256i s[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        s[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
        s[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {  // u[i + j]: column j (low half) and j + 4 (high half) of 4 rows
        u[i + 0] = _mm256_unpacklo_epi64(s[i + 0], s[i + 2]);
        u[i + 1] = _mm256_unpackhi_epi64(s[i + 0], s[i + 2]);
        u[i + 2] = _mm256_unpacklo_epi64(s[i + 1], s[i + 3]);
        u[i + 3] = _mm256_unpackhi_epi64(s[i + 1], s[i + 3]);
    }
    for (int j = 0; j < 4; j++) {
        t[j] = _mm256_permute2x128_si256(u[j], u[j + 4], 0x20);
        t[j + 4] = _mm256_permute2x128_si256(u[j], u[j + 4], 0x31);
    }
}

// Q8_0 weights, turned (t from turn8), for q8_0_sums: with VNNI, taken as w + 128 (unsigned).
static inline __attribute__((always_inline)) void KERNEL(q8_0_prepare)(__m256i t[8]) {
#if VNNI
    for (int k = 0; k < 8; k++) t[k] = _mm256_xor_si256(t[k], _mm256_set1_epi8((char) 0x80));
#else
    (void) t;
#endif
}

// Each lane's sum of a Q8_0 block's 32 products with the signed bytes of x4 (8 groups of 4), one
// exact integer. VNNI multiplies unsigned by signed bytes: the weights are w + 128, and the sum
// starts from -128·Σx (sx = Σx). AVX2's maddubs would saturate on 255·127 pairs, so it takes
// |w| times x·sign(w).
static inline __attribute__((always_inline)) __m256i KERNEL(q8_0_sums)(const __m256i t[8], const int32_t *x4,
                                                                      int32_t sx) {
#if VNNI
    __m256i sum = _mm256_set1_epi32(-128 * sx);
    for (int k = 0; k < 8; k++) sum = _mm256_dpbusd_epi32(sum, t[k], _mm256_set1_epi32(x4[k]));
#else
    (void) sx;
    __m256i sum = _mm256_setzero_si256();
    for (int k = 0; k < 8; k++) {
        const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(t[k], t[k]),
                                               _mm256_sign_epi8(_mm256_set1_epi32(x4[k]), t[k]));
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
    }
#endif
    return sum;
}

// out + dw·dx·float(sum) in each lane: the float steps of a block, the same in every kernel.
static inline __attribute__((always_inline)) __m256 KERNEL(add_block)(__m256 out, __m256 dw, float dx,
                                                                     __m256i sum) {
    return _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(dx)), _mm256_cvtepi32_ps(sum), out);
}
