#include "mtlm_kernels.h"
#include "mtlm_errors.h"
#include "mtlm_cpu.h"
#include "mtlm_transpose.h"

#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// Portable kernel: 4 rows x 16 outputs, plain loops the compiler vectorizes.
static void dense_portable(const float *x, size_t xs, size_t rows, const float *wt, size_t in,
                           size_t outp, const float *bias, float *y) {
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *x0 = x + r * xs, *x1 = x0 + xs, *x2 = x1 + xs, *x3 = x2 + xs;
        for (size_t o = 0; o < outp; o += 16) {
            float a[4][16];
            for (int j = 0; j < 16; j++) a[0][j] = a[1][j] = a[2][j] = a[3][j] = bias[o + j];
            const float *w = wt + o;
            for (size_t i = 0; i < in; i++, w += outp) {
                float v0 = x0[i], v1 = x1[i], v2 = x2[i], v3 = x3[i];
                for (int j = 0; j < 16; j++) {
                    a[0][j] += v0 * w[j];
                    a[1][j] += v1 * w[j];
                    a[2][j] += v2 * w[j];
                    a[3][j] += v3 * w[j];
                }
            }
            for (int k = 0; k < 4; k++) memcpy(y + (r + k) * outp + o, a[k], sizeof a[k]);
        }
    }
    for (; r < rows; r++) {
        const float *x0 = x + r * xs;
        for (size_t o = 0; o < outp; o += 16) {
            float a[16];
            for (int j = 0; j < 16; j++) a[j] = bias[o + j];
            const float *w = wt + o;
            for (size_t i = 0; i < in; i++, w += outp) {
                float v = x0[i];
                for (int j = 0; j < 16; j++) a[j] += v * w[j];
            }
            memcpy(y + r * outp + o, a, sizeof a);
        }
    }
}

#if defined(__x86_64__)
// AVX2 + FMA kernel: 6 rows x 16 outputs in 12 accumulators, the shape of BLIS's Haswell
// micro-kernel: each pair of weight vectors loaded serves six rows.
__attribute__((target("avx2,fma")))
static void dense_avx2(const float *x, size_t xs, size_t rows, const float *wt, size_t in,
                       size_t outp, const float *bias, float *y) {
    size_t r = 0;
    for (; r + 6 <= rows; r += 6) {
        const float *x0 = x + r * xs;
        for (size_t o = 0; o < outp; o += 16) {
            __m256 b0 = _mm256_loadu_ps(bias + o), b1 = _mm256_loadu_ps(bias + o + 8);
            __m256 a00 = b0, a01 = b1, a10 = b0, a11 = b1, a20 = b0, a21 = b1;
            __m256 a30 = b0, a31 = b1, a40 = b0, a41 = b1, a50 = b0, a51 = b1;
            const float *w = wt + o;
            for (size_t i = 0; i < in; i++, w += outp) {
                __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8), v;
                v = _mm256_broadcast_ss(x0 + i);          a00 = _mm256_fmadd_ps(v, w0, a00); a01 = _mm256_fmadd_ps(v, w1, a01);
                v = _mm256_broadcast_ss(x0 + xs + i);     a10 = _mm256_fmadd_ps(v, w0, a10); a11 = _mm256_fmadd_ps(v, w1, a11);
                v = _mm256_broadcast_ss(x0 + 2 * xs + i); a20 = _mm256_fmadd_ps(v, w0, a20); a21 = _mm256_fmadd_ps(v, w1, a21);
                v = _mm256_broadcast_ss(x0 + 3 * xs + i); a30 = _mm256_fmadd_ps(v, w0, a30); a31 = _mm256_fmadd_ps(v, w1, a31);
                v = _mm256_broadcast_ss(x0 + 4 * xs + i); a40 = _mm256_fmadd_ps(v, w0, a40); a41 = _mm256_fmadd_ps(v, w1, a41);
                v = _mm256_broadcast_ss(x0 + 5 * xs + i); a50 = _mm256_fmadd_ps(v, w0, a50); a51 = _mm256_fmadd_ps(v, w1, a51);
            }
            float *y0 = y + r * outp + o;
            _mm256_storeu_ps(y0, a00);            _mm256_storeu_ps(y0 + 8, a01);
            _mm256_storeu_ps(y0 + outp, a10);     _mm256_storeu_ps(y0 + outp + 8, a11);
            _mm256_storeu_ps(y0 + 2 * outp, a20); _mm256_storeu_ps(y0 + 2 * outp + 8, a21);
            _mm256_storeu_ps(y0 + 3 * outp, a30); _mm256_storeu_ps(y0 + 3 * outp + 8, a31);
            _mm256_storeu_ps(y0 + 4 * outp, a40); _mm256_storeu_ps(y0 + 4 * outp + 8, a41);
            _mm256_storeu_ps(y0 + 5 * outp, a50); _mm256_storeu_ps(y0 + 5 * outp + 8, a51);
        }
    }
    for (; r < rows; r++) {
        const float *x0 = x + r * xs;
        for (size_t o = 0; o < outp; o += 16) {
            __m256 a0 = _mm256_loadu_ps(bias + o), a1 = _mm256_loadu_ps(bias + o + 8);
            const float *w = wt + o;
            for (size_t i = 0; i < in; i++, w += outp) {
                __m256 v = _mm256_broadcast_ss(x0 + i);
                a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w), a0);
                a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w + 8), a1);
            }
            _mm256_storeu_ps(y + r * outp + o, a0);
            _mm256_storeu_ps(y + r * outp + o + 8, a1);
        }
    }
}

