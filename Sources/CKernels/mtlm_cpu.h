#ifndef MTLM_CPU_H
#define MTLM_CPU_H
// CPU features, probed once: several threads call the kernels at once, so the probe's result
// is kept in an atomic (two threads racing to the first call compute the same value; neither
// reads a half-written one), where plain statics were a data race.
#include <stdatomic.h>

enum { MTLM_CPU_AVX2 = 1, MTLM_CPU_FMA = 2, MTLM_CPU_PCLMUL = 4, MTLM_CPU_SSE41 = 8, MTLM_CPU_AVX512F = 16, MTLM_CPU_VPCLMUL = 32,
       MTLM_CPU_AVX512BW = 64, MTLM_CPU_AVX512VL = 128, MTLM_CPU_AVX512DQ = 256, MTLM_CPU_F16C = 512 };

static inline int mtlm_cpu_features(void) {
#if defined(__x86_64__)
    static _Atomic int cached = -1;
    int value = atomic_load_explicit(&cached, memory_order_acquire);
    if (value < 0) {
        __builtin_cpu_init();
        value = (__builtin_cpu_supports("avx2") ? MTLM_CPU_AVX2 : 0) | (__builtin_cpu_supports("fma") ? MTLM_CPU_FMA : 0)
              | (__builtin_cpu_supports("pclmul") ? MTLM_CPU_PCLMUL : 0) | (__builtin_cpu_supports("sse4.1") ? MTLM_CPU_SSE41 : 0)
              // avx512* are reported only when the OS saves the 512-bit registers (XCR0).
              | (__builtin_cpu_supports("avx512f") ? MTLM_CPU_AVX512F : 0) | (__builtin_cpu_supports("vpclmulqdq") ? MTLM_CPU_VPCLMUL : 0)
              | (__builtin_cpu_supports("avx512bw") ? MTLM_CPU_AVX512BW : 0) | (__builtin_cpu_supports("avx512vl") ? MTLM_CPU_AVX512VL : 0)
              | (__builtin_cpu_supports("avx512dq") ? MTLM_CPU_AVX512DQ : 0) | (__builtin_cpu_supports("f16c") ? MTLM_CPU_F16C : 0);
        atomic_store_explicit(&cached, value, memory_order_release);
    }
    return value;
#else
    return 0;
#endif
}

static inline int mtlm_cpu_has(int features) { return (mtlm_cpu_features() & features) == features; }

#endif
