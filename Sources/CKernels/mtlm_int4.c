// INT4_ROWWISE encoding (docs/FORMAT.md): the greedy clipping search of FBGEMM over a row's
// range, then 4-bit levels with a float16 scale and bias. The search evaluates the row's
// squared reconstruction error about 64 times, so it is the cost of int4 quantization; here
// the whole search runs in C (the Swift twin in the tests is the reference they hold it to),
// with an AVX-512 path that searches 16 rows at once, one a lane, and an AVX2 path that
// searches 8, each rounding as the portable one does, in the same order (one multiply-add that
// rounds once where the portable code rounds twice is exact: see lane_errors): the same bytes
// on every CPU.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "include/mtlm_kernels.h"
#include "mtlm_cpu.h"
#include "mtlm_errors.h"
#include "mtlm_half.h"
#include "mtlm_transpose.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#pragma STDC FP_CONTRACT OFF

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

// One row's search: its current and best ranges.
typedef struct {
    float low, high, best_low, best_high;
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
// signed zeros included), refused beyond float16's range (1).
static inline __attribute__((always_inline)) int row_begin(const float *x, size_t n, int search, row_search *s) {
    float low = x[0], high = x[0];
    for (size_t j = 1; j < n; j++) {
        low = x[j] < low ? x[j] : low;
        high = x[j] >= high ? x[j] : high;
    }
    if (!((low < 0 ? -low : low) <= 65504.0f && (high < 0 ? -high : high) <= 65504.0f)) return 1;
    s->low = s->best_low = low;
    s->high = s->best_high = high;
    s->searching = search && high > low;
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

// The search one step at a time, in steps of 1/200 of the row's range: evaluate raising the low
// end and lowering the high end by one step, move the end whose error is lower, keep the best
// range seen. It stops when the range is down to 84% of the row's, or when the end it would
// move does not move: a step below that end's precision (a spread of a few ulps, or one so
// small that the step rounds to 0) would repeat the same iteration forever.
static void search_portable(const float *x, size_t n, row_search *s) {
    const float step = (s->high - s->low) / 200.0f, minimum_width = (s->high - s->low) * (1.0f - 0.16f);
    float best = range_loss(x, n, s->low, s->high);
    while (s->high - s->low > minimum_width) {
        float raised = s->low + step, lowered = s->high - step;
        float raise_low = range_loss(x, n, raised, s->high);
        float lower_high = range_loss(x, n, s->low, lowered);
        if (raise_low < lower_high) {
            if (raised == s->low) return;
            s->low = raised;
            if (raise_low < best) { s->best_low = s->low; s->best_high = s->high; best = raise_low; }
        } else {
            if (lowered == s->high) return;
            s->high = lowered;
            if (lower_high < best) { s->best_low = s->low; s->best_high = s->high; best = lower_high; }
        }
    }
}

// The vector paths search up to LANE_BLOCKS blocks of rows together (a block: a row a lane): a
// block's next step waits on its errors, and the more blocks, the more of that wait the others'
// evaluations fill (the kernel alone on 32 MiB of rows of 16, Zen 4: 2 blocks 109 ms, 4 blocks
// 103, 8 blocks 100). As many as keep their transposed rows within 128 KiB, 2 at least.
enum { LANE_BLOCKS = 8 };
static size_t lane_group(size_t n, size_t lanes) {
    size_t blocks = (128 << 10) / (lanes * sizeof(float) * n);
    return blocks < 2 ? 2 : blocks > LANE_BLOCKS ? LANE_BLOCKS : blocks;
}

// Rows [begin, end) (clipped to `rows`) fetched into the cache while the rows before them are
// searched: the transposition reads a row first, and waited on memory (5% of the kernel).
static inline void prefetch_rows(const float *x, size_t rows, size_t n, size_t begin, size_t end) {
    begin = begin < rows ? begin : rows;
    end = end < rows ? end : rows;
    for (const char *p = (const char *)(x + begin * n), *last = (const char *)(x + end * n); p < last; p += 64) __builtin_prefetch(p, 0, 3);
}

#if defined(__x86_64__)
#define MTLM_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,f16c")))

// Sixteen rows at once, one row a lane: a block of rows is transposed (element j of row r at
// t[16·j + r]), so the error of a candidate range for 16 rows is n vector steps with no
// horizontal sums. Every lane computes what the portable code computes for its row, operation
// for operation (the division included: here it costs no more than a reciprocal and the check
// that its rounding agrees).

// The float16 scale and bias of ranges [low, high] (int4_parameters for 16 ranges wider than 0:
// F16C rounds to nearest even as RowCodec.half does; max picks `smallest` when equal, the same
// value).
MTLM_AVX512 static inline __attribute__((always_inline)) void lane_parameters(__m512 low, __m512 high, __m512 *scale, __m512 *bias) {
    *bias = _mm512_cvtph_ps(_mm512_cvtps_ph(low, _MM_FROUND_TO_NEAREST_INT));
    __m512 width = _mm512_max_ps(_mm512_div_ps(_mm512_sub_ps(high, low), _mm512_set1_ps(15)), _mm512_set1_ps(0x1p-14f));
    *scale = _mm512_cvtph_ps(_mm512_cvtps_ph(width, _MM_FROUND_TO_NEAREST_INT));
}

// The level of (x − bias) / scale: clamped to [0, 15] (v > 0 ? v : 0, then v < 15 ? v : 15), here
// on the float's bits as signed integers, which order non-negative floats as floats and put
// every negative one (−0 included) below +0, on pipes the float operations leave free; then
// rounded half to even (in [0, 15] what adding and removing 2^23 gives).
MTLM_AVX512 static inline __attribute__((always_inline)) __m512 lane_level(__m512 d, __m512 scale) {
    __m512i bits = _mm512_castps_si512(_mm512_div_ps(d, scale));
    __m512 clamped = _mm512_castsi512_ps(_mm512_min_epi32(_mm512_max_epi32(bits, _mm512_setzero_si512()), _mm512_set1_epi32(0x41700000)));
    return _mm512_roundscale_ps(clamped, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// loss_portable for 16 rows: element j's squared error into accumulator j mod 8 (written out
// eight at a time so the accumulators stay in registers), combined in its order. scale · v + bias
// is one fused operation: scale · v is exact (a float16 scale's 11 significant bits times a level
// of 4, no underflow as scale ≥ 2^-14), so rounding the sum once is what the portable code's two
// roundings give.
MTLM_AVX512 static inline __attribute__((always_inline)) __m512 lane_errors(const float *t, size_t n, __m512 scale, __m512 bias) {
    const __m512 zero = _mm512_setzero_ps();
    __m512 s0 = zero, s1 = zero, s2 = zero, s3 = zero, s4 = zero, s5 = zero, s6 = zero, s7 = zero;
    #define ELEMENT(j, sum)                                                                                  \
        do {                                                                                                 \
            __m512 x = _mm512_loadu_ps(t + 16 * (j)), v = lane_level(_mm512_sub_ps(x, bias), scale);        \
            __m512 e = _mm512_sub_ps(_mm512_fmadd_ps(scale, v, bias), x); /* fused: exact, see above */     \
            sum = _mm512_add_ps(sum, _mm512_mul_ps(e, e));                                                   \
        } while (0)
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        ELEMENT(j, s0); ELEMENT(j + 1, s1); ELEMENT(j + 2, s2); ELEMENT(j + 3, s3);
        ELEMENT(j + 4, s4); ELEMENT(j + 5, s5); ELEMENT(j + 6, s6); ELEMENT(j + 7, s7);
    }
    switch (n - j) {  // the last elements
    case 7: ELEMENT(j + 6, s6); /* fallthrough */
    case 6: ELEMENT(j + 5, s5); /* fallthrough */
    case 5: ELEMENT(j + 4, s4); /* fallthrough */
    case 4: ELEMENT(j + 3, s3); /* fallthrough */
    case 3: ELEMENT(j + 2, s2); /* fallthrough */
    case 2: ELEMENT(j + 1, s1); /* fallthrough */
    case 1: ELEMENT(j, s0); /* fallthrough */
    default: break;
    }
    #undef ELEMENT
    return _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s4), _mm512_add_ps(s1, s5)),
                         _mm512_add_ps(_mm512_add_ps(s2, s6), _mm512_add_ps(s3, s7)));
}

