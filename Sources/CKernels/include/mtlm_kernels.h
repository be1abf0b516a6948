#ifndef MTLM_KERNELS_H
#define MTLM_KERNELS_H
#include <stddef.h>
#include <stdint.h>

// y[r][o] = bias[o] + sum_i x[r][i] * wt[i][o] for r < rows and o < out_padded.
// wt is the transposed weight [in][out_padded]; out_padded is a multiple of 16; rows of x
// are x_stride floats apart, rows of y out_padded floats apart.
//
// Dense layers dominate the forward pass, and Swift code is compiled for baseline x86-64
// (SSE2): this kernel has AVX-512 and AVX2 + FMA versions, chosen at run time so the binary
// still runs on any x86-64 CPU. The AVX-512 and AVX2 versions compute each output as the same
// chain of fused multiply-adds (bias, then i ascending): they give the same bits. The portable
// one adds in the same order but rounds each product (baseline x86-64 has no FMA).
void mtlm_dense_forward(const float *x, size_t x_stride, size_t rows, const float *wt, size_t in,
                        size_t out_padded, const float *bias, float *y);

// The same with at most the given implementation: 0 portable, 1 AVX2 + FMA, 2 AVX-512 (each
// where the CPU has it; the tests hold AVX-512 to AVX2 bit for bit, both to the portable one).
void mtlm_dense_forward_using(int implementation, const float *x, size_t x_stride, size_t rows, const float *wt,
                              size_t in, size_t out_padded, const float *bias, float *y);

// Which implementation mtlm_dense_forward uses on this CPU: "avx512f", "avx2-fma" or "portable".
const char *mtlm_dense_kernel_name(void);

// Asks the CPU to start loading the cache line at p (embedding rows are random accesses into
// tables far larger than the caches: issuing them early hides the memory latency).
static inline void mtlm_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

// One-byte flags that several threads read and set (a chunk checked): atomic, so a reader
// that sees a flag set also sees what was done before it was set.
static inline int mtlm_flag_get(const unsigned char *flags, size_t i) { return __atomic_load_n(&flags[i], __ATOMIC_ACQUIRE); }
static inline void mtlm_flag_set(unsigned char *flags, size_t i) { __atomic_store_n(&flags[i], 1, __ATOMIC_RELEASE); }
// Whether the n keys hold a value twice: 1 with it in *duplicate (some value found twice, not
// necessarily the first in order), 0 if not, -1 if memory ran out. The keys are overwritten
// (by their hashes); `scratch` holds n keys. The hashes are bucketed, then each bucket is
// checked in a cache-sized table.
int mtlm_find_duplicate_u64(uint64_t *keys, size_t n, uint64_t *scratch, uint64_t *duplicate);

// KeyJoin's partitions of n little-endian 64-bit keys at any alignment: counts[p] += the keys
// in partition p; and the keys of one partition copied to `out` (room for the count + 8: the
// words past the count are overwritten), returning their count.
void mtlm_count_partitions(const void *keys, size_t n, size_t partitions, size_t *counts);
size_t mtlm_gather_partition(const void *keys, size_t n, size_t partitions, size_t partition, uint64_t *out);

// The three above through a chosen path: 0 portable, 1 AVX2, 2 AVX-512 (F, DQ), each where the
// CPU has it (else the next below); all give the same results (the same bytes, for the hashes written over the keys).
int mtlm_find_duplicate_u64_using(int implementation, uint64_t *keys, size_t n, uint64_t *scratch, uint64_t *duplicate);
void mtlm_count_partitions_using(int implementation, const void *keys, size_t n, size_t partitions, size_t *counts);
size_t mtlm_gather_partition_using(int implementation, const void *keys, size_t n, size_t partitions, size_t partition, uint64_t *out);

// The indices (ascending) of the n little-endian 64-bit keys, at any alignment, whose
// SplitMix64 hash's top `bits` bits (6 ≤ bits ≤ 32) are a bit set in `filter` (2^bits bits,
// bit b in word b / 64 at b % 64), written to `out` (room for n + 8) and counted: what a
// batch's pass over a keyed table probes (n < 2^32). `_using` as above: the same indices on
// every path.
size_t mtlm_filter_keys(const void *keys, size_t n, const uint64_t *filter, unsigned bits, uint32_t *out);
size_t mtlm_filter_keys_using(int implementation, const void *keys, size_t n, const uint64_t *filter, unsigned bits, uint32_t *out);