static int has_avx2_fma(void) { return mtlm_cpu_has(MTLM_CPU_AVX2 | MTLM_CPU_FMA); }

// AVX-512 kernel: tiles of ROWS rows x 16·V outputs (at most 6 x 64: 24 accumulators, 4
// weight vectors and a broadcast fit in the 32 registers). Each output is the same chain of
// FMAs from its bias as in the AVX2 kernel (i ascending), so the two give the same bits; the gain is four weight loads serving 24 FMAs (the AVX2 tile: two for twelve).
// A macro, not a function with constant arguments: the tile must be unrolled into registers,
// which compilers do not promise for arrays at -O2.
#define MTLM_DENSE_TILE(NAME, ROWS, V)                                                                  \
    __attribute__((target("avx512f"))) static void NAME(const float *x, size_t xs, const float *wt,      \
                                                        size_t in, size_t outp, const float *bias,       \
                                                        float *y, size_t o) {                            \
        __m512 acc[ROWS][V];                                                                            \
        _Pragma("GCC unroll 16") for (int v = 0; v < V; v++) {                                          \
            __m512 b = _mm512_loadu_ps(bias + o + 16 * v);                                              \
            _Pragma("GCC unroll 16") for (int r = 0; r < ROWS; r++) acc[r][v] = b;                      \
        }                                                                                               \
        const float *w = wt + o;                                                                        \
        for (size_t i = 0; i < in; i++, w += outp) {                                                    \
            __m512 wv[V];                                                                               \
            _Pragma("GCC unroll 16") for (int v = 0; v < V; v++) wv[v] = _mm512_loadu_ps(w + 16 * v);   \
            _Pragma("GCC unroll 16") for (int r = 0; r < ROWS; r++) {                                   \
                __m512 s = _mm512_set1_ps(x[r * xs + i]);                                               \
                _Pragma("GCC unroll 16") for (int v = 0; v < V; v++) acc[r][v] = _mm512_fmadd_ps(s, wv[v], acc[r][v]); \
            }                                                                                           \
        }                                                                                               \
        _Pragma("GCC unroll 16") for (int r = 0; r < ROWS; r++)                                         \
            _Pragma("GCC unroll 16") for (int v = 0; v < V; v++) _mm512_storeu_ps(y + r * outp + o + 16 * v, acc[r][v]); \
    }
MTLM_DENSE_TILE(dense512_6x4, 6, 4)
MTLM_DENSE_TILE(dense512_6x2, 6, 2)
MTLM_DENSE_TILE(dense512_6x1, 6, 1)
MTLM_DENSE_TILE(dense512_1x4, 1, 4)
MTLM_DENSE_TILE(dense512_1x1, 1, 1)

__attribute__((target("avx512f")))
static void dense_avx512(const float *x, size_t xs, size_t rows, const float *wt, size_t in,
                         size_t outp, const float *bias, float *y) {
    size_t r = 0;
    for (; r + 6 <= rows; r += 6) {
        const float *xr = x + r * xs;
        float *yr = y + r * outp;
        size_t o = 0;
        for (; o + 64 <= outp; o += 64) dense512_6x4(xr, xs, wt, in, outp, bias, yr, o);
        for (; o + 32 <= outp; o += 32) dense512_6x2(xr, xs, wt, in, outp, bias, yr, o);
        for (; o < outp; o += 16) dense512_6x1(xr, xs, wt, in, outp, bias, yr, o);
    }
    for (; r < rows; r++) {
        size_t o = 0;
        for (; o + 64 <= outp; o += 64) dense512_1x4(x + r * xs, xs, wt, in, outp, bias, y + r * outp, o);
        for (; o < outp; o += 16) dense512_1x1(x + r * xs, xs, wt, in, outp, bias, y + r * outp, o);
    }
}