// One block's search: its rows transposed (t) and as given (x), their current and best ranges,
// the best errors, and the rows still searching.
typedef struct {
    const float *t, *x;
    __m512 low, high, best_low, best_high, best, step, minimum_width;
    __mmask16 lanes;
} lane_search;

// range_loss of ranges [low, high] for the block's searching rows, stored with `scale` and `bias`
// (lane_parameters). A range not wider than 0 has scale 0 and range_loss's other sum: the search
// never makes one (its width stays above 84% of the row's range, a step is 0.5% of it), but a
// row that did would get range_loss's figure.
MTLM_AVX512 static __m512 lane_loss(const lane_search *s, size_t n, __m512 low, __m512 high, __m512 scale, __m512 bias) {
    __m512 loss = lane_errors(s->t, n, scale, bias);
    __mmask16 flat = s->lanes & _mm512_cmp_ps_mask(high, low, _CMP_NGT_UQ);
    if (flat) {
        float l[16], h[16], out[16];
        _mm512_storeu_ps(l, low); _mm512_storeu_ps(h, high); _mm512_storeu_ps(out, loss);
        for (int r = 0; r < 16; r++) if (flat >> r & 1) out[r] = range_loss(s->x + (size_t)r * n, n, l[r], h[r]);
        loss = _mm512_loadu_ps(out);
    }
    return loss;
}

