// INT4_ROWWISE encoding (docs/FORMAT.md): the greedy clipping search of FBGEMM over a row's
// range, then 4-bit levels with a float16 scale and bias. The search evaluates the row's
// squared reconstruction error about 64 times, so it is the cost of int4 quantization; here
// the whole search runs in C (the Swift twin in RowQuantizer is the reference the tests hold
// it to), with an AVX-512 path for the error that does the same float operations in the same
// order as the portable one: the same bytes on every CPU.
#include <stdint.h>
#include <string.h>
#include "include/mtlm_kernels.h"
#include "mtlm_cpu.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#pragma STDC FP_CONTRACT OFF

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

// The float16-representable scale and bias of range [low, high] (RowQuantizer.int4Parameters):
// a scale below float16's smallest normal is raised to it.
static inline __attribute__((always_inline)) void int4_parameters(float low, float high, float *scale, float *bias) {
    *bias = half_value(half_bits(low));
    if (!(high > low)) { *scale = 0; return; }
    float s = (high - low) / 15, smallest = 0x1p-14f;
    *scale = half_value(half_bits(smallest >= s ? smallest : s));
}

// Squared error of the row stored with `scale` (> 0) and `bias`: levels clamped to [0, 15] and
// rounded half to even by adding and removing 2^23; errors summed in 8 lanes (element j into
// lane j mod 8, in order), the lanes combined in a fixed order.
#define INT4_LOSS_BODY                                                                        \
    float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                 \
    for (size_t j = 0; j < n; j++) {                                                          \
        float v = (x[j] - bias) / scale;                                                      \
        v = v > 0 ? v : 0;                                                                    \
        v = v < 15 ? v : 15;                                                                  \
        v = (v + 8388608.0f) - 8388608.0f;                                                    \
        float e = scale * v;                                                                  \
        e = e + bias;                                                                         \
        e = e - x[j];                                                                         \
        lane[j & 7] += e * e;                                                                 \
    }                                                                                         \
    return ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));

static inline __attribute__((always_inline)) float loss_portable(const float *x, size_t n, float scale, float bias) { INT4_LOSS_BODY }

#if defined(__x86_64__)
// The same sum 16 elements at a time: the low and high halves of a register are two blocks of
// 8, added to the 8 lanes one after the other as the loop above does; a partial last
// register adds zeros to the lanes it does not reach (x + 0 = x for the sums, all ≥ +0).
//
// The error depends on each value's level only (e = scale · level + bias − x), and the level
// is (x − bias) / scale clamped and rounded: a product with the reciprocal `vr` gives the same
// level unless the quotient lies within a few ulps of a half-level (|q·r − q/s| ≤ 3 · 2^-24 ·
// 15.5 < 2^-18 where it matters), so a register with a value within 2^-16 of one is redone
// with the division.
__attribute__((target("avx512f,avx512vl,avx512dq")))
static inline __attribute__((always_inline)) float loss_avx512_v(const float *x, size_t n, __m512 vs, __m512 vb, __m512 vr) {
    const __m512 zero = _mm512_setzero_ps(), edge = _mm512_set1_ps(0.5f - 0x1p-16f);
    const __m512 fifteen = _mm512_set1_ps(15), magic = _mm512_set1_ps(8388608.0f);
    __m256 lanes = _mm256_setzero_ps();
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 mask = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        __m512 xv = _mm512_maskz_loadu_ps(mask, x + j);
        __m512 d = _mm512_sub_ps(xv, vb);
        __m512 c = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(d, vr), zero), fifteen);  // max(v, 0) is v > 0 ? v : 0 (never NaN)
        // c − RNE(c), exact (VREDUCEPS); the level RNE(c) is c minus it, as (c + 2^23) − 2^23 is.
        __m512 fraction = _mm512_reduce_ps(c, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 v = _mm512_sub_ps(c, fraction);
        if (_mm512_cmp_ps_mask(_mm512_abs_ps(fraction), edge, _CMP_GT_OQ)) {
            c = _mm512_min_ps(_mm512_max_ps(_mm512_div_ps(d, vs), zero), fifteen);
            v = _mm512_sub_ps(_mm512_add_ps(c, magic), magic);
        }
        __m512 e = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(vs, v), vb), xv);
        __m512 square = _mm512_maskz_mul_ps(mask, e, e);
        lanes = _mm256_add_ps(lanes, _mm512_castps512_ps256(square));
        if (n - j > 8) lanes = _mm256_add_ps(lanes, _mm512_extractf32x8_ps(square, 1));
    }
    // q = (l0+l4, l1+l5, l2+l6, l3+l7); then (q0+q1) + (q2+q3) (addition commutes exactly).
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(lanes), _mm256_extractf128_ps(lanes, 1));
    __m128 pairs = _mm_add_ps(q, _mm_movehdup_ps(q));  // q0+q1 in lane 0, q2+q3 in lane 2
    return _mm_cvtss_f32(_mm_add_ss(pairs, _mm_movehl_ps(pairs, pairs)));
}