static int has_avx512(void) { return mtlm_cpu_has(MTLM_CPU_AVX512F); }
#endif

void mtlm_dense_forward_using(int implementation, const float *x, size_t x_stride, size_t rows, const float *wt,
                              size_t in, size_t out_padded, const float *bias, float *y) {
#if defined(__x86_64__)
    if (implementation >= 2 && has_avx512()) return dense_avx512(x, x_stride, rows, wt, in, out_padded, bias, y);
    if (implementation >= 1 && has_avx2_fma()) return dense_avx2(x, x_stride, rows, wt, in, out_padded, bias, y);
#endif
    dense_portable(x, x_stride, rows, wt, in, out_padded, bias, y);
}

void mtlm_dense_forward(const float *x, size_t x_stride, size_t rows, const float *wt, size_t in,
                        size_t out_padded, const float *bias, float *y) {
    mtlm_dense_forward_using(2, x, x_stride, rows, wt, in, out_padded, bias, y);
}

const char *mtlm_dense_kernel_name(void) {
#if defined(__x86_64__)
    if (has_avx512()) return "avx512f";
    if (has_avx2_fma()) return "avx2-fma";
#endif
    return "portable";
}

#include <math.h>
#include <stdlib.h>
#include <float.h>

// The row-wise int8 scheme of RowQuantizer.encodeInt8 (Swift), as a tight loop: this is the
// path that quantizes gigabytes of embedding tables. Must stay identical in results.
static long quantize_int8_portable(const float *x, size_t rows, size_t cols, uint8_t *out,
                                   double *error_sum, double *error_max) {
    const size_t row_bytes = cols + 8;
    double sum = *error_sum, worst = *error_max;
    for (size_t r = 0; r < rows; r++) {
        const float *v = x + r * cols;
        uint8_t *q = out + r * row_bytes;
        float lo = v[0], hi = v[0];
        int finite = 1;
        for (size_t j = 0; j < cols; j++) {
            float a = v[j];
            finite &= (fabsf(a) <= FLT_MAX);
            lo = a < lo ? a : lo;
            hi = a > hi ? a : hi;
        }
        if (!finite) {
            *error_sum = sum;
            *error_max = worst;
            return (long)r;
        }
        double scale = ((double)hi - (double)lo) / 255.0;
        float stored_scale = (float)scale;
        float bias = lo;
        float d2 = 0, n2 = 0;
        if (stored_scale == 0 || !isnormal(stored_scale)) {
            stored_scale = 0;
            for (size_t j = 0; j < cols; j++) {
                q[j] = 0;
                float d = bias - v[j];
                d2 += d * d;
                n2 += v[j] * v[j];
            }
        } else {
            float inverse = (float)(1.0 / scale);
            for (size_t j = 0; j < cols; j++) {
                // (v - lo) * inverse ≥ 0: adding ½ and truncating rounds half up, without a
                // libm call that would stop the loop from vectorizing.
                float level = (float)(int)((v[j] - lo) * inverse + 0.5f);
                level = level > 255 ? 255 : level;
                q[j] = (uint8_t)level;
                float d = stored_scale * level + bias - v[j];
                d2 += d * d;
                n2 += v[j] * v[j];
            }
        }
        memcpy(q + cols, &stored_scale, 4);
        memcpy(q + cols + 4, &bias, 4);
        mtlm_add_relative_error(d2, n2, &sum, &worst);
    }
    *error_sum = sum;
    *error_max = worst;
    return -1;
}