// Starts writing the file's dirty pages in [offset, offset + length) to the disk without
// waiting for it (Linux's sync_file_range; elsewhere nothing): advisory, -1 with errno on
// failure.
int mtlm_start_writeback(int fd, long long offset, long long length);

// Allocates the file's blocks for [offset, offset + length) without changing its size (Linux's
// fallocate with FALLOC_FL_KEEP_SIZE; elsewhere nothing): advisory, -1 with errno on failure.
int mtlm_reserve_blocks(int fd, long long offset, long long length);
#endif

#ifndef MTLM_KERNELS_QUANTIZE_H
#define MTLM_KERNELS_QUANTIZE_H
#include <stdint.h>
// Quantizes `rows` rows of `cols` float32 values to the INT8_ROWWISE layout (per row: cols
// uint8, float32 scale, float32 bias; docs/FORMAT.md) and measures each row's relative L2
// reconstruction error (added to *error_sum, maximum kept in *error_max).
// Returns -1, or the index of the first row holding NaN or Inf (nothing is written for it).
long mtlm_quantize_int8_rowwise(const float *x, size_t rows, size_t cols, uint8_t *out,
                                double *error_sum, double *error_max);
// The same through a chosen path, each where the CPU has it (else the next below): 0 portable,
// 1 the AVX2 loop (rows of a multiple of 8 values), 2 AVX2 blocks of 8 rows transposed, 3
// AVX-512 blocks of 16 (both for rows of a multiple of 8 values up to 48). Paths 1 to 3 give
// the same bytes and errors.
long mtlm_quantize_int8_rowwise_using(int implementation, const float *x, size_t rows, size_t cols, uint8_t *out,
                                      double *error_sum, double *error_max);
// "avx512", "avx2" or "portable": the int8 path this CPU gets for rows of a multiple of 8 values.
const char *mtlm_int8_kernel_name(void);
#endif

#ifndef MTLM_KERNELS_DIFF_H
#define MTLM_KERNELS_DIFF_H
// Running sums of a comparison of float32 values (diff).
typedef struct {
    double max_abs;   // max |b − a|
    double d2;        // Σ (b − a)²
    double a2;        // Σ a²
    double b2;        // Σ b²
    double dot;       // Σ a·b
    uint64_t beyond;  // elements with |b − a| > atol + rtol·|a|
} mtlm_diff_sums;

// Compares one row of n values and adds it to *sums; the row's own Σ(b − a)² and Σa² go to
// *row_d2 and *row_a2. Sums within the row are in float, 8 lanes apart (so the loop vectorizes
// without reassociation); totals are in double. Returns whether any element is beyond tolerance.
int mtlm_compare_row(const float *a, const float *b, size_t n, float atol, float rtol,
                     float *row_d2, float *row_a2, mtlm_diff_sums *sums);
#endif

#ifndef MTLM_KERNELS_SCAN_H
#define MTLM_KERNELS_SCAN_H
// The CRC-32 paths, each used where the CPU has it (else the next below): zlib's loop, PCLMUL
// on 128-bit registers, VPCLMULQDQ on 256-bit (AVX2) and on 512-bit (AVX-512) registers.
enum { MTLM_CRC32_ZLIB = 0, MTLM_CRC32_PCLMUL = 1, MTLM_CRC32_VPCLMUL256 = 2, MTLM_CRC32_VPCLMUL512 = 3, MTLM_CRC32_BEST = 3 };
// CRC-32 of zlib (same value as crc32(crc, p, len)) on the best path this CPU has: several
// times zlib's speed.
uint32_t mtlm_crc32(uint32_t crc, const uint8_t *p, size_t len);
// The same with at most the given path (MTLM_CRC32_*): what the tests compare the fast paths
// with.
uint32_t mtlm_crc32_using(int implementation, uint32_t crc, const uint8_t *p, size_t len);
// The CRC-32 of len bytes at p (float32 values, p at an element's start), and in *magnitude
// the largest |x| of its whole values as bits (|x| < 2^64, finite, when it is below
// 0x5F800000): one pass over the bytes on every folding path. `implementation` as in
// mtlm_crc32_using.
uint32_t mtlm_crc32_f32_magnitude(uint32_t crc, const uint8_t *p, size_t len, uint32_t *magnitude, int implementation);
// "vpclmulqdq-avx512", "vpclmulqdq-avx2", "pclmul" or "zlib": what mtlm_crc32 uses on this
// CPU for long buffers.
const char *mtlm_crc32_name(void);
// Adds to *nan and *inf the NaN and Inf among n float32 values given as bit patterns, and to
// *huge the finite ones of magnitude >= 2^64 (their squares overflow float32).
void mtlm_count_nonfinite_f32(const uint32_t *bits, size_t n, uint64_t *nan, uint64_t *inf, uint64_t *huge);
// The same for 16-bit floats with the given exponent and mantissa masks (float16, bfloat16) and
// magnitude bits from which a finite value counts as huge (0xFFFF: none).
void mtlm_count_nonfinite_16(const uint16_t *bits, size_t n, uint16_t exponent, uint16_t mantissa, uint16_t huge_bits,
                             uint64_t *nan, uint64_t *inf, uint64_t *huge);
