// Scans of stored bytes: CRC-32 with carry-less multiplication, and counts of non-finite
// floats. Both run over every byte `verify` reads (and the CRC over every byte any reader or
// writer checksums), at memory speed rather than at the speed of a table-driven loop.
#include <stdint.h>
#include <string.h>
#include <zlib.h>
#include "include/mtlm_kernels.h"
#include "mtlm_cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>

// CRC-32 (the zlib polynomial, bit-reflected) of a buffer of 64 bytes or more whose length is
// a multiple of 16, folding 4 × 128 bits at a time: "Fast CRC Computation for Generic
// Polynomials Using PCLMULQDQ" (Gopal et al., Intel, 2009), with the constants of the
// reflected polynomial 0xEDB88320 as in Linux's crc32-pclmul. A constant folding by d bits is
// (x^(d−32) mod P, x^(d+32) mod P), each bit-reflected and shifted left by one (the pair of
// 0x1c6e41596, 0x154442bd4 folds by 512 bits; 0x0ccaa009e, 0x1751997d0 by 128). `crc` is the
// raw register (zlib's value, inverted).
#define MTLM_FOLD_512 _mm_set_epi64x(0x1c6e41596, 0x154442bd4)
#define MTLM_FOLD_128 _mm_set_epi64x(0x0ccaa009e, 0x1751997d0)

// The end shared by the folding loops: four 128-bit lanes (x0 the earliest), then `len`
// (a multiple of 16) more bytes at p, folded into one lane and reduced to 32 bits.
__attribute__((target("pclmul,sse4.1")))
static uint32_t crc32_fold_finish(__m128i x0, __m128i x1, __m128i x2, __m128i x3, const uint8_t *p, size_t len) {
    const __m128i k3k4 = MTLM_FOLD_128;
    const __m128i k5 = _mm_set_epi64x(0, 0x163cd6124);
    const __m128i poly = _mm_set_epi64x(0x1F7011641, 0x1DB710641);
    const __m128i mask32 = _mm_set_epi32(0, 0, 0, -1);
    #define FOLD(x, next) _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k3k4, 0x00), _mm_clmulepi64_si128(x, k3k4, 0x11)), next)
    __m128i x = FOLD(x0, x1);
    x = FOLD(x, x2);
    x = FOLD(x, x3);
    while (len >= 16) {
        x = FOLD(x, _mm_loadu_si128((const __m128i *)p));
        p += 16;
        len -= 16;
    }
    #undef FOLD
    // 128 → 64 bits (appending 32 zero bits), 64 → 32, then Barrett reduction.
    x = _mm_xor_si128(_mm_srli_si128(x, 8), _mm_clmulepi64_si128(k3k4, x, 0x01));
    __m128i t = _mm_clmulepi64_si128(_mm_and_si128(x, mask32), k5, 0x00);
    x = _mm_xor_si128(_mm_srli_si128(x, 4), t);
    t = _mm_clmulepi64_si128(_mm_and_si128(x, mask32), poly, 0x10);
    t = _mm_clmulepi64_si128(_mm_and_si128(t, mask32), poly, 0x00);
    x = _mm_xor_si128(x, t);
    return (uint32_t)_mm_extract_epi32(x, 1);
}

// With `magnitude` (each fold below), the same loads also give the largest |x| (as bits) of
// the float32 values in the blocks folded, and *covered says how many bytes those were:
// verify's scan for NaN, Inf and huge values fused into the checksum's one pass over a chunk.
#define MTLM_TRACK(m, v, and, max, abs) if (magnitude) m = max(m, and(v, abs))