#if defined(__x86_64__)
// AVX2 version for rows of a multiple of 8 values (K = 16, 32, 64...): same results as the
// portable loop, 8 values at a time.
__attribute__((target("avx2,fma")))
static long quantize_int8_avx2(const float *x, size_t rows, size_t cols, uint8_t *out,
                               double *error_sum, double *error_max) {
    const size_t row_bytes = cols + 8;
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256 largest = _mm256_set1_ps(FLT_MAX);
    double sum = *error_sum, worst = *error_max;
    for (size_t r = 0; r < rows; r++) {
        const float *v = x + r * cols;
        uint8_t *q = out + r * row_bytes;
        __m256 lo = _mm256_loadu_ps(v), hi = lo, ok = _mm256_cmp_ps(_mm256_and_ps(lo, abs_mask), largest, _CMP_LE_OQ);
        for (size_t j = 8; j < cols; j += 8) {
            __m256 a = _mm256_loadu_ps(v + j);
            lo = _mm256_min_ps(lo, a);
            hi = _mm256_max_ps(hi, a);
            ok = _mm256_and_ps(ok, _mm256_cmp_ps(_mm256_and_ps(a, abs_mask), largest, _CMP_LE_OQ));
        }
        if (_mm256_movemask_ps(ok) != 0xFF) {
            *error_sum = sum;
            *error_max = worst;
            return (long)r;
        }
        float lows[8], highs[8];
        _mm256_storeu_ps(lows, lo);
        _mm256_storeu_ps(highs, hi);
        float low = lows[0], high = highs[0];
        for (int k = 1; k < 8; k++) {
            low = lows[k] < low ? lows[k] : low;
            high = highs[k] > high ? highs[k] : high;
        }
        double scale = ((double)high - (double)low) / 255.0;
        float stored_scale = (float)scale;
        float bias = low;
        if (stored_scale == 0 || !isnormal(stored_scale)) stored_scale = 0;
        const float inverse = stored_scale == 0 ? 0 : (float)(1.0 / scale);
        const __m256 vlow = _mm256_set1_ps(low), vinv = _mm256_set1_ps(inverse), half = _mm256_set1_ps(0.5f);
        const __m256 vscale = _mm256_set1_ps(stored_scale), top = _mm256_set1_ps(255.0f);
        __m256 d2 = _mm256_setzero_ps(), n2 = _mm256_setzero_ps();
        for (size_t j = 0; j < cols; j += 8) {
            __m256 a = _mm256_loadu_ps(v + j);
            // Truncation of (a − low)·inverse + ½ ≥ 0 rounds half up, as the portable loop does.
            __m256 level = _mm256_min_ps(_mm256_round_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(a, vlow), vinv), half),
                                                         _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC), top);
            __m256i levels = _mm256_cvttps_epi32(level);
            __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(levels), _mm256_extracti128_si256(levels, 1));
            _mm_storel_epi64((__m128i *)(q + j), _mm_packus_epi16(words, words));
            __m256 d = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(vscale, level), _mm256_set1_ps(bias)), a);
            d2 = _mm256_add_ps(d2, _mm256_mul_ps(d, d));
            n2 = _mm256_add_ps(n2, _mm256_mul_ps(a, a));
        }
        memcpy(q + cols, &stored_scale, 4);
        memcpy(q + cols + 4, &bias, 4);
        float d2s[8], n2s[8];
        _mm256_storeu_ps(d2s, d2);
        _mm256_storeu_ps(n2s, n2);
        double dd = 0, nn = 0;
        for (int k = 0; k < 8; k++) {
            dd += d2s[k];
            nn += n2s[k];
        }
        mtlm_add_relative_error(dd, nn, &sum, &worst);
    }
    *error_sum = sum;
    *error_max = worst;
    return -1;
}
#endif

#if defined(__x86_64__)
#define MTLM_INT8_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw")))