// search_portable's start for the rows in `lanes`: the step, the width to stop at, the error of
// the row's range.
MTLM_AVX512 static void lane_search_begin(lane_search *s, size_t n, __mmask16 lanes) {
    s->best_low = s->low;
    s->best_high = s->high;
    s->step = _mm512_div_ps(_mm512_sub_ps(s->high, s->low), _mm512_set1_ps(200.0f));
    s->minimum_width = _mm512_mul_ps(_mm512_sub_ps(s->high, s->low), _mm512_set1_ps(1.0f - 0.16f));
    s->lanes = lanes;
    s->best = _mm512_setzero_ps();
    if (!lanes) return;
    __m512 scale, bias;
    lane_parameters(s->low, s->high, &scale, &bias);
    s->best = lane_loss(s, n, s->low, s->high, scale, bias);
}

// Each searching row moves the end whose error is lower and keeps the best range seen; a row
// whose end would not move stops there (search_portable's returns).
MTLM_AVX512 static void lane_search_step(lane_search *s, __m512 raise_loss, __m512 lower_loss) {
    __m512 raised = _mm512_add_ps(s->low, s->step), lowered = _mm512_sub_ps(s->high, s->step);
    __mmask16 raise = s->lanes & _mm512_cmp_ps_mask(raise_loss, lower_loss, _CMP_LT_OQ), lower = s->lanes & ~raise;
    s->lanes &= ~((raise & _mm512_cmp_ps_mask(raised, s->low, _CMP_EQ_OQ)) | (lower & _mm512_cmp_ps_mask(lowered, s->high, _CMP_EQ_OQ)));
    raise &= s->lanes;
    lower &= s->lanes;
    s->low = _mm512_mask_mov_ps(s->low, raise, raised);
    s->high = _mm512_mask_mov_ps(s->high, lower, lowered);
    __m512 chosen = _mm512_mask_mov_ps(lower_loss, raise, raise_loss);
    __mmask16 better = s->lanes & _mm512_cmp_ps_mask(chosen, s->best, _CMP_LT_OQ);
    s->best = _mm512_mask_mov_ps(s->best, better, chosen);
    s->best_low = _mm512_mask_mov_ps(s->best_low, better, s->low);
    s->best_high = _mm512_mask_mov_ps(s->best_high, better, s->high);
}

// The searches of `count` (≤ LANE_BLOCKS) blocks together, a step at a time: for each block, the
// rows that still search (their range wider than the width to stop at) and the errors of raising
// their low end and of lowering their high end by one step. A block's step waits on its errors,
// and the other blocks' evaluations fill that wait; the candidates' scales and biases are
// computed first, as each is a chain of dependent operations (a division, two conversions) that
// its error loop waits on, and together their latencies overlap.
MTLM_AVX512 static void search_blocks(lane_search *s, size_t count, size_t n) {
    for (;;) {
        __m512 low[2 * LANE_BLOCKS], high[2 * LANE_BLOCKS], scale[2 * LANE_BLOCKS], bias[2 * LANE_BLOCKS], loss[2 * LANE_BLOCKS];
        size_t live = 0;
        for (size_t b = 0; b < count; b++) {
            s[b].lanes &= _mm512_cmp_ps_mask(_mm512_sub_ps(s[b].high, s[b].low), s[b].minimum_width, _CMP_GT_OQ);
            if (!s[b].lanes) continue;
            live |= 1u << b;
            low[2 * b] = _mm512_add_ps(s[b].low, s[b].step), high[2 * b] = s[b].high;
            low[2 * b + 1] = s[b].low, high[2 * b + 1] = _mm512_sub_ps(s[b].high, s[b].step);
        }
        if (!live) return;
        for (size_t k = 0; k < 2 * count; k++) if (live >> (k / 2) & 1) lane_parameters(low[k], high[k], &scale[k], &bias[k]);
        for (size_t k = 0; k < 2 * count; k++) if (live >> (k / 2) & 1) loss[k] = lane_loss(&s[k / 2], n, low[k], high[k], scale[k], bias[k]);
        for (size_t b = 0; b < count; b++) if (live >> b & 1) lane_search_step(&s[b], loss[2 * b], loss[2 * b + 1]);
    }
}

