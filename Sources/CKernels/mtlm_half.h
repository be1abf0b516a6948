#ifndef MTLM_HALF_H
#define MTLM_HALF_H
// float32 ↔ float16 / bfloat16 bit conversions, scalar, exactly as RowCodec's Swift ones: the
// portable paths of the int4 and half-precision kernels, and their vector paths' tails.
#include <stdint.h>
#include <string.h>

static inline uint32_t bits_of(float x) { uint32_t b; memcpy(&b, &x, 4); return b; }
static inline float float_of(uint32_t b) { float x; memcpy(&x, &b, 4); return x; }

// float32 → float16 bits, round to nearest even: RowCodec.half, operation for operation.
static inline __attribute__((always_inline)) uint16_t half_bits(float x) {
    uint32_t bits = bits_of(x), sign = bits & 0x80000000u, result;
    bits ^= sign;
    if (bits >= 0x47800000u) {
        result = bits > 0x7F800000u ? 0x7E00u | ((bits >> 13) & 0x3FFu) : 0x7C00u;
    } else if (bits < 0x38800000u) {
        result = bits_of(float_of(bits) + 0.5f) - 0x3F000000u;
    } else {
        result = (bits + 0xC8000FFFu + ((bits >> 13) & 1u)) >> 13;
    }
    return (uint16_t)(result | (sign >> 16));
}

// float16 bits → float32 (exact).
static inline __attribute__((always_inline)) float half_value(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
    if (exponent == 0) {
        float v = (float)mantissa * 0x1p-24f;
        return sign ? -v : v;
    }
    return float_of(sign | (exponent == 31 ? 0x7F800000u : (exponent + 112) << 23) | (mantissa << 13));
}

// float32 → bfloat16 bits, round to nearest even (finite inputs): RowCodec.bfloat.
static inline __attribute__((always_inline)) uint16_t bfloat_bits(float x) {
    uint32_t bits = bits_of(x);
    return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

// bfloat16 bits → float32 (exact).
static inline __attribute__((always_inline)) float bfloat_value(uint16_t b) { return float_of((uint32_t)b << 16); }
#endif