#endif

// One row's search: its range, the current and best ranges, the best error.
typedef struct {
    float low, high;            // current range
    float best_low, best_high, best;
    float step, minimum_width;  // 1/200 of the row's range; the search stops at 84% of it
    int searching;
} row_search;

// The error of range [low, high] as it would be stored (a row of equal values: scale 0).
static inline __attribute__((always_inline)) float range_loss(const float *x, size_t n, float low, float high) {
    float scale, bias;
    int4_parameters(low, high, &scale, &bias);
    if (scale != 0) return loss_portable(x, n, scale, bias);
    float sum = 0;
    for (size_t j = 0; j < n; j++) sum += (bias - x[j]) * (bias - x[j]);
    return sum;
}

// RowQuantizer.encodeInt4's start: the range (min and max as Swift's min/max pick them,
// signed zeros included), refused beyond float16's range (1), and its error.
static inline __attribute__((always_inline)) int row_begin(const float *x, size_t n, int search, row_search *s) {
    float low = x[0], high = x[0];
    for (size_t j = 1; j < n; j++) {
        low = x[j] < low ? x[j] : low;
        high = x[j] >= high ? x[j] : high;
    }
    if (!((low < 0 ? -low : low) <= 65504.0f && (high < 0 ? -high : high) <= 65504.0f)) return 1;
    s->low = s->best_low = low;
    s->high = s->best_high = high;
    s->best = range_loss(x, n, low, high);
    s->searching = search && high > low;
    s->step = (high - low) / 200.0f;
    s->minimum_width = (high - low) * (1.0f - 0.16f);
    return 0;
}

// The levels over the best range, then the float16 scale and bias.
static inline __attribute__((always_inline)) void row_finish(const float *x, size_t n, const row_search *s, uint8_t *out) {
    float scale, bias;
    int4_parameters(s->best_low, s->best_high, &scale, &bias);
    size_t offset = (n + 1) / 2;
    memset(out, 0, offset);
    for (size_t j = 0; j < n; j++) {
        uint8_t level = 0;
        if (scale != 0) {
            float v = (x[j] - bias) / scale;
            v = v > 0 ? v : 0;
            v = v < 15 ? v : 15;
            level = (uint8_t)((v + 8388608.0f) - 8388608.0f);
        }
        out[j >> 1] |= (uint8_t)(level << ((j & 1) * 4));
    }
    uint16_t stored[2] = {half_bits(scale), half_bits(bias)};
    memcpy(out + offset, stored, 4);  // little-endian, as the format's hosts are
}

// The search one step at a time: evaluate raising the low end and lowering the high end by
// one step, move the end whose error is lower, keep the best range seen.
static void search_portable(const float *x, size_t n, row_search *s) {
    while (s->high - s->low > s->minimum_width) {
        float raise_low = range_loss(x, n, s->low + s->step, s->high);
        float lower_high = range_loss(x, n, s->low, s->high - s->step);
        if (raise_low < lower_high) {
            s->low += s->step;
            if (raise_low < s->best) { s->best_low = s->low; s->best_high = s->high; s->best = raise_low; }
        } else {
            s->high -= s->step;
            if (lower_high < s->best) { s->best_low = s->low; s->best_high = s->high; s->best = lower_high; }
        }
    }
}

#if defined(__x86_64__)
#define MTLM_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,f16c")))

// Moves row s one step given the errors of raising its low end and of lowering its high end,
// without a branch on them (each would be mispredicted half the time); returns whether it moved
// the low end.
MTLM_AVX512 static inline __attribute__((always_inline)) int take_step(row_search *s, float raise_loss, float lower_loss) {
    int raise = raise_loss < lower_loss;
    float chosen = raise ? raise_loss : lower_loss;
    s->low = raise ? s->low + s->step : s->low;
    s->high = raise ? s->high : s->high - s->step;
    int better = chosen < s->best;
    s->best = better ? chosen : s->best;
    s->best_low = better ? s->low : s->best_low;
    s->best_high = better ? s->high : s->best_high;
    return raise;
}

