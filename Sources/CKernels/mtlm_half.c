// Rows stored as FLOAT16 or BFLOAT16 (docs/FORMAT.md), with each row's relative error: what
// `quantize --embeddings fp16|bf16` spends its time on beside writing. The portable path is
// RowQuantizer.encode and RowQuantizer.relativeError in C, operation for operation; the AVX2
// path converts a row 8 values at a time (F16C rounds to nearest even as RowCodec.half does,
// subnormals included) and sums the errors of 8 rows at once, one row a lane, each lane adding
// its row's terms in element order in double as the portable loop does: the same bytes and the
// same figures to the bit.
#include <stdint.h>
#include <string.h>
#include "include/mtlm_kernels.h"
#include "mtlm_cpu.h"
#include "mtlm_errors.h"
#include "mtlm_half.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#pragma STDC FP_CONTRACT OFF

// The largest magnitudes each type stores, as float32 bits: float16's largest finite value,
// 65504, and for bfloat16 the largest that does not round to Inf (from 0x7F7F8000 up the
// rounding carries into the exponent). Larger bits (Inf and NaN among them) cannot be stored.
#define HALF_LIMIT_BITS 0x477FE000u
#define BFLOAT_LIMIT_BITS 0x7F7F7FFFu

// Whether value `v` can be stored.
static inline int storable(float v, int bfloat) {
    uint32_t magnitude = bits_of(v) & 0x7FFFFFFFu;
    return magnitude <= (bfloat ? BFLOAT_LIMIT_BITS : HALF_LIMIT_BITS);
}

static inline uint16_t encode_value(float v, int bfloat) { return bfloat ? bfloat_bits(v) : half_bits(v); }
static inline float decode_value(uint16_t h, int bfloat) { return bfloat ? bfloat_value(h) : half_value(h); }

// n values, one at a time: 0 when one cannot be stored (the values after it are not written).
static int encode_values(const float *x, size_t n, uint8_t *out, int bfloat) {
    for (size_t j = 0; j < n; j++) {
        if (!storable(x[j], bfloat)) return 0;
        uint16_t h = encode_value(x[j], bfloat);
        memcpy(out + 2 * j, &h, 2);
    }
    return 1;
}

// One row, portable: 0 when a value cannot be stored (the row is then not finished).
static int encode_row_portable(const float *x, size_t n, uint8_t *out, int bfloat, double *errors) {
    if (!encode_values(x, n, out, bfloat)) return 0;
    if (!errors) return 1;
    double difference = 0, norm = 0;
    for (size_t j = 0; j < n; j++) {
        uint16_t h;
        memcpy(&h, out + 2 * j, 2);
        double d = (double)decode_value(h, bfloat) - (double)x[j];
        difference += d * d;
        norm += (double)x[j] * (double)x[j];
    }
    mtlm_add_relative_error(difference, norm, &errors[0], &errors[1]);
    return 1;
}

#if defined(__x86_64__)
#define MTLM_HALF_AVX2 __attribute__((target("avx2,f16c")))

// Eight values rounded to float16 or bfloat16 (as 8 × 16 bits) and back to float32.
MTLM_HALF_AVX2 static inline __attribute__((always_inline)) __m128i encode8(__m256 v, int bfloat) {
    if (!bfloat) return _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
    __m256i bits = _mm256_castps_si256(v);
    __m256i odd = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7FFF)), odd), 16);
    // 8 × 32 bits (each < 2^16) → 8 × 16: packed within each 128-bit half, then the halves joined.
    __m256i packed = _mm256_packus_epi32(rounded, rounded);
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}