// row_begin for a block's rows [0, *count), *count ≤ 16, transposed into t (16·n floats; lanes
// beyond *count hold row 0 again, unused): returns -1, or the first row beyond float16's range
// (then *count is the number of rows before it).
MTLM_AVX512 static long lane_begin(lane_search *s, const float *x, size_t n, size_t *count, float *t) {
    for (size_t j = 0; j < n; j += 16) {
        size_t columns = n - j < 16 ? n - j : 16;
        __m512 r[16];
        mtlm_transpose16(x + j, n, *count, (__mmask16)((1u << columns) - 1), r);
        for (size_t c = 0; c < columns; c++) _mm512_storeu_ps(t + 16 * (j + c), r[c]);
    }
    // x < low ? x : low is min(x, low); x >= high ? x : high is max(high, x).
    __m512 low = _mm512_loadu_ps(t), high = low;
    for (size_t j = 1; j < n; j++) {
        __m512 v = _mm512_loadu_ps(t + 16 * j);
        low = _mm512_min_ps(v, low);
        high = _mm512_max_ps(high, v);
    }
    const __m512 largest = _mm512_set1_ps(65504.0f);
    __mmask16 beyond = (__mmask16)((1u << *count) - 1) & ~(_mm512_cmp_ps_mask(_mm512_abs_ps(low), largest, _CMP_LE_OQ) &
                                                          _mm512_cmp_ps_mask(_mm512_abs_ps(high), largest, _CMP_LE_OQ));
    *s = (lane_search){.t = t, .x = x, .low = low, .high = high};
    if (!beyond) return -1;
    *count = (size_t)__builtin_ctz(beyond);
    return (long)*count;
}

// row_finish for a block's rows [0, count) over their best ranges: the levels packed two a byte
// into bytes (byte k of row r at bytes[16·k + r]), then each row written out; with `errors`,
// each row's relative error added to them (the decoded value is scale · level + bias, as
// RowCodec decodes it; rows of equal values: level 0, scale 0).
MTLM_AVX512 static void lane_finish(const lane_search *s, size_t n, size_t count, int searched, uint8_t *bytes, uint8_t *out,
                                    size_t out_stride, double *errors) {
    __m512 low = searched ? s->best_low : s->low, high = searched ? s->best_high : s->high, scale, bias;
    lane_parameters(low, high, &scale, &bias);
    __mmask16 spread = _mm512_cmp_ps_mask(high, low, _CMP_GT_OQ);
    scale = _mm512_maskz_mov_ps(spread, scale);
    __m512d difference[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()}, norm[2] = {difference[0], difference[0]};
    size_t pairs = (n + 1) / 2;
    for (size_t k = 0; k < pairs; k++) {
        __m512i byte = _mm512_setzero_si512();
        for (size_t j = 2 * k; j < n && j < 2 * k + 2; j++) {
            __m512 x = _mm512_loadu_ps(s->t + 16 * j), v = _mm512_maskz_mov_ps(spread, lane_level(_mm512_sub_ps(x, bias), scale));
            byte = _mm512_or_si512(byte, _mm512_slli_epi32(_mm512_cvttps_epi32(v), (unsigned)(j & 1) * 4));
            if (!errors) continue;
            __m512 decoded = _mm512_add_ps(_mm512_mul_ps(scale, v), bias);
            for (int h = 0; h < 2; h++) {  // rows 0–7, then 8–15, in double
                __m512d xd = _mm512_cvtps_pd(h ? _mm512_extractf32x8_ps(x, 1) : _mm512_castps512_ps256(x));
                __m512d dd = _mm512_cvtps_pd(h ? _mm512_extractf32x8_ps(decoded, 1) : _mm512_castps512_ps256(decoded));
                __m512d d = _mm512_sub_pd(dd, xd);
                difference[h] = _mm512_add_pd(difference[h], _mm512_mul_pd(d, d));
                norm[h] = _mm512_add_pd(norm[h], _mm512_mul_pd(xd, xd));
            }
        }
        _mm_storeu_si128((__m128i *)(bytes + 16 * k), _mm512_cvtepi32_epi8(byte));
    }
    uint16_t scales[16], biases[16];
    _mm256_storeu_si256((__m256i *)scales, _mm512_cvtps_ph(scale, _MM_FROUND_TO_NEAREST_INT));
    _mm256_storeu_si256((__m256i *)biases, _mm512_cvtps_ph(bias, _MM_FROUND_TO_NEAREST_INT));
    double differences[16], norms[16];
    for (int h = 0; h < 2; h++) { _mm512_storeu_pd(differences + 8 * h, difference[h]); _mm512_storeu_pd(norms + 8 * h, norm[h]); }
    for (size_t r = 0; r < count; r++) {
        uint8_t *row = out + r * out_stride;
        for (size_t k = 0; k < pairs; k++) row[k] = bytes[16 * k + r];
        uint16_t stored[2] = {scales[r], biases[r]};
        memcpy(row + pairs, stored, 4);
        if (errors) mtlm_add_relative_error(differences[r], norms[r], &errors[0], &errors[1]);
    }
}