// Encodes `rows` rows of n finite float32 values (row r at x + r·n) as INT4_ROWWISE rows
// ((n + 1) / 2 bytes of levels, float16 scale, float16 bias; row r at out + r·out_stride),
// each over the range the greedy clipping search picks (when `search`), exactly as
// RowQuantizer's Swift twin does (the search also stops where a step no longer moves the end
// it would move: a spread of a few ulps). `implementation` (MTLM_INT4_*) the best path allowed,
// each where the CPU has it, else the next below. Returns -1, or the first row whose minimum or
// maximum is beyond float16's range (it and the rows after it are not written). With `errors` (else NULL),
// each written row's relative error ‖decoded − x‖ / ‖x‖ (in double, as TensorRewriter's Swift
// loop computes it) is added to errors[0] in row order and errors[1] raised to it.
enum { MTLM_INT4_PORTABLE = 0, MTLM_INT4_AVX2 = 1, MTLM_INT4_AVX512 = 2, MTLM_INT4_BEST = 2 };
long mtlm_encode_int4_rows(const float *x, size_t rows, size_t n, uint8_t *out, size_t out_stride, int search, int implementation,
                           double *errors);
// "avx512", "avx2" or "portable": what mtlm_encode_int4_rows uses on this CPU.
const char *mtlm_int4_kernel_name(void);
// Encodes `rows` rows of n float32 values (row r at x + r·n) as FLOAT16 (`bfloat` 0) or BFLOAT16
// (1) rows, each value rounded to nearest even as RowCodec.half / RowCodec.bfloat round it (row
// r at out + r·out_stride). `implementation` (MTLM_HALF_*) the best path allowed, where the CPU
// has it. Returns -1, or the first row holding NaN or Inf, a float16 magnitude beyond 65504,
// or a value bfloat16 would round to Inf (it and the rows after it are not finished). With `errors` (else NULL), each row's
// relative error ‖decoded − x‖ / ‖x‖ (in double, as RowQuantizer.relativeError computes it) is
// added to errors[0] in row order and errors[1] raised to it.
enum { MTLM_HALF_PORTABLE = 0, MTLM_HALF_AVX2 = 1, MTLM_HALF_BEST = 1 };
long mtlm_encode_half_rows(const float *x, size_t rows, size_t n, uint8_t *out, size_t out_stride, int bfloat, int implementation,
                           double *errors);
// "avx2" or "portable": what mtlm_encode_half_rows uses on this CPU.
const char *mtlm_half_kernel_name(void);
#endif

#ifndef MTLM_KERNELS_STATS_H
#define MTLM_KERNELS_STATS_H
// Summary figures of n float32 values, in double: what TensorStatistics' Swift loop computes
// for a chunk, operation for operation (the sums in element order: the same doubles).
typedef struct {
    uint64_t finite, zeros, nan, inf;
    double low, high;  // over the finite values (+inf, -inf when there are none)
    double mean, m2;   // mean of the finite values, Σ (x − mean)² (0 when there are none)
} mtlm_stats;
void mtlm_stats_f32(const float *x, size_t n, mtlm_stats *out);
// Sorts n records of `stride` bytes by the bytes at `key_bytes` (least significant first:
// a little-endian integer's offsets in order), stably, through `scratch` (n * stride bytes; NULL:
// allocated and freed here). 0, or -1 when memory cannot be allocated (the records are then as
// they were).
int mtlm_radix_sort(void *records, size_t n, size_t stride, const uint8_t *key_bytes, size_t key_byte_count, void *scratch);
#endif
