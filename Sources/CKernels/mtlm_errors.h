#ifndef MTLM_ERRORS_H
#define MTLM_ERRORS_H
// A quantized row's relative error ‖decoded − x‖ / ‖x‖ from its two sums (0 for a zero row
// stored exactly, Inf for one that is not), added to *sum, with *worst raised to it: what
// `quantize` reports per tensor, as RowQuantizer.relativeError computes it. Shared by the int8
// and int4 kernels, each of whose paths sums `difference` and `norm` its own documented way
// (the int8 AVX2 blocks compute the same figure 4 rows a vector).
static inline __attribute__((always_inline)) void mtlm_add_relative_error(double difference, double norm, double *sum, double *worst) {
    double relative = norm == 0 ? (difference == 0 ? 0 : __builtin_inf()) : __builtin_sqrt(difference / norm);
    *sum += relative;
    *worst = relative > *worst ? relative : *worst;
}
#endif