// The same search for up to 4 rows at once (row i at x + i·n), two steps an iteration: the
// steps of one row wait on each other's errors, the rows do not. The step after raising the
// low end to a = low + step, or lowering the high end to b = high − step, evaluates
// (a + step, high) and (a, b), or (a, b) and (low, b − step): five ranges a row, each float
// computed as the one-step loop computes it, their scales and biases rounded to float16
// together (F16C: IEEE round to nearest even, as RowCodec.half).
MTLM_AVX512 static void search_avx512(const float *x, size_t n, row_search *rows, size_t count) {
    const __m256 fifteen = _mm256_set1_ps(15), smallest = _mm256_set1_ps(0x1p-14f);
    int active[4];
    for (size_t i = 0; i < 4; i++) active[i] = i < count && rows[i].searching;
    for (;;) {
        int any = 0;
        for (size_t i = 0; i < 4; i++) {
            active[i] = active[i] && rows[i].high - rows[i].low > rows[i].minimum_width;
            any |= active[i];
        }
        if (!any) return;
        float loss[4][5];
        for (size_t i = 0; i < 4; i++) {
            if (!active[i]) continue;
            const row_search *s = &rows[i];
            float a = s->low + s->step, b = s->high - s->step;
            __m256 lows = _mm256_setr_ps(a, s->low, a + s->step, a, s->low, 0, 0, 0);
            __m256 highs = _mm256_setr_ps(s->high, b, s->high, b, b - s->step, 1, 1, 1);
            __m256 biases = _mm256_cvtph_ps(_mm256_cvtps_ph(lows, _MM_FROUND_TO_NEAREST_INT));
            // max(width, smallest) is smallest when they are equal, as Swift's max picks (the same value).
            __m256 widths = _mm256_max_ps(_mm256_div_ps(_mm256_sub_ps(highs, lows), fifteen), smallest);
            __m256 scales = _mm256_cvtph_ps(_mm256_cvtps_ph(widths, _MM_FROUND_TO_NEAREST_INT));
            __m256 reciprocals = _mm256_div_ps(_mm256_set1_ps(1), scales);
            // Each range's scale, bias and reciprocal broadcast from its lane (kept in registers).
            const __m512 s16 = _mm512_castps256_ps512(scales), b16 = _mm512_castps256_ps512(biases);
            const __m512 r16 = _mm512_castps256_ps512(reciprocals);
            const float *row = x + i * n;
            #define LANE(v, c) _mm512_permutexvar_ps(_mm512_set1_epi32(c), v)
            for (int c = 0; c < 5; c++) loss[i][c] = loss_avx512_v(row, n, LANE(s16, c), LANE(b16, c), LANE(r16, c));
            #undef LANE
        }
        for (size_t i = 0; i < 4; i++) {
            if (!active[i]) continue;
            int raised = take_step(&rows[i], loss[i][0], loss[i][1]);
            if (!(rows[i].high - rows[i].low > rows[i].minimum_width)) { active[i] = 0; continue; }
            take_step(&rows[i], raised ? loss[i][2] : loss[i][3], raised ? loss[i][3] : loss[i][4]);
        }
    }
}

static int has_avx512(void) { return mtlm_cpu_has(MTLM_CPU_AVX512F | MTLM_CPU_AVX512VL | MTLM_CPU_AVX512DQ | MTLM_CPU_F16C); }
#endif

long mtlm_encode_int4_rows(const float *x, size_t rows, size_t n, uint8_t *out, size_t out_stride, int search, int implementation) {
    if (n == 0) return -1;
    row_search state[4];
    for (size_t first = 0; first < rows; first += 4) {
        size_t count = rows - first < 4 ? rows - first : 4;
        const float *block = x + first * n;
        for (size_t i = 0; i < count; i++) {
            if (row_begin(block + i * n, n, search, &state[i])) return (long)(first + i);
        }
#if defined(__x86_64__)
        if (implementation >= 1 && has_avx512()) {
            search_avx512(block, n, state, count);
        } else
#endif
        {
            for (size_t i = 0; i < count; i++) if (state[i].searching) search_portable(block + i * n, n, &state[i]);
        }
        for (size_t i = 0; i < count; i++) row_finish(block + i * n, n, &state[i], out + (first + i) * out_stride);
    }
    return -1;
}

const char *mtlm_int4_kernel_name(void) {
#if defined(__x86_64__)
    if (has_avx512()) return "avx512";
#endif
    return "portable";
}