// One block of 16 rows of the AVX-512 path: x the rows (row r at x + r·cols; 16 of them, rows
// beyond count repeating earlier ones, unused), t the same transposed (element j of row r at
// t[16·j + r]). Rows [0, count) are encoded and their errors added; returns -1, or the first
// row holding NaN or Inf (the rows before it are written).
MTLM_INT8_AVX512 static long quantize_int8_block(const float *x, const float *t, size_t cols, size_t count, uint8_t *out,
                                                 double *sum, double *worst) {
    const __m512 largest = _mm512_set1_ps(FLT_MAX);
    // The AVX2 loop's range: lane k of its registers takes elements k, k + 8, … in turn, then the
    // 8 lanes are combined in order (the same picks among signed zeros).
    __m512 low = _mm512_setzero_ps(), high = low;
    __mmask16 bad = 0;
    for (size_t k = 0; k < 8; k++) {
        __m512 lo = _mm512_loadu_ps(t + 16 * k), hi = lo;
        for (size_t j = k; j < cols; j += 8) {
            __m512 a = _mm512_loadu_ps(t + 16 * j);
            if (j > k) { lo = _mm512_min_ps(lo, a); hi = _mm512_max_ps(hi, a); }
            bad |= _mm512_cmp_ps_mask(_mm512_abs_ps(a), largest, _CMP_NLE_UQ);
        }
        low = k == 0 ? lo : _mm512_min_ps(lo, low);
        high = k == 0 ? hi : _mm512_max_ps(hi, high);
    }
    bad &= (__mmask16)((1u << count) - 1);
    long refused = bad ? (long)__builtin_ctz(bad) : -1;
    if (bad) count = (size_t)refused;
    // scale = (high − low) / 255 in double, stored as float; 0 unless that float is normal.
    __m256 scales[2], inverses[2];
    for (int h = 0; h < 2; h++) {
        __m512d lo = _mm512_cvtps_pd(h ? _mm512_extractf32x8_ps(low, 1) : _mm512_castps512_ps256(low));
        __m512d hi = _mm512_cvtps_pd(h ? _mm512_extractf32x8_ps(high, 1) : _mm512_castps512_ps256(high));
        __m512d scale = _mm512_div_pd(_mm512_sub_pd(hi, lo), _mm512_set1_pd(255.0));
        scales[h] = _mm512_cvtpd_ps(scale);
        inverses[h] = _mm512_cvtpd_ps(_mm512_div_pd(_mm512_set1_pd(1.0), scale));
    }
    __m512 scale = _mm512_insertf32x8(_mm512_castps256_ps512(scales[0]), scales[1], 1);
    __m512 inverse = _mm512_insertf32x8(_mm512_castps256_ps512(inverses[0]), inverses[1], 1);
    __mmask16 normal = _mm512_cmp_ps_mask(scale, _mm512_set1_ps(FLT_MIN), _CMP_GE_OQ) & _mm512_cmp_ps_mask(scale, largest, _CMP_LE_OQ);
    scale = _mm512_maskz_mov_ps(normal, scale);
    inverse = _mm512_maskz_mov_ps(normal, inverse);
    // The level: truncation of (a − low)·inverse + ½ ≥ 0 rounds half up, as the AVX2 loop does.
    const __m512 half = _mm512_set1_ps(0.5f), top = _mm512_set1_ps(255.0f), zero = _mm512_setzero_ps();
    #define LEVEL(a, low, inverse) \
        _mm512_min_ps(_mm512_roundscale_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(a, low), inverse), half), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC), top)
    // The errors in lanes, summed as the AVX2 loop sums them (element j into accumulator j mod 8).
    __m512 d2[8], n2[8];
    for (int k = 0; k < 8; k++) d2[k] = n2[k] = zero;
    for (size_t j = 0; j < cols; j += 8) {
        for (int k = 0; k < 8; k++) {  // unrolled: the accumulators stay in registers
            __m512 a = _mm512_loadu_ps(t + 16 * (j + k)), level = LEVEL(a, low, inverse);
            __m512 d = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(scale, level), low), a);
            d2[k] = _mm512_add_ps(d2[k], _mm512_mul_ps(d, d));
            n2[k] = _mm512_add_ps(n2[k], _mm512_mul_ps(a, a));
        }
    }
    // The error sums: the 8 accumulators added in double, in order; then mtlm_add_relative_error's
    // figure, 8 rows a vector (IEEE division and square root: the scalar's bits; 0 for a zero
    // row stored exactly, Inf for one that is not).
    double relative_of[16];
    for (int h = 0; h < 2; h++) {
        __m512d dd = _mm512_setzero_pd(), nn = dd;
        for (int k = 0; k < 8; k++) {
            dd = _mm512_add_pd(dd, _mm512_cvtps_pd(h ? _mm512_extractf32x8_ps(d2[k], 1) : _mm512_castps512_ps256(d2[k])));
            nn = _mm512_add_pd(nn, _mm512_cvtps_pd(h ? _mm512_extractf32x8_ps(n2[k], 1) : _mm512_castps512_ps256(n2[k])));
        }
        __m512d relative = _mm512_sqrt_pd(_mm512_div_pd(dd, nn));
        __mmask8 exact = _mm512_cmp_pd_mask(dd, _mm512_setzero_pd(), _CMP_EQ_OQ);
        __mmask8 empty = _mm512_cmp_pd_mask(nn, _mm512_setzero_pd(), _CMP_EQ_OQ);
        relative = _mm512_mask_mov_pd(relative, empty, _mm512_maskz_mov_pd((__mmask8)~exact, _mm512_set1_pd(__builtin_inf())));
        _mm512_storeu_pd(relative_of + 8 * h, relative);
    }
    // The bytes row by row from the rows as given (the same levels: the same operations on each
    // row's scale, bias and inverse), 16 values a step.
    float scale_of[16], low_of[16], inverse_of[16];
    _mm512_storeu_ps(scale_of, scale);
    _mm512_storeu_ps(low_of, low);
    _mm512_storeu_ps(inverse_of, inverse);
    double error_sum = *sum, error_max = *worst;  // in registers: through the pointers, a store-to-load chain a row
    for (size_t r = 0; r < count; r++) {
        const float *v = x + r * cols;
        uint8_t *q = out + r * (cols + 8);
        const __m512 row_low = _mm512_set1_ps(low_of[r]), row_inverse = _mm512_set1_ps(inverse_of[r]);
        for (size_t j = 0; j < cols; j += 16) {
            __mmask16 mask = cols - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)0x00FF;
            __m512 level = LEVEL(_mm512_maskz_loadu_ps(mask, v + j), row_low, row_inverse);
            _mm_mask_storeu_epi8(q + j, mask, _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(level)));
        }
        memcpy(q + cols, &scale_of[r], 4);
        memcpy(q + cols + 4, &low_of[r], 4);
        error_sum += relative_of[r];
        error_max = relative_of[r] > error_max ? relative_of[r] : error_max;
    }
    *sum = error_sum;
    *worst = error_max;
    #undef LEVEL
    return refused;
}