__attribute__((target("pclmul,sse4.1")))
static inline __attribute__((always_inline)) uint32_t crc32_fold_sse_body(const uint8_t *p, size_t len, uint32_t crc, uint32_t *magnitude, size_t *covered) {
    const __m128i k1k2 = MTLM_FOLD_512;
    const __m128i abs = _mm_set1_epi32(0x7FFFFFFF);
    __m128i m0 = _mm_setzero_si128(), m1 = m0;
    const uint8_t *start = p;
    #define TRACK(m, v) MTLM_TRACK(m, v, _mm_and_si128, _mm_max_epu32, abs)
    __m128i x0 = _mm_loadu_si128((const __m128i *)(p + 0));
    __m128i x1 = _mm_loadu_si128((const __m128i *)(p + 16));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 32));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 48));
    TRACK(m0, x0); TRACK(m1, x1); TRACK(m0, x2); TRACK(m1, x3);
    x0 = _mm_xor_si128(x0, _mm_cvtsi32_si128((int)crc));
    p += 64;
    len -= 64;
    while (len >= 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(p + 0)), b = _mm_loadu_si128((const __m128i *)(p + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(p + 32)), d = _mm_loadu_si128((const __m128i *)(p + 48));
        TRACK(m0, a); TRACK(m1, b); TRACK(m0, c); TRACK(m1, d);
        __m128i h0 = _mm_clmulepi64_si128(x0, k1k2, 0x11), h1 = _mm_clmulepi64_si128(x1, k1k2, 0x11);
        __m128i h2 = _mm_clmulepi64_si128(x2, k1k2, 0x11), h3 = _mm_clmulepi64_si128(x3, k1k2, 0x11);
        x0 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x0, k1k2, 0x00), h0), a);
        x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k1k2, 0x00), h1), b);
        x2 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x2, k1k2, 0x00), h2), c);
        x3 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x3, k1k2, 0x00), h3), d);
        p += 64;
        len -= 64;
    }
    #undef TRACK
    if (magnitude) {
        __m128i m = _mm_max_epu32(m0, m1);
        m = _mm_max_epu32(m, _mm_srli_si128(m, 8));
        m = _mm_max_epu32(m, _mm_srli_si128(m, 4));
        *magnitude = (uint32_t)_mm_cvtsi128_si32(m);
        *covered = (size_t)(p - start);
    }
    return crc32_fold_finish(x0, x1, x2, x3, p, len);
}

// The same with VPCLMULQDQ on 256-bit registers (AVX2 CPUs that have it, such as Zen 3), for
// 256 bytes or more: eight registers fold 256 bytes an iteration (by 2048 bits: x^2016 and
// x^2080 mod P, in each 128-bit lane), then fold pairwise by 512 bits into two registers,
// whose four lanes end as above.
__attribute__((target("avx2,vpclmulqdq,pclmul,sse4.1")))
static inline __attribute__((always_inline)) uint32_t crc32_fold_avx2_body(const uint8_t *p, size_t len, uint32_t crc, uint32_t *magnitude, size_t *covered) {
    const __m256i k2048 = _mm256_broadcastsi128_si256(_mm_set_epi64x(0x1322d1430 /* x^2016 */, 0x11542778a /* x^2080 */));
    const __m256i k512 = _mm256_broadcastsi128_si256(MTLM_FOLD_512);
    const __m256i abs = _mm256_set1_epi32(0x7FFFFFFF);
    __m256i m0 = _mm256_setzero_si256(), m1 = m0;
    const uint8_t *start = p;
    #define FOLD256(y, k, next) _mm256_xor_si256(_mm256_xor_si256(_mm256_clmulepi64_epi128(y, k, 0x00), _mm256_clmulepi64_epi128(y, k, 0x11)), next)
    #define TRACK(m, v) MTLM_TRACK(m, v, _mm256_and_si256, _mm256_max_epu32, abs)
    #define LOAD(i) _mm256_loadu_si256((const __m256i *)(p + 32 * (i)))
    __m256i y0 = LOAD(0), y1 = LOAD(1), y2 = LOAD(2), y3 = LOAD(3), y4 = LOAD(4), y5 = LOAD(5), y6 = LOAD(6), y7 = LOAD(7);
    TRACK(m0, y0); TRACK(m1, y1); TRACK(m0, y2); TRACK(m1, y3); TRACK(m0, y4); TRACK(m1, y5); TRACK(m0, y6); TRACK(m1, y7);
    y0 = _mm256_xor_si256(y0, _mm256_setr_epi32((int)crc, 0, 0, 0, 0, 0, 0, 0));
    p += 256;
    len -= 256;
    while (len >= 256) {
        __m256i a0 = LOAD(0), a1 = LOAD(1), a2 = LOAD(2), a3 = LOAD(3), a4 = LOAD(4), a5 = LOAD(5), a6 = LOAD(6), a7 = LOAD(7);
        TRACK(m0, a0); TRACK(m1, a1); TRACK(m0, a2); TRACK(m1, a3); TRACK(m0, a4); TRACK(m1, a5); TRACK(m0, a6); TRACK(m1, a7);
        y0 = FOLD256(y0, k2048, a0); y1 = FOLD256(y1, k2048, a1); y2 = FOLD256(y2, k2048, a2); y3 = FOLD256(y3, k2048, a3);
        y4 = FOLD256(y4, k2048, a4); y5 = FOLD256(y5, k2048, a5); y6 = FOLD256(y6, k2048, a6); y7 = FOLD256(y7, k2048, a7);
        p += 256;
        len -= 256;
    }
    // y0 holds the bytes 64 before y2's, y1 64 before y3's...: fold by 512 bits, pair by pair.
    y2 = FOLD256(y0, k512, y2); y3 = FOLD256(y1, k512, y3);
    y4 = FOLD256(y2, k512, y4); y5 = FOLD256(y3, k512, y5);
    y6 = FOLD256(y4, k512, y6); y7 = FOLD256(y5, k512, y7);
    while (len >= 64) {
        __m256i a = LOAD(0), b = LOAD(1);
        TRACK(m0, a); TRACK(m1, b);
        y6 = FOLD256(y6, k512, a);
        y7 = FOLD256(y7, k512, b);
        p += 64;
        len -= 64;
    }
    #undef LOAD
    #undef TRACK
    #undef FOLD256
    if (magnitude) {
        __m256i m8 = _mm256_max_epu32(m0, m1);
        __m128i m = _mm_max_epu32(_mm256_castsi256_si128(m8), _mm256_extracti128_si256(m8, 1));
        m = _mm_max_epu32(m, _mm_srli_si128(m, 8));
        m = _mm_max_epu32(m, _mm_srli_si128(m, 4));
        *magnitude = (uint32_t)_mm_cvtsi128_si32(m);
        *covered = (size_t)(p - start);
    }
    return crc32_fold_finish(_mm256_castsi256_si128(y6), _mm256_extracti128_si256(y6, 1), _mm256_castsi256_si128(y7),
                             _mm256_extracti128_si256(y7, 1), p, len);
}