static int has_avx512(void) { return mtlm_cpu_has(MTLM_CPU_AVX512F | MTLM_CPU_AVX512VL | MTLM_CPU_AVX512DQ | MTLM_CPU_F16C); }

// The scratch memory encode_avx512 needs: `blocks` transposed blocks and one block of packed levels.
static size_t avx512_scratch_bytes(size_t n, size_t blocks) { return blocks * 16 * n * sizeof(float) + 16 * ((n + 1) / 2); }

// Rows encoded `group` blocks of 16 at a time, the blocks searched together.
MTLM_AVX512 static long encode_avx512(const float *x, size_t rows, size_t n, uint8_t *out, size_t out_stride, int search, float *scratch,
                                      size_t group, double *errors) {
    for (size_t first = 0; first < rows; first += 16 * group) {
        lane_search s[LANE_BLOCKS];
        size_t count[LANE_BLOCKS] = {0}, blocks = 0;
        long refused = -1;
        for (; blocks < group && first + 16 * blocks < rows && refused < 0; blocks++) {
            size_t begin = first + 16 * blocks;
            count[blocks] = rows - begin < 16 ? rows - begin : 16;
            long bad = lane_begin(&s[blocks], x + begin * n, n, &count[blocks], scratch + 16 * n * blocks);
            if (bad >= 0) refused = (long)begin + bad;
        }
        if (search) {
            prefetch_rows(x, rows, n, first + 16 * group, first + 32 * group);
            for (size_t b = 0; b < blocks; b++) {
                __mmask16 rows_in = (__mmask16)((1u << count[b]) - 1);
                lane_search_begin(&s[b], n, rows_in & _mm512_cmp_ps_mask(s[b].high, s[b].low, _CMP_GT_OQ));
            }
            search_blocks(s, blocks, n);
        }
        for (size_t b = 0; b < blocks; b++) {
            lane_finish(&s[b], n, count[b], search, (uint8_t *)(scratch + 16 * group * n), out + (first + 16 * b) * out_stride,
                        out_stride, errors);
        }
        if (refused >= 0) return refused;
    }
    return -1;
}
#endif

#if defined(__x86_64__)
#define MTLM_AVX2 __attribute__((target("avx2,fma,f16c")))

// The AVX-512 path's twin for CPUs with AVX2 but not AVX-512 (Zen 3): 8 rows a block, one a
// lane of 256 bits, the lanes a row still searches as a bit mask; each function is its
// AVX-512 namesake's operations on 8 lanes, in the same order (the same bytes).

// A vector of all-ones lanes for the bits of `mask`.
MTLM_AVX2 static inline __attribute__((always_inline)) __m256 lane_mask8(unsigned mask) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)mask), bit), bit));
}

// The lanes where `a predicate b` holds, as bits.
#define MTLM_CMP8(a, b, predicate) ((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a, b, predicate)))

MTLM_AVX2 static inline __attribute__((always_inline)) void lane_parameters8(__m256 low, __m256 high, __m256 *scale, __m256 *bias) {
    *bias = _mm256_cvtph_ps(_mm256_cvtps_ph(low, _MM_FROUND_TO_NEAREST_INT));
    __m256 width = _mm256_max_ps(_mm256_div_ps(_mm256_sub_ps(high, low), _mm256_set1_ps(15)), _mm256_set1_ps(0x1p-14f));
    *scale = _mm256_cvtph_ps(_mm256_cvtps_ph(width, _MM_FROUND_TO_NEAREST_INT));
}

MTLM_AVX2 static inline __attribute__((always_inline)) __m256 lane_level8(__m256 d, __m256 scale) {
    __m256i bits = _mm256_castps_si256(_mm256_div_ps(d, scale));
    __m256 clamped = _mm256_castsi256_ps(_mm256_min_epi32(_mm256_max_epi32(bits, _mm256_setzero_si256()), _mm256_set1_epi32(0x41700000)));
    return _mm256_round_ps(clamped, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

MTLM_AVX2 static inline __attribute__((always_inline)) __m256 lane_errors8(const float *t, size_t n, __m256 scale, __m256 bias) {
    const __m256 zero = _mm256_setzero_ps();
    __m256 s0 = zero, s1 = zero, s2 = zero, s3 = zero, s4 = zero, s5 = zero, s6 = zero, s7 = zero;
    #define ELEMENT(j, sum)                                                                                  \
        do {                                                                                                 \
            __m256 x = _mm256_loadu_ps(t + 8 * (j)), v = lane_level8(_mm256_sub_ps(x, bias), scale);        \
            __m256 e = _mm256_sub_ps(_mm256_fmadd_ps(scale, v, bias), x);                                    \
            sum = _mm256_add_ps(sum, _mm256_mul_ps(e, e));                                                   \
        } while (0)
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        ELEMENT(j, s0); ELEMENT(j + 1, s1); ELEMENT(j + 2, s2); ELEMENT(j + 3, s3);
        ELEMENT(j + 4, s4); ELEMENT(j + 5, s5); ELEMENT(j + 6, s6); ELEMENT(j + 7, s7);
    }
    switch (n - j) {
    case 7: ELEMENT(j + 6, s6); /* fallthrough */
    case 6: ELEMENT(j + 5, s5); /* fallthrough */
    case 5: ELEMENT(j + 4, s4); /* fallthrough */
    case 4: ELEMENT(j + 3, s3); /* fallthrough */
    case 3: ELEMENT(j + 2, s2); /* fallthrough */
    case 2: ELEMENT(j + 1, s1); /* fallthrough */
    case 1: ELEMENT(j, s0); /* fallthrough */
    default: break;
    }
    #undef ELEMENT
    return _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s0, s4), _mm256_add_ps(s1, s5)),
                         _mm256_add_ps(_mm256_add_ps(s2, s6), _mm256_add_ps(s3, s7)));
}