// The AVX-512 block's transposition: 16 rows of `cols` (a multiple of 8) into t, 16 columns
// (or a last 8) at a time.
MTLM_INT8_AVX512 static void transpose_block16(const float *block, size_t cols, float *t) {
    for (size_t j = 0; j < cols; j += 16) {
        size_t width = cols - j >= 16 ? 16 : 8;
        __m512 columns[16];
        mtlm_transpose16(block + j, cols, 16, width == 16 ? (__mmask16)0xFFFF : (__mmask16)0x00FF, columns);
        for (size_t i = 0; i < width; i++) _mm512_storeu_ps(t + 16 * (j + i), columns[i]);
    }
}
#undef MTLM_INT8_AVX512
#endif

#if defined(__x86_64__)
#define MTLM_INT8_AVX2 __attribute__((target("avx2,fma")))

MTLM_INT8_AVX2 static void transpose_block8(const float *block, size_t cols, float *t) {
    for (size_t j = 0; j < cols; j += 8) {
        __m256 columns[8];
        mtlm_transpose8(block + j, cols, 8, 8, columns);
        for (size_t i = 0; i < 8; i++) _mm256_storeu_ps(t + 8 * (j + i), columns[i]);
    }
}

// One block of 8 rows for CPUs with AVX2 but not AVX-512, as quantize_int8_block does 16: x the
// rows, t the same transposed (element j of row r at t[8·j + r]); rows [0, count) encoded.
// The operations of the AVX2 loop in the same order, row by row in lanes.
MTLM_INT8_AVX2 static long quantize_int8_block8(const float *x, const float *t, size_t cols, size_t count, uint8_t *out,
                                                double *sum, double *worst) {
    const __m256 largest = _mm256_set1_ps(FLT_MAX), abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    // The loop's range: lane k of its registers takes elements k, k + 8, … then the lanes in order.
    __m256 low = _mm256_setzero_ps(), high = low, bad = low;
    for (size_t k = 0; k < 8; k++) {
        __m256 lo = _mm256_loadu_ps(t + 8 * k), hi = lo;
        for (size_t j = k; j < cols; j += 8) {
            __m256 a = _mm256_loadu_ps(t + 8 * j);
            if (j > k) { lo = _mm256_min_ps(lo, a); hi = _mm256_max_ps(hi, a); }
            bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_and_ps(a, abs_mask), largest, _CMP_NLE_UQ));
        }
        low = k == 0 ? lo : _mm256_min_ps(lo, low);
        high = k == 0 ? hi : _mm256_max_ps(hi, high);
    }
    unsigned refusals = (unsigned)_mm256_movemask_ps(bad) & ((1u << count) - 1);
    long refused = refusals ? (long)__builtin_ctz(refusals) : -1;
    if (refusals) count = (size_t)refused;
    // scale = (high − low) / 255 in double, stored as float; 0 unless that float is normal.
    __m128 scales[2], inverses[2];
    for (int h = 0; h < 2; h++) {
        __m256d lo = _mm256_cvtps_pd(h ? _mm256_extractf128_ps(low, 1) : _mm256_castps256_ps128(low));
        __m256d hi = _mm256_cvtps_pd(h ? _mm256_extractf128_ps(high, 1) : _mm256_castps256_ps128(high));
        __m256d scale = _mm256_div_pd(_mm256_sub_pd(hi, lo), _mm256_set1_pd(255.0));
        scales[h] = _mm256_cvtpd_ps(scale);
        inverses[h] = _mm256_cvtpd_ps(_mm256_div_pd(_mm256_set1_pd(1.0), scale));
    }
    __m256 scale = _mm256_set_m128(scales[1], scales[0]), inverse = _mm256_set_m128(inverses[1], inverses[0]);
    __m256 normal = _mm256_and_ps(_mm256_cmp_ps(scale, _mm256_set1_ps(FLT_MIN), _CMP_GE_OQ), _mm256_cmp_ps(scale, largest, _CMP_LE_OQ));
    scale = _mm256_and_ps(scale, normal);
    inverse = _mm256_and_ps(inverse, normal);
    const __m256 half = _mm256_set1_ps(0.5f), top = _mm256_set1_ps(255.0f);
    #define LEVEL(a, low, inverse) \
        _mm256_min_ps(_mm256_round_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(a, low), inverse), half), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC), top)
    // The errors: accumulator k takes elements k, k + 8, … in turn, then the accumulators are
    // added in double, in order (one accumulator at a time: AVX2 has 16 registers, not 32).
    __m256d differences[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()}, norms[2] = {differences[0], differences[1]};
    for (size_t k = 0; k < 8; k++) {
        __m256 d2 = _mm256_setzero_ps(), n2 = d2;
        for (size_t j = k; j < cols; j += 8) {
            __m256 a = _mm256_loadu_ps(t + 8 * j), level = LEVEL(a, low, inverse);
            __m256 d = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, level), low), a);
            d2 = _mm256_add_ps(d2, _mm256_mul_ps(d, d));
            n2 = _mm256_add_ps(n2, _mm256_mul_ps(a, a));
        }
        for (int h = 0; h < 2; h++) {
            differences[h] = _mm256_add_pd(differences[h], _mm256_cvtps_pd(h ? _mm256_extractf128_ps(d2, 1) : _mm256_castps256_ps128(d2)));
            norms[h] = _mm256_add_pd(norms[h], _mm256_cvtps_pd(h ? _mm256_extractf128_ps(n2, 1) : _mm256_castps256_ps128(n2)));
        }
    }
    float scale_of[8], low_of[8], inverse_of[8];
    _mm256_storeu_ps(scale_of, scale);
    _mm256_storeu_ps(low_of, low);
    _mm256_storeu_ps(inverse_of, inverse);
    // mtlm_add_relative_error's figure, 4 rows a vector (IEEE division and square root: the
    // scalar's bits; 0 for a zero row stored exactly, Inf for one that is not).
    double relative_of[8];
    for (int h = 0; h < 2; h++) {
        __m256d zero = _mm256_setzero_pd();
        __m256d exact = _mm256_cmp_pd(differences[h], zero, _CMP_EQ_OQ);
        __m256d relative = _mm256_sqrt_pd(_mm256_div_pd(differences[h], norms[h]));
        __m256d degenerate = _mm256_andnot_pd(exact, _mm256_set1_pd(__builtin_inf()));
        relative = _mm256_blendv_pd(relative, degenerate, _mm256_cmp_pd(norms[h], zero, _CMP_EQ_OQ));
        _mm256_storeu_pd(relative_of + 4 * h, relative);
    }
    // The bytes row by row from the rows as given, 8 values a step.
    double error_sum = *sum, error_max = *worst;
    for (size_t r = 0; r < count; r++) {
        const float *v = x + r * cols;
        uint8_t *q = out + r * (cols + 8);
        const __m256 row_low = _mm256_set1_ps(low_of[r]), row_inverse = _mm256_set1_ps(inverse_of[r]);
        for (size_t j = 0; j < cols; j += 8) {
            __m256i levels = _mm256_cvttps_epi32(LEVEL(_mm256_loadu_ps(v + j), row_low, row_inverse));
            __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(levels), _mm256_extracti128_si256(levels, 1));
            _mm_storel_epi64((__m128i *)(q + j), _mm_packus_epi16(words, words));
        }
        memcpy(q + cols, &scale_of[r], 4);
        memcpy(q + cols + 4, &low_of[r], 4);
        error_sum += relative_of[r];
        error_max = relative_of[r] > error_max ? relative_of[r] : error_max;
    }
    *sum = error_sum;
    *worst = error_max;
    #undef LEVEL
    return refused;
}
#undef MTLM_INT8_AVX2