MTLM_HALF_AVX2 static inline __attribute__((always_inline)) __m256 decode8(__m128i h, int bfloat) {
    if (!bfloat) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// One row, 8 values at a time (the tail as the portable path): 0 when a value cannot be stored.
MTLM_HALF_AVX2 static int encode_row_avx2(const float *x, size_t n, uint8_t *out, int bfloat) {
    const __m256i magnitude = _mm256_set1_epi32(0x7FFFFFFF);
    const __m256i limit = _mm256_set1_epi32((int)(bfloat ? BFLOAT_LIMIT_BITS : HALF_LIMIT_BITS));
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 v = _mm256_loadu_ps(x + j);
        __m256i beyond = _mm256_cmpgt_epi32(_mm256_and_si256(_mm256_castps_si256(v), magnitude), limit);
        if (!_mm256_testz_si256(beyond, beyond)) return 0;
        _mm_storeu_si128((__m128i *)(out + 2 * j), encode8(v, bfloat));
    }
    return encode_values(x + j, n - j, out + 2 * j, bfloat);
}

// The relative errors of 8 rows (row r at x + r·n), added in row order: element j of the 8 rows
// gathered into one vector, rounded as stored, and each lane's difference and norm summed in
// element order in double, rows 0–3 in one vector and 4–7 in another.
MTLM_HALF_AVX2 static void errors8_avx2(const float *x, size_t n, int bfloat, double *errors) {
    const __m256i rows = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)n));
    __m256d difference[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()}, norm[2] = {difference[0], difference[0]};
    for (size_t j = 0; j < n; j++) {
        __m256 v = _mm256_i32gather_ps(x + j, rows, 4), decoded = decode8(encode8(v, bfloat), bfloat);
        for (int h = 0; h < 2; h++) {
            __m256d xd = _mm256_cvtps_pd(h ? _mm256_extractf128_ps(v, 1) : _mm256_castps256_ps128(v));
            __m256d dd = _mm256_cvtps_pd(h ? _mm256_extractf128_ps(decoded, 1) : _mm256_castps256_ps128(decoded));
            __m256d d = _mm256_sub_pd(dd, xd);
            difference[h] = _mm256_add_pd(difference[h], _mm256_mul_pd(d, d));
            norm[h] = _mm256_add_pd(norm[h], _mm256_mul_pd(xd, xd));
        }
    }
    double differences[8], norms[8];
    for (int h = 0; h < 2; h++) {
        _mm256_storeu_pd(differences + 4 * h, difference[h]);
        _mm256_storeu_pd(norms + 4 * h, norm[h]);
    }
    for (int r = 0; r < 8; r++) mtlm_add_relative_error(differences[r], norms[r], &errors[0], &errors[1]);
}

// Blocks of 8 rows: each encoded, then the block's errors; the last rows as the portable path.
// (Gather indices are 32-bit: rows of more than 2^28 values take the portable path.)
MTLM_HALF_AVX2 static long encode_avx2(const float *x, size_t rows, size_t n, uint8_t *out, size_t out_stride, int bfloat,
                                       double *errors) {
    size_t r = 0;
    for (; r + 8 <= rows; r += 8) {
        for (size_t i = r; i < r + 8; i++) {
            if (!encode_row_avx2(x + i * n, n, out + i * out_stride, bfloat)) return (long)i;
        }
        if (errors) errors8_avx2(x + r * n, n, bfloat, errors);
    }
    for (; r < rows; r++) {
        if (!encode_row_portable(x + r * n, n, out + r * out_stride, bfloat, errors)) return (long)r;
    }
    return -1;
}
#undef MTLM_HALF_AVX2

static int has_avx2(void) { return mtlm_cpu_has(MTLM_CPU_AVX2 | MTLM_CPU_F16C); }
#endif

long mtlm_encode_half_rows(const float *x, size_t rows, size_t n, uint8_t *out, size_t out_stride, int bfloat, int implementation,
                           double *errors) {
    if (n == 0) return -1;
#if defined(__x86_64__)
    if (implementation >= MTLM_HALF_AVX2 && has_avx2() && n < (1u << 28)) return encode_avx2(x, rows, n, out, out_stride, bfloat, errors);
#endif
    for (size_t r = 0; r < rows; r++) {
        if (!encode_row_portable(x + r * n, n, out + r * out_stride, bfloat, errors)) return (long)r;
    }
    return -1;
}

const char *mtlm_half_kernel_name(void) {
#if defined(__x86_64__)
    if (has_avx2()) return "avx2";
#endif
    return "portable";
}