typedef struct {
    const float *t, *x;
    __m256 low, high, best_low, best_high, best, step, minimum_width;
    unsigned lanes;
} lane_search8;

MTLM_AVX2 static __m256 lane_loss8(const lane_search8 *s, size_t n, __m256 low, __m256 high, __m256 scale, __m256 bias) {
    __m256 loss = lane_errors8(s->t, n, scale, bias);
    unsigned flat = s->lanes & MTLM_CMP8(high, low, _CMP_NGT_UQ);
    if (flat) {
        float l[8], h[8], out[8];
        _mm256_storeu_ps(l, low); _mm256_storeu_ps(h, high); _mm256_storeu_ps(out, loss);
        for (int r = 0; r < 8; r++) if (flat >> r & 1) out[r] = range_loss(s->x + (size_t)r * n, n, l[r], h[r]);
        loss = _mm256_loadu_ps(out);
    }
    return loss;
}

MTLM_AVX2 static void lane_search_begin8(lane_search8 *s, size_t n, unsigned lanes) {
    s->best_low = s->low;
    s->best_high = s->high;
    s->step = _mm256_div_ps(_mm256_sub_ps(s->high, s->low), _mm256_set1_ps(200.0f));
    s->minimum_width = _mm256_mul_ps(_mm256_sub_ps(s->high, s->low), _mm256_set1_ps(1.0f - 0.16f));
    s->lanes = lanes;
    s->best = _mm256_setzero_ps();
    if (!lanes) return;
    __m256 scale, bias;
    lane_parameters8(s->low, s->high, &scale, &bias);
    s->best = lane_loss8(s, n, s->low, s->high, scale, bias);
}

MTLM_AVX2 static void lane_search_step8(lane_search8 *s, __m256 raise_loss, __m256 lower_loss) {
    __m256 raised = _mm256_add_ps(s->low, s->step), lowered = _mm256_sub_ps(s->high, s->step);
    unsigned raise = s->lanes & MTLM_CMP8(raise_loss, lower_loss, _CMP_LT_OQ), lower = s->lanes & ~raise;
    s->lanes &= ~((raise & MTLM_CMP8(raised, s->low, _CMP_EQ_OQ)) | (lower & MTLM_CMP8(lowered, s->high, _CMP_EQ_OQ)));
    raise &= s->lanes;
    lower &= s->lanes;
    s->low = _mm256_blendv_ps(s->low, raised, lane_mask8(raise));
    s->high = _mm256_blendv_ps(s->high, lowered, lane_mask8(lower));
    __m256 chosen = _mm256_blendv_ps(lower_loss, raise_loss, lane_mask8(raise));
    __m256 better = lane_mask8(s->lanes & MTLM_CMP8(chosen, s->best, _CMP_LT_OQ));
    s->best = _mm256_blendv_ps(s->best, chosen, better);
    s->best_low = _mm256_blendv_ps(s->best_low, s->low, better);
    s->best_high = _mm256_blendv_ps(s->best_high, s->high, better);
}