// The block kernels' driver: `height` rows at once, one a lane (transposed first), so the range
// needs no horizontal reductions and the scale's double arithmetic runs several rows a vector.
// The same bytes and error figures as the AVX2 loop, to the bit. A last partial block is
// padded with copies of its first row, which are not written.
typedef void (*mtlm_transpose_block)(const float *block, size_t cols, float *t);
typedef long (*mtlm_encode_block)(const float *x, const float *t, size_t cols, size_t count, uint8_t *out, double *sum, double *worst);
static long quantize_int8_blocks(size_t height, mtlm_transpose_block transpose, mtlm_encode_block encode, const float *x,
                                 size_t rows, size_t cols, uint8_t *out, double *error_sum, double *error_max) {
    float *t = malloc(2 * height * cols * sizeof(float));  // the transposed block, and a last partial block padded
    if (!t) return quantize_int8_avx2(x, rows, cols, out, error_sum, error_max);
    float *padded = t + height * cols;
    double sum = *error_sum, worst = *error_max;
    long refused = -1;
    for (size_t first = 0; first < rows && refused < 0; first += height) {
        size_t count = rows - first < height ? rows - first : height;
        const float *block = x + first * cols;
        if (count < height) {
            for (size_t r = 0; r < height; r++) memcpy(padded + r * cols, block + (r < count ? r : 0) * cols, cols * sizeof(float));
            block = padded;
        }
        transpose(block, cols, t);
        long bad = encode(block, t, cols, count, out + first * (cols + 8), &sum, &worst);
        if (bad >= 0) refused = (long)first + bad;
    }
    free(t);
    *error_sum = sum;
    *error_max = worst;
    return refused;
}
#endif