// The same with VPCLMULQDQ on 512-bit registers, for 256 bytes or more: four registers of
// four lanes fold 256 bytes an iteration (by 2048 bits), then fold into one register by 512
// bits, whose four lanes end as above.
__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.1")))
static inline __attribute__((always_inline)) uint32_t crc32_fold_avx512_body(const uint8_t *p, size_t len, uint32_t crc, uint32_t *magnitude, size_t *covered) {
    const __m512i k2048 = _mm512_broadcast_i32x4(_mm_set_epi64x(0x1322d1430 /* x^2016 */, 0x11542778a /* x^2080 */));
    const __m512i k512 = _mm512_broadcast_i32x4(MTLM_FOLD_512);
    const __m512i abs = _mm512_set1_epi32(0x7FFFFFFF);
    __m512i m0 = _mm512_setzero_si512(), m1 = m0;
    const uint8_t *start = p;
    #define FOLD512(z, k, next) _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(z, k, 0x00), _mm512_clmulepi64_epi128(z, k, 0x11), next, 0x96)
    #define TRACK(m, v) MTLM_TRACK(m, v, _mm512_and_si512, _mm512_max_epu32, abs)
    __m512i z0 = _mm512_loadu_si512(p), z1 = _mm512_loadu_si512(p + 64);
    __m512i z2 = _mm512_loadu_si512(p + 128), z3 = _mm512_loadu_si512(p + 192);
    TRACK(m0, z0); TRACK(m1, z1); TRACK(m0, z2); TRACK(m1, z3);
    z0 = _mm512_xor_si512(z0, _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)crc)));
    p += 256;
    len -= 256;
    while (len >= 256) {
        __m512i a = _mm512_loadu_si512(p), b = _mm512_loadu_si512(p + 64), c = _mm512_loadu_si512(p + 128), d = _mm512_loadu_si512(p + 192);
        TRACK(m0, a); TRACK(m1, b); TRACK(m0, c); TRACK(m1, d);
        z0 = FOLD512(z0, k2048, a);
        z1 = FOLD512(z1, k2048, b);
        z2 = FOLD512(z2, k2048, c);
        z3 = FOLD512(z3, k2048, d);
        p += 256;
        len -= 256;
    }
    __m512i z = FOLD512(z0, k512, z1);
    z = FOLD512(z, k512, z2);
    z = FOLD512(z, k512, z3);
    while (len >= 64) {
        __m512i a = _mm512_loadu_si512(p);
        TRACK(m0, a);
        z = FOLD512(z, k512, a);
        p += 64;
        len -= 64;
    }
    #undef TRACK
    #undef FOLD512
    if (magnitude) {
        *magnitude = _mm512_reduce_max_epu32(_mm512_max_epu32(m0, m1));
        *covered = (size_t)(p - start);
    }
    return crc32_fold_finish(_mm512_castsi512_si128(z), _mm512_extracti32x4_epi32(z, 1), _mm512_extracti32x4_epi32(z, 2),
                             _mm512_extracti32x4_epi32(z, 3), p, len);
}