MTLM_AVX2 static void search_blocks8(lane_search8 *s, size_t count, size_t n) {
    for (;;) {
        __m256 low[2 * LANE_BLOCKS], high[2 * LANE_BLOCKS], scale[2 * LANE_BLOCKS], bias[2 * LANE_BLOCKS], loss[2 * LANE_BLOCKS];
        size_t live = 0;
        for (size_t b = 0; b < count; b++) {
            s[b].lanes &= MTLM_CMP8(_mm256_sub_ps(s[b].high, s[b].low), s[b].minimum_width, _CMP_GT_OQ);
            if (!s[b].lanes) continue;
            live |= 1u << b;
            low[2 * b] = _mm256_add_ps(s[b].low, s[b].step), high[2 * b] = s[b].high;
            low[2 * b + 1] = s[b].low, high[2 * b + 1] = _mm256_sub_ps(s[b].high, s[b].step);
        }
        if (!live) return;
        for (size_t k = 0; k < 2 * count; k++) if (live >> (k / 2) & 1) lane_parameters8(low[k], high[k], &scale[k], &bias[k]);
        for (size_t k = 0; k < 2 * count; k++) if (live >> (k / 2) & 1) loss[k] = lane_loss8(&s[k / 2], n, low[k], high[k], scale[k], bias[k]);
        for (size_t b = 0; b < count; b++) if (live >> b & 1) lane_search_step8(&s[b], loss[2 * b], loss[2 * b + 1]);
    }
}

MTLM_AVX2 static long lane_begin8(lane_search8 *s, const float *x, size_t n, size_t *count, float *t) {
    for (size_t j = 0; j < n; j += 8) {
        size_t columns = n - j < 8 ? n - j : 8;
        __m256 r[8];
        mtlm_transpose8(x + j, n, *count, columns, r);
        for (size_t c = 0; c < columns; c++) _mm256_storeu_ps(t + 8 * (j + c), r[c]);
    }
    __m256 low = _mm256_loadu_ps(t), high = low;
    for (size_t j = 1; j < n; j++) {
        __m256 v = _mm256_loadu_ps(t + 8 * j);
        low = _mm256_min_ps(v, low);
        high = _mm256_max_ps(high, v);
    }
    const __m256 largest = _mm256_set1_ps(65504.0f), magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    unsigned beyond = ((1u << *count) - 1) & ~(MTLM_CMP8(_mm256_and_ps(low, magnitude), largest, _CMP_LE_OQ) &
                                               MTLM_CMP8(_mm256_and_ps(high, magnitude), largest, _CMP_LE_OQ));
    *s = (lane_search8){.t = t, .x = x, .low = low, .high = high};
    if (!beyond) return -1;
    *count = (size_t)__builtin_ctz(beyond);
    return (long)*count;
}

MTLM_AVX2 static void lane_finish8(const lane_search8 *s, size_t n, size_t count, int searched, uint8_t *bytes, uint8_t *out,
                                   size_t out_stride, double *errors) {
    __m256 low = searched ? s->best_low : s->low, high = searched ? s->best_high : s->high, scale, bias;
    lane_parameters8(low, high, &scale, &bias);
    __m256 spread = _mm256_cmp_ps(high, low, _CMP_GT_OQ);
    scale = _mm256_and_ps(spread, scale);
    __m256d difference[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()}, norm[2] = {difference[0], difference[0]};
    size_t pairs = (n + 1) / 2;
    for (size_t k = 0; k < pairs; k++) {
        __m256i byte = _mm256_setzero_si256();
        for (size_t j = 2 * k; j < n && j < 2 * k + 2; j++) {
            __m256 x = _mm256_loadu_ps(s->t + 8 * j), v = _mm256_and_ps(spread, lane_level8(_mm256_sub_ps(x, bias), scale));
            byte = _mm256_or_si256(byte, _mm256_slli_epi32(_mm256_cvttps_epi32(v), (int)(j & 1) * 4));
            if (!errors) continue;
            __m256 decoded = _mm256_add_ps(_mm256_mul_ps(scale, v), bias);
            for (int h = 0; h < 2; h++) {  // rows 0–3, then 4–7, in double
                __m256d xd = _mm256_cvtps_pd(h ? _mm256_extractf128_ps(x, 1) : _mm256_castps256_ps128(x));
                __m256d dd = _mm256_cvtps_pd(h ? _mm256_extractf128_ps(decoded, 1) : _mm256_castps256_ps128(decoded));
                __m256d d = _mm256_sub_pd(dd, xd);
                difference[h] = _mm256_add_pd(difference[h], _mm256_mul_pd(d, d));
                norm[h] = _mm256_add_pd(norm[h], _mm256_mul_pd(xd, xd));
            }
        }
        __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(byte), _mm256_extracti128_si256(byte, 1));
        _mm_storel_epi64((__m128i *)(bytes + 8 * k), _mm_packus_epi16(words, words));
    }
    uint16_t scales[8], biases[8];
    _mm_storeu_si128((__m128i *)scales, _mm256_cvtps_ph(scale, _MM_FROUND_TO_NEAREST_INT));
    _mm_storeu_si128((__m128i *)biases, _mm256_cvtps_ph(bias, _MM_FROUND_TO_NEAREST_INT));
    double differences[8], norms[8];
    for (int h = 0; h < 2; h++) { _mm256_storeu_pd(differences + 4 * h, difference[h]); _mm256_storeu_pd(norms + 4 * h, norm[h]); }
    for (size_t r = 0; r < count; r++) {
        uint8_t *row = out + r * out_stride;
        for (size_t k = 0; k < pairs; k++) row[k] = bytes[8 * k + r];
        uint16_t stored[2] = {scales[r], biases[r]};
        memcpy(row + pairs, stored, 4);
        if (errors) mtlm_add_relative_error(differences[r], norms[r], &errors[0], &errors[1]);
    }
}

