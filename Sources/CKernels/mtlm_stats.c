// Statistics of a chunk of float32 values (inspect --stats): the same operations in the same
// order as TensorStatistics.Accumulator's Swift loop, without its branches: a non-finite value
// adds −0.0 to the sums (x + −0.0 is x for every x, signed zeros included) and is left out of
// the counts, minimum and maximum by selects.
#include <stdint.h>
#include <string.h>
#include "include/mtlm_kernels.h"

#pragma STDC FP_CONTRACT OFF

static inline int finite_bits(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    return (bits & 0x7FFFFFFFu) < 0x7F800000u;
}

void mtlm_stats_f32(const float *x, size_t n, mtlm_stats *out) {
    uint64_t finite = 0, zeros = 0, nan = 0;
    double sum = 0, low = __builtin_inf(), high = -__builtin_inf();
    for (size_t i = 0; i < n; i++) {
        double v = (double)x[i];
        int ok = finite_bits(x[i]);
        sum += ok ? v : -0.0;
        finite += (uint64_t)ok;
        zeros += (uint64_t)(ok & (v == 0));
        nan += (uint64_t)(x[i] != x[i]);
        low = ok && v < low ? v : low;      // Swift.min(low, v): v < low ? v : low
        high = ok && v >= high ? v : high;  // Swift.max(high, v): v >= high ? v : high
    }
    out->finite = finite;
    out->zeros = zeros;
    out->nan = nan;
    out->inf = (uint64_t)n - finite - nan;
    out->low = low;
    out->high = high;
    out->mean = 0;
    out->m2 = 0;
    if (finite == 0) return;
    double mean = sum / (double)finite, m2 = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - mean;
        m2 += finite_bits(x[i]) ? d * d : -0.0;
    }
    out->mean = mean;
    out->m2 = m2;
}