// Each body compiled twice, without the magnitude (plain checksums) and with it.
typedef uint32_t (*crc32_fold_fn)(const uint8_t *p, size_t len, uint32_t crc, uint32_t *magnitude, size_t *covered);
#define MTLM_FOLD_VARIANTS(NAME, TARGET)                                                                               \
    __attribute__((target(TARGET))) static uint32_t NAME(const uint8_t *p, size_t len, uint32_t crc, uint32_t *m, size_t *c) { \
        return NAME##_body(p, len, crc, 0, 0);                                                                         \
    }                                                                                                                  \
    __attribute__((target(TARGET))) static uint32_t NAME##_magnitude(const uint8_t *p, size_t len, uint32_t crc, uint32_t *m, size_t *c) { \
        return NAME##_body(p, len, crc, m, c);                                                                         \
    }
MTLM_FOLD_VARIANTS(crc32_fold_sse, "pclmul,sse4.1")
MTLM_FOLD_VARIANTS(crc32_fold_avx2, "avx2,vpclmulqdq,pclmul,sse4.1")
MTLM_FOLD_VARIANTS(crc32_fold_avx512, "avx512f,vpclmulqdq,pclmul,sse4.1")

static int has_pclmul(void) { return mtlm_cpu_has(MTLM_CPU_PCLMUL | MTLM_CPU_SSE41); }
static int has_vpclmul256(void) { return mtlm_cpu_has(MTLM_CPU_PCLMUL | MTLM_CPU_SSE41 | MTLM_CPU_AVX2 | MTLM_CPU_VPCLMUL); }
static int has_vpclmul512(void) { return mtlm_cpu_has(MTLM_CPU_PCLMUL | MTLM_CPU_SSE41 | MTLM_CPU_AVX512F | MTLM_CPU_VPCLMUL); }

// The folding paths, fastest first: each needs its CPU features and a buffer of `minimum`
// bytes (its first load); a call takes the first that `implementation` and the CPU allow.
static const struct crc32_path {
    int implementation;
    size_t minimum;
    int (*available)(void);
    crc32_fold_fn plain, magnitude;
    const char *name;
} crc32_paths[] = {
    {MTLM_CRC32_VPCLMUL512, 256, has_vpclmul512, crc32_fold_avx512, crc32_fold_avx512_magnitude, "vpclmulqdq-avx512"},
    {MTLM_CRC32_VPCLMUL256, 256, has_vpclmul256, crc32_fold_avx2, crc32_fold_avx2_magnitude, "vpclmulqdq-avx2"},
    {MTLM_CRC32_PCLMUL, 64, has_pclmul, crc32_fold_sse, crc32_fold_sse_magnitude, "pclmul"},
};

static const struct crc32_path *crc32_path_for(int implementation, size_t len) {
    for (size_t i = 0; i < sizeof crc32_paths / sizeof crc32_paths[0]; i++) {
        const struct crc32_path *path = &crc32_paths[i];
        if (implementation >= path->implementation && len >= path->minimum && path->available()) return path;
    }
    return 0;
}
#endif