static int has_avx2(void) { return mtlm_cpu_has(MTLM_CPU_AVX2 | MTLM_CPU_FMA | MTLM_CPU_F16C); }

// `blocks` transposed blocks of 8 rows and one block of packed levels.
static size_t avx2_scratch_bytes(size_t n, size_t blocks) { return blocks * 8 * n * sizeof(float) + 8 * ((n + 1) / 2); }

// Rows encoded `group` blocks of 8 at a time, the blocks searched together.
MTLM_AVX2 static long encode_avx2(const float *x, size_t rows, size_t n, uint8_t *out, size_t out_stride, int search, float *scratch,
                                  size_t group, double *errors) {
    for (size_t first = 0; first < rows; first += 8 * group) {
        lane_search8 s[LANE_BLOCKS];
        size_t count[LANE_BLOCKS] = {0}, blocks = 0;
        long refused = -1;
        for (; blocks < group && first + 8 * blocks < rows && refused < 0; blocks++) {
            size_t begin = first + 8 * blocks;
            count[blocks] = rows - begin < 8 ? rows - begin : 8;
            long bad = lane_begin8(&s[blocks], x + begin * n, n, &count[blocks], scratch + 8 * n * blocks);
            if (bad >= 0) refused = (long)begin + bad;
        }
        if (search) {
            prefetch_rows(x, rows, n, first + 8 * group, first + 16 * group);
            for (size_t b = 0; b < blocks; b++) {
                unsigned rows_in = (1u << count[b]) - 1;
                lane_search_begin8(&s[b], n, rows_in & MTLM_CMP8(s[b].high, s[b].low, _CMP_GT_OQ));
            }
            search_blocks8(s, blocks, n);
        }
        for (size_t b = 0; b < blocks; b++) {
            lane_finish8(&s[b], n, count[b], search, (uint8_t *)(scratch + 8 * group * n), out + (first + 8 * b) * out_stride,
                         out_stride, errors);
        }
        if (refused >= 0) return refused;
    }
    return -1;
}
#undef MTLM_CMP8
#undef MTLM_AVX2
#endif

// A row's relative error from its stored form (RowCodec's decoding), for the portable path.
static void row_error(const float *x, size_t n, const uint8_t *row, double *errors) {
    size_t pairs = (n + 1) / 2;
    uint16_t stored[2];
    memcpy(stored, row + pairs, 4);
    float scale = half_value(stored[0]), bias = half_value(stored[1]);
    double difference = 0, norm = 0;
    for (size_t j = 0; j < n; j++) {
        float decoded = scale * (float)((row[j >> 1] >> ((j & 1) * 4)) & 0x0F) + bias;
        double d = (double)decoded - (double)x[j];
        difference += d * d;
        norm += (double)x[j] * (double)x[j];
    }
    mtlm_add_relative_error(difference, norm, &errors[0], &errors[1]);
}

long mtlm_encode_int4_rows(const float *x, size_t rows, size_t n, uint8_t *out, size_t out_stride, int search, int implementation,
                           double *errors) {
    if (n == 0) return -1;
#if defined(__x86_64__)
    // (Without memory for their scratch: the portable code.)
    size_t group = lane_group(n, 16);
    float *scratch = implementation >= 2 && has_avx512() ? malloc(avx512_scratch_bytes(n, group)) : NULL;
    if (scratch) {
        long refused = encode_avx512(x, rows, n, out, out_stride, search, scratch, group, errors);
        free(scratch);
        return refused;
    }
    group = lane_group(n, 8);
    scratch = implementation >= 1 && has_avx2() ? malloc(avx2_scratch_bytes(n, group)) : NULL;
    if (scratch) {
        long refused = encode_avx2(x, rows, n, out, out_stride, search, scratch, group, errors);
        free(scratch);
        return refused;
    }
#endif
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * n;
        row_search state;
        if (row_begin(row, n, search, &state)) return (long)r;
        if (state.searching) search_portable(row, n, &state);
        row_finish(row, n, &state, out + r * out_stride);
        if (errors) row_error(row, n, out + r * out_stride, errors);
    }
    return -1;
}

const char *mtlm_int4_kernel_name(void) {
#if defined(__x86_64__)
    if (has_avx512()) return "avx512";
    if (has_avx2()) return "avx2";
#endif
    return "portable";
}