long mtlm_quantize_int8_rowwise_using(int implementation, const float *x, size_t rows, size_t cols, uint8_t *out,
                                      double *error_sum, double *error_max) {
#if defined(__x86_64__)
    // (Beyond 48 values a row the AVX2 loop's per-row work is spread over enough values that
    // it is as fast: 6.2 GB/s at 64.)
    if (cols % 8 == 0 && cols <= 48) {
        if (implementation >= 3 && mtlm_cpu_has(MTLM_CPU_AVX512F | MTLM_CPU_AVX512VL | MTLM_CPU_AVX512DQ | MTLM_CPU_AVX512BW))
            return quantize_int8_blocks(16, transpose_block16, quantize_int8_block, x, rows, cols, out, error_sum, error_max);
        if (implementation >= 2 && has_avx2_fma())
            return quantize_int8_blocks(8, transpose_block8, quantize_int8_block8, x, rows, cols, out, error_sum, error_max);
    }
    if (implementation >= 1 && cols % 8 == 0 && has_avx2_fma()) return quantize_int8_avx2(x, rows, cols, out, error_sum, error_max);
#endif
    return quantize_int8_portable(x, rows, cols, out, error_sum, error_max);
}

long mtlm_quantize_int8_rowwise(const float *x, size_t rows, size_t cols, uint8_t *out,
                                double *error_sum, double *error_max) {
    return mtlm_quantize_int8_rowwise_using(3, x, rows, cols, out, error_sum, error_max);
}

const char *mtlm_int8_kernel_name(void) {
#if defined(__x86_64__)
    if (mtlm_cpu_has(MTLM_CPU_AVX512F | MTLM_CPU_AVX512VL | MTLM_CPU_AVX512DQ | MTLM_CPU_AVX512BW)) return "avx512";
    if (has_avx2_fma()) return "avx2";
#endif
    return "portable";
}

int mtlm_compare_row(const float *a, const float *b, size_t n, float atol, float rtol,
                     float *row_d2, float *row_a2, mtlm_diff_sums *sums) {
    float d2[8] = {0}, a2[8] = {0}, b2[8] = {0}, dot[8] = {0}, peak[8] = {0};
    uint32_t beyond[8] = {0};
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        for (int k = 0; k < 8; k++) {
            float x = a[j + k], y = b[j + k], d = y - x, m = fabsf(d);
            d2[k] += d * d;
            a2[k] += x * x;
            b2[k] += y * y;
            dot[k] += x * y;
            peak[k] = m > peak[k] ? m : peak[k];
            beyond[k] += (m > atol + rtol * fabsf(x)) | (m != m);
        }
    }
    for (; j < n; j++) {
        float x = a[j], y = b[j], d = y - x, m = fabsf(d);
        d2[0] += d * d;
        a2[0] += x * x;
        b2[0] += y * y;
        dot[0] += x * y;
        peak[0] = m > peak[0] ? m : peak[0];
        beyond[0] += (m > atol + rtol * fabsf(x)) | (m != m);
    }
    float rd2 = 0, ra2 = 0, rb2 = 0, rdot = 0, rpeak = 0;
    uint32_t rbeyond = 0;
    for (int k = 0; k < 8; k++) {
        rd2 += d2[k];
        ra2 += a2[k];
        rb2 += b2[k];
        rdot += dot[k];
        rpeak = peak[k] > rpeak ? peak[k] : rpeak;
        rbeyond += beyond[k];
    }
    *row_d2 = rd2;
    *row_a2 = ra2;
    sums->d2 += rd2;
    sums->a2 += ra2;
    sums->b2 += rb2;
    sums->dot += rdot;
    sums->max_abs = rpeak > sums->max_abs ? rpeak : sums->max_abs;
    sums->beyond += rbeyond;
    return rbeyond != 0;
}