// The folding path's CRC of the whole 16-byte blocks of p (and the magnitude of the values
// they cover when `magnitude`), then zlib's of the rest.
static uint32_t crc32_with(int implementation, uint32_t crc, const uint8_t *p, size_t len, uint32_t *magnitude, size_t *covered) {
#if defined(__x86_64__)
    const struct crc32_path *path = crc32_path_for(implementation, len);
    if (path) {
        size_t body = len & ~(size_t)15;
        crc = ~(magnitude ? path->magnitude : path->plain)(p, body, ~crc, magnitude, covered);
        p += body;
        len -= body;
    }
#endif
    return (uint32_t)crc32_z(crc, p, len);
}

uint32_t mtlm_crc32_using(int implementation, uint32_t crc, const uint8_t *p, size_t len) {
    return crc32_with(implementation, crc, p, len, 0, 0);
}

uint32_t mtlm_crc32(uint32_t crc, const uint8_t *p, size_t len) { return crc32_with(MTLM_CRC32_BEST, crc, p, len, 0, 0); }

uint32_t mtlm_crc32_f32_magnitude(uint32_t crc, const uint8_t *p, size_t len, uint32_t *magnitude, int implementation) {
    uint32_t largest = 0;
    size_t done = 0;
    crc = crc32_with(implementation, crc, p, len, &largest, &done);
    // The values the fused loads did not reach (all of them on zlib's path).
    for (size_t i = done; i + 4 <= len; i += 4) {
        uint32_t bits;
        memcpy(&bits, p + i, 4);
        bits &= 0x7FFFFFFFu;
        largest = bits > largest ? bits : largest;
    }
    *magnitude = largest;
    return crc;
}

const char *mtlm_crc32_name(void) {
#if defined(__x86_64__)
    const struct crc32_path *path = crc32_path_for(MTLM_CRC32_BEST, SIZE_MAX);
    if (path) return path->name;
#endif
    return "zlib";
}

// Counts NaN and Inf among n float bit patterns (exponent all ones, mantissa non-zero or
// zero), and the finite values whose magnitude bits are at least HUGE (2^64 for float32 and
// bfloat16: their squares overflow float32). Counted in 32-bit lanes over blocks (so the loop
// vectorizes), summed in 64 bits.
#define COUNT_NONFINITE(T, EXP, MAN, HUGE)                                            \
    for (size_t start = 0; start < n; start += 1u << 20) {                            \
        size_t end = n - start < (1u << 20) ? n : start + (1u << 20);                 \
        uint32_t special = 0, nans = 0, huges = 0;                                    \
        for (size_t i = start; i < end; i++) {                                        \
            T b = bits[i];                                                            \
            uint32_t s = (b & (EXP)) == (EXP);                                        \
            special += s;                                                             \
            nans += s & ((b & (MAN)) != 0);                                           \
            huges += (((b & ((EXP) | (MAN))) >= (HUGE)) & (s ^ 1u));                  \
        }                                                                             \
        *nan += nans;                                                                 \
        *inf += special - nans;                                                       \
        *huge += huges;                                                               \
    }

#if defined(__x86_64__)
__attribute__((target("avx2")))
static void count_f32_avx2(const uint32_t *bits, size_t n, uint64_t *nan, uint64_t *inf, uint64_t *huge) { COUNT_NONFINITE(uint32_t, 0x7F800000u, 0x007FFFFFu, 0x5F800000u) }
#endif
static void count_f32(const uint32_t *bits, size_t n, uint64_t *nan, uint64_t *inf, uint64_t *huge) { COUNT_NONFINITE(uint32_t, 0x7F800000u, 0x007FFFFFu, 0x5F800000u) }

void mtlm_count_nonfinite_f32(const uint32_t *bits, size_t n, uint64_t *nan, uint64_t *inf, uint64_t *huge) {
#if defined(__x86_64__)
    if (mtlm_cpu_has(MTLM_CPU_AVX2)) return count_f32_avx2(bits, n, nan, inf, huge);
#endif
    count_f32(bits, n, nan, inf, huge);
}

void mtlm_count_nonfinite_16(const uint16_t *bits, size_t n, uint16_t exponent, uint16_t mantissa, uint16_t huge_bits,
                             uint64_t *nan, uint64_t *inf, uint64_t *huge) {
    COUNT_NONFINITE(uint16_t, exponent, mantissa, huge_bits)
}

