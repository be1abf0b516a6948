#ifndef MTLM_TRANSPOSE_H
#define MTLM_TRANSPOSE_H
// Transpositions in registers, 16 × 16 (AVX-512) and 8 × 8 (AVX2) floats: the int8 and int4
// kernels search or encode a block of rows one row a lane, so they read each block transposed.
// (Left to the compiler, the int4 kernel's transposition scattered each row: 6% of
// `quantize --embeddings int4` of rows of 16 on Zen 4.)
#include <stddef.h>
#if defined(__x86_64__)
#include <immintrin.h>

// The 16 rows at src (row i at src + i·stride; rows from `count` on are row 0 again), the
// columns in `mask` loaded (the others 0), transposed: r[j] holds column j, row i in lane i.
__attribute__((target("avx512f"), always_inline)) static inline void mtlm_transpose16(const float *src, size_t stride, size_t count, __mmask16 mask,
                                                                                     __m512 r[16]) {
    __m512 t[16], u[16], v[16];
    for (size_t i = 0; i < 16; i++) r[i] = _mm512_maskz_loadu_ps(mask, src + (i < count ? i : 0) * stride);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        v[i] = _mm512_shuffle_f32x4(u[i], u[i + 4], 0x88);
        v[i + 4] = _mm512_shuffle_f32x4(u[i], u[i + 4], 0xDD);
        v[i + 8] = _mm512_shuffle_f32x4(u[i + 8], u[i + 12], 0x88);
        v[i + 12] = _mm512_shuffle_f32x4(u[i + 8], u[i + 12], 0xDD);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(v[i], v[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(v[i], v[i + 8], 0xDD);
    }
}

// The same for 8 rows, their first `columns` (≤ 8) loaded.
__attribute__((target("avx2"), always_inline)) static inline void mtlm_transpose8(const float *src, size_t stride, size_t count, size_t columns,
                                                                                 __m256 r[8]) {
    __m256 t[8], u[8];
    const __m256i in = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)columns), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (size_t i = 0; i < 8; i++) {
        const float *row = src + (i < count ? i : 0) * stride;
        r[i] = columns == 8 ? _mm256_loadu_ps(row) : _mm256_maskload_ps(row, in);
    }
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}
#endif
#endif
