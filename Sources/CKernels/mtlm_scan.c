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

// The end shared by both folding loops: four 128-bit lanes (x0 the earliest), then `len`
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

__attribute__((target("pclmul,sse4.1")))
static uint32_t crc32_fold(const uint8_t *p, size_t len, uint32_t crc) {
    const __m128i k1k2 = MTLM_FOLD_512;
    __m128i x0 = _mm_loadu_si128((const __m128i *)(p + 0));
    __m128i x1 = _mm_loadu_si128((const __m128i *)(p + 16));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 32));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 48));
    x0 = _mm_xor_si128(x0, _mm_cvtsi32_si128((int)crc));
    p += 64;
    len -= 64;
    while (len >= 64) {
        __m128i h0 = _mm_clmulepi64_si128(x0, k1k2, 0x11), h1 = _mm_clmulepi64_si128(x1, k1k2, 0x11);
        __m128i h2 = _mm_clmulepi64_si128(x2, k1k2, 0x11), h3 = _mm_clmulepi64_si128(x3, k1k2, 0x11);
        x0 = _mm_clmulepi64_si128(x0, k1k2, 0x00);
        x1 = _mm_clmulepi64_si128(x1, k1k2, 0x00);
        x2 = _mm_clmulepi64_si128(x2, k1k2, 0x00);
        x3 = _mm_clmulepi64_si128(x3, k1k2, 0x00);
        x0 = _mm_xor_si128(_mm_xor_si128(x0, h0), _mm_loadu_si128((const __m128i *)(p + 0)));
        x1 = _mm_xor_si128(_mm_xor_si128(x1, h1), _mm_loadu_si128((const __m128i *)(p + 16)));
        x2 = _mm_xor_si128(_mm_xor_si128(x2, h2), _mm_loadu_si128((const __m128i *)(p + 32)));
        x3 = _mm_xor_si128(_mm_xor_si128(x3, h3), _mm_loadu_si128((const __m128i *)(p + 48)));
        p += 64;
        len -= 64;
    }
    return crc32_fold_finish(x0, x1, x2, x3, p, len);
}

// The same with VPCLMULQDQ on 512-bit registers, for 256 bytes or more (a multiple of 16):
// four registers of four lanes fold 256 bytes an iteration (by 2048 bits: x^2016 and x^2080
// mod P), then fold into one register by 512 bits, whose four lanes end as above. With
// `magnitude`, the same loads also give the largest |x| (as bits) of the float32 values in the
// 64-byte blocks folded, and *covered says how many bytes those were: verify's scan for NaN,
// Inf and huge values fused into the checksum's one pass over the chunk.
__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.1")))
static inline __attribute__((always_inline)) uint32_t crc32_fold_avx512_body(const uint8_t *p, size_t len, uint32_t crc, uint32_t *magnitude, size_t *covered) {
    const __m512i k2048 = _mm512_broadcast_i32x4(_mm_set_epi64x(0x1322d1430 /* x^2016 */, 0x11542778a /* x^2080 */));
    const __m512i k512 = _mm512_broadcast_i32x4(MTLM_FOLD_512);
    const __m512i abs = _mm512_set1_epi32(0x7FFFFFFF);
    __m512i m0 = _mm512_setzero_si512(), m1 = m0;
    const uint8_t *start = p;
    #define FOLD512(z, k, next) _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(z, k, 0x00), _mm512_clmulepi64_epi128(z, k, 0x11), next, 0x96)
    #define TRACK(m, v) if (magnitude) m = _mm512_max_epu32(m, _mm512_and_si512(v, abs))
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

__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.1")))
static uint32_t crc32_fold_avx512(const uint8_t *p, size_t len, uint32_t crc) { return crc32_fold_avx512_body(p, len, crc, 0, 0); }

__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.1")))
static uint32_t crc32_fold_avx512_magnitude(const uint8_t *p, size_t len, uint32_t crc, uint32_t *magnitude, size_t *covered) {
    return crc32_fold_avx512_body(p, len, crc, magnitude, covered);
}

static int has_pclmul(void) { return mtlm_cpu_has(MTLM_CPU_PCLMUL | MTLM_CPU_SSE41); }
static int has_vpclmul(void) { return mtlm_cpu_has(MTLM_CPU_PCLMUL | MTLM_CPU_SSE41 | MTLM_CPU_AVX512F | MTLM_CPU_VPCLMUL); }
#endif

uint32_t mtlm_crc32_using(int implementation, uint32_t crc, const uint8_t *p, size_t len) {
#if defined(__x86_64__)
    if (implementation >= 2 && len >= 256 && has_vpclmul()) {
        size_t body = len & ~(size_t)15;
        crc = ~crc32_fold_avx512(p, body, ~crc);
        p += body;
        len -= body;
    } else if (implementation >= 1 && len >= 64 && has_pclmul()) {
        size_t body = len & ~(size_t)15;
        crc = ~crc32_fold(p, body, ~crc);
        p += body;
        len -= body;
    }
#endif
    return (uint32_t)crc32_z(crc, p, len);
}

uint32_t mtlm_crc32(uint32_t crc, const uint8_t *p, size_t len) { return mtlm_crc32_using(2, crc, p, len); }

uint32_t mtlm_crc32_f32_magnitude(uint32_t crc, const uint8_t *p, size_t len, uint32_t *magnitude, int implementation) {
    uint32_t largest = 0;
    size_t done = 0;
#if defined(__x86_64__)
    if (implementation >= 2 && len >= 256 && has_vpclmul()) {
        size_t body = len & ~(size_t)15;
        crc = ~crc32_fold_avx512_magnitude(p, body, ~crc, &largest, &done);
        crc = (uint32_t)crc32_z(crc, p + body, len - body);
    } else
#endif
    {
        crc = mtlm_crc32_using(implementation, crc, p, len);
    }
    // The values the fused loads did not reach (all of them on the other paths).
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
    if (has_vpclmul()) return "vpclmulqdq-avx512";
    if (has_pclmul()) return "pclmul";
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

