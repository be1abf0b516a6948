// The duplicate check of a keyed table's keys (verify, import, every command that reads a
// model): a key found twice. Hash-partitioning the keys into buckets of about 8k first (one
// counting pass, one scatter to a few hundred streams), then checking each bucket in a table
// that stays in the L2 cache, is several times faster than inserting every key into one table
// far larger than the caches, where each insert is a cache miss. (Buckets of 1k: the scatter
// to thousands of streams misses the TLB, 30% slower in all.)
//
// Where the CPU has AVX-512 (F, DQ), the passes that only compute — hashing keys and counting
// buckets, counting and gathering a partition — take 8 keys at a time; what they produce is
// the same as the portable loops' (tests hold them to it). 8M keys: 117 -> 69 ms on this
// project's machine with the tables below at a quarter full (docs/PERFORMANCE.md, #17).
// Where it has AVX2 only, the same passes take 4 keys at a time.
#include "mtlm_kernels.h"
#include "mtlm_cpu.h"
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define MTLM_KEYS_AVX512 __attribute__((target("avx512f,avx512dq")))
#define MTLM_KEYS_AVX2 __attribute__((target("avx2")))
#endif

// The vector path for `implementation` (0 portable, 1 AVX2, 2 AVX-512) on this CPU: 0, 1 or 2.
static int vector_path(int implementation) {
#if defined(__x86_64__)
    if (implementation >= 2 && mtlm_cpu_has(MTLM_CPU_AVX512F | MTLM_CPU_AVX512DQ)) return 2;
    if (implementation >= 1 && mtlm_cpu_has(MTLM_CPU_AVX2)) return 1;
#else
    (void)implementation;
#endif
    return 0;
}

// SplitMix64's finalizer: a bijection, so two keys are equal exactly when their hashes are,
// and the buckets and tables work on the hashes alone.
static inline uint64_t mix(uint64_t z) {
    z ^= z >> 30;
    z *= 0xBF58476D1CE4E5B9ULL;
    z ^= z >> 27;
    z *= 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// Its inverse (the multipliers' inverses modulo 2^64; each xor-shift undone by repeating it).
static inline uint64_t unmix(uint64_t z) {
    z ^= (z >> 31) ^ (z >> 62);
    z *= 0x319642B2D24D8EC3ULL;
    z ^= (z >> 27) ^ (z >> 54);
    z *= 0x96DE1B173F119089ULL;
    return z ^ (z >> 30) ^ (z >> 60);
}

// Whether one bucket holds a hash twice: linear probing on its low bits in `table` (a power of
// two at least twice the bucket, cleared here); 0 marks a free slot, so the hash 0 is
// counted aside.
static int bucket_duplicate(const uint64_t *hashes, size_t n, uint64_t *table, size_t slots, uint64_t *duplicate) {
    memset(table, 0, slots * sizeof *table);
    int zero = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t hash = hashes[i];
        if (hash == 0) {
            if (zero++) { *duplicate = 0; return 1; }
            continue;
        }
        size_t slot = (size_t)hash & (slots - 1);
        while (table[slot] != 0) {
            if (table[slot] == hash) { *duplicate = hash; return 1; }
            slot = (slot + 1) & (slots - 1);
        }
        table[slot] = hash;
    }
    return 0;
}

#if defined(__x86_64__)
MTLM_KEYS_AVX512 static inline __m512i mix8(__m512i z) {
    z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 30));
    z = _mm512_mullo_epi64(z, _mm512_set1_epi64((long long)0xBF58476D1CE4E5B9ULL));
    z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 27));
    z = _mm512_mullo_epi64(z, _mm512_set1_epi64((long long)0x94D049BB133111EBULL));
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

// `mix` on 8 keys at a time (the counting stays scalar: lanes may share a bucket).
MTLM_KEYS_AVX512 static size_t mix_count_avx512(uint64_t *keys, size_t n, unsigned bits, size_t *start) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i z = mix8(_mm512_loadu_si512(keys + i));
        _mm512_storeu_si512(keys + i, z);
        uint64_t bucket[8];
        _mm512_storeu_si512(bucket, _mm512_srli_epi64(z, 64 - bits));
        for (int j = 0; j < 8; j++) start[bucket[j] + 1]++;
    }
    return i;
}

// The low 64 bits of a × b in each of 4 lanes: AVX2 multiplies 32 × 32 bits only, so
// lo·lo + ((hi·lo + lo·hi) << 32).
MTLM_KEYS_AVX2 static inline __m256i mullo4(__m256i a, __m256i b) {
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), b), _mm256_mul_epu32(a, _mm256_srli_epi64(b, 32)));
    return _mm256_add_epi64(_mm256_mul_epu32(a, b), _mm256_slli_epi64(cross, 32));
}

MTLM_KEYS_AVX2 static inline __m256i mix4(__m256i z) {
    z = _mm256_xor_si256(z, _mm256_srli_epi64(z, 30));
    z = mullo4(z, _mm256_set1_epi64x((long long)0xBF58476D1CE4E5B9ULL));
    z = _mm256_xor_si256(z, _mm256_srli_epi64(z, 27));
    z = mullo4(z, _mm256_set1_epi64x((long long)0x94D049BB133111EBULL));
    return _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
}

// mix_count_avx512 on 4 keys at a time, for CPUs with AVX2 but not AVX-512.
MTLM_KEYS_AVX2 static size_t mix_count_avx2(uint64_t *keys, size_t n, unsigned bits, size_t *start) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i z = mix4(_mm256_loadu_si256((const __m256i *)(keys + i)));
        _mm256_storeu_si256((__m256i *)(keys + i), z);
        uint64_t bucket[4];
        _mm256_storeu_si256((__m256i *)bucket, _mm256_srli_epi64(z, 64 - bits));
        for (int j = 0; j < 4; j++) start[bucket[j] + 1]++;
    }
    return i;
}
#endif

int mtlm_find_duplicate_u64(uint64_t *keys, size_t n, uint64_t *scratch, uint64_t *duplicate) {
    return mtlm_find_duplicate_u64_using(2, keys, n, scratch, duplicate);
}

int mtlm_find_duplicate_u64_using(int implementation, uint64_t *keys, size_t n, uint64_t *scratch, uint64_t *duplicate) {
    unsigned bits = 0;
    while (bits < 24 && ((size_t)8192 << bits) < n) bits++;
    size_t buckets = (size_t)1 << bits;
    size_t *start = calloc(buckets + 1, sizeof *start), *cursor = malloc(buckets * sizeof *cursor);
    if (!start || !cursor) { free(start); free(cursor); return -1; }
    // Buckets by the top bits of the hash (bits = 0: one bucket), slots by its low bits.
    #define BUCKET(hash) (bits ? (size_t)((hash) >> (64 - bits)) : 0)
    size_t mixed = 0;
#if defined(__x86_64__)
    int path = bits ? vector_path(implementation) : 0;
    if (path == 2) mixed = mix_count_avx512(keys, n, bits, start);
    if (path == 1) mixed = mix_count_avx2(keys, n, bits, start);
#endif
    for (size_t i = mixed; i < n; i++) {
        keys[i] = mix(keys[i]);
        start[BUCKET(keys[i]) + 1]++;
    }
    size_t largest = 0;
    for (size_t b = 0; b < buckets; b++) {
        largest = start[b + 1] > largest ? start[b + 1] : largest;
        start[b + 1] += start[b];
    }
    memcpy(cursor, start, buckets * sizeof *cursor);
    for (size_t i = 0; i < n; i++) scratch[cursor[BUCKET(keys[i])]++] = keys[i];
    #undef BUCKET
    free(cursor);
    // Tables at most a quarter full: at half full, probes that go on past the first slot made
    // the probing loop's branch a coin toss (35 -> 23 ms for 8M keys; 8 times: no better, and
    // 16 times spill out of the L2 cache).
    size_t most = 16;
    while (most < 4 * largest) most *= 2;
    uint64_t *table = malloc(most * sizeof *table);
    if (!table) { free(start); return -1; }
    int found = 0;
    for (size_t b = 0; b < buckets && !found; b++) {
        size_t count = start[b + 1] - start[b], slots = 16;
        while (slots < 4 * count) slots *= 2;
        found = bucket_duplicate(scratch + start[b], count, table, slots, duplicate);
    }
    if (found) *duplicate = unmix(*duplicate);
    free(table);
    free(start);
    return found;
}

// KeyJoin's partition of a key (Swift's `KeyJoin.partition`, the same arithmetic).
static inline size_t partition_of(uint64_t key, size_t partitions) {
    return (size_t)((((key * 0x9E3779B97F4A7C15ULL) >> 32) * (uint64_t)partitions) >> 32);
}

static inline uint64_t load_key(const unsigned char *p) {
    uint64_t key;
    memcpy(&key, p, 8);  // any alignment; little-endian hosts (x86-64, arm64), as the format
    return key;
}

#if defined(__x86_64__)
// partition_of on 8 keys: the high half of key * golden, times the partitions, high half.
MTLM_KEYS_AVX512 static inline __m512i partitions8(__m512i keys, size_t partitions) {
    __m512i high = _mm512_srli_epi64(_mm512_mullo_epi64(keys, _mm512_set1_epi64((long long)0x9E3779B97F4A7C15ULL)), 32);
    return _mm512_srli_epi64(_mm512_mul_epu32(high, _mm512_set1_epi64((long long)partitions)), 32);
}

// Up to 8 partitions counted in vector lanes; returns the keys done.
MTLM_KEYS_AVX512 static size_t count_partitions_avx512(const unsigned char *p, size_t n, size_t partitions, size_t *counts) {
    if (partitions > 8) return 0;
    __m512i total[8];
    for (size_t q = 0; q < 8; q++) total[q] = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i partition = partitions8(_mm512_loadu_si512(p + 8 * i), partitions);
        for (size_t q = 0; q < partitions; q++) {
            __mmask8 members = _mm512_cmpeq_epi64_mask(partition, _mm512_set1_epi64((long long)q));
            total[q] = _mm512_mask_add_epi64(total[q], members, total[q], _mm512_set1_epi64(1));
        }
    }
    for (size_t q = 0; q < partitions; q++) counts[q] += (size_t)_mm512_reduce_add_epi64(total[q]);
    return i;
}

// The members of 8 keys compressed into a register and stored whole (a compressing store to
// memory is microcoded on Zen 4, several times slower); the count advances by the members.
MTLM_KEYS_AVX512 static size_t gather_partition_avx512(const unsigned char *p, size_t n, size_t partitions, size_t partition,
                                                       uint64_t *out, size_t *done) {
    const __m512i wanted = _mm512_set1_epi64((long long)partition);
    size_t count = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i keys = _mm512_loadu_si512(p + 8 * i);
        __mmask8 members = _mm512_cmpeq_epi64_mask(partitions8(keys, partitions), wanted);
        _mm512_storeu_si512(out + count, _mm512_maskz_compress_epi64(members, keys));
        count += (size_t)__builtin_popcount(members);
    }
    *done = i;
    return count;
}

// partition_of on 4 keys (partitions8 with mullo4).
MTLM_KEYS_AVX2 static inline __m256i partitions4(__m256i keys, size_t partitions) {
    __m256i high = _mm256_srli_epi64(mullo4(keys, _mm256_set1_epi64x((long long)0x9E3779B97F4A7C15ULL)), 32);
    return _mm256_srli_epi64(_mm256_mul_epu32(high, _mm256_set1_epi64x((long long)partitions)), 32);
}

// count_partitions_avx512 on 4 lanes: a member's lane compares to −1, subtracted.
MTLM_KEYS_AVX2 static size_t count_partitions_avx2(const unsigned char *p, size_t n, size_t partitions, size_t *counts) {
    if (partitions > 8) return 0;
    __m256i total[8];
    for (size_t q = 0; q < 8; q++) total[q] = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i partition = partitions4(_mm256_loadu_si256((const __m256i *)(p + 8 * i)), partitions);
        for (size_t q = 0; q < partitions; q++)
            total[q] = _mm256_sub_epi64(total[q], _mm256_cmpeq_epi64(partition, _mm256_set1_epi64x((long long)q)));
    }
    for (size_t q = 0; q < partitions; q++) {
        uint64_t lanes[4];
        _mm256_storeu_si256((__m256i *)lanes, total[q]);
        counts[q] += (size_t)(lanes[0] + lanes[1] + lanes[2] + lanes[3]);
    }
    return i;
}

// gather_partition_avx512 on 4 lanes: AVX2 has no compress, so the members are moved to the
// front by a permutation of 32-bit halves looked up by the 4-bit member mask.
MTLM_KEYS_AVX2 static size_t gather_partition_avx2(const unsigned char *p, size_t n, size_t partitions, size_t partition,
                                                   uint64_t *out, size_t *done) {
    static const int32_t front[16][8] = {  // front[mask]: the 32-bit halves of the lanes set in mask, first
        {0, 1, 2, 3, 4, 5, 6, 7}, {0, 1, 2, 3, 4, 5, 6, 7}, {2, 3, 2, 3, 4, 5, 6, 7}, {0, 1, 2, 3, 4, 5, 6, 7},
        {4, 5, 2, 3, 4, 5, 6, 7}, {0, 1, 4, 5, 4, 5, 6, 7}, {2, 3, 4, 5, 4, 5, 6, 7}, {0, 1, 2, 3, 4, 5, 6, 7},
        {6, 7, 2, 3, 4, 5, 6, 7}, {0, 1, 6, 7, 4, 5, 6, 7}, {2, 3, 6, 7, 4, 5, 6, 7}, {0, 1, 2, 3, 6, 7, 6, 7},
        {4, 5, 6, 7, 4, 5, 6, 7}, {0, 1, 4, 5, 6, 7, 6, 7}, {2, 3, 4, 5, 6, 7, 6, 7}, {0, 1, 2, 3, 4, 5, 6, 7},
    };
    const __m256i wanted = _mm256_set1_epi64x((long long)partition);
    size_t count = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i keys = _mm256_loadu_si256((const __m256i *)(p + 8 * i));
        int members = _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(partitions4(keys, partitions), wanted)));
        __m256i order = _mm256_loadu_si256((const __m256i *)front[members]);
        _mm256_storeu_si256((__m256i *)(out + count), _mm256_permutevar8x32_epi32(keys, order));
        count += (size_t)__builtin_popcount((unsigned)members);
    }
    *done = i;
    return count;
}
#endif

void mtlm_count_partitions(const void *keys, size_t n, size_t partitions, size_t *counts) {
    mtlm_count_partitions_using(2, keys, n, partitions, counts);
}

void mtlm_count_partitions_using(int implementation, const void *keys, size_t n, size_t partitions, size_t *counts) {
    const unsigned char *p = keys;
    size_t i = 0;
#if defined(__x86_64__)
    int path = vector_path(implementation);
    if (path == 2) i = count_partitions_avx512(p, n, partitions, counts);
    if (path == 1) i = count_partitions_avx2(p, n, partitions, counts);
#endif
    for (; i < n; i++) counts[partition_of(load_key(p + 8 * i), partitions)]++;
}

size_t mtlm_gather_partition(const void *keys, size_t n, size_t partitions, size_t partition, uint64_t *out) {
    return mtlm_gather_partition_using(2, keys, n, partitions, partition, out);
}

size_t mtlm_gather_partition_using(int implementation, const void *keys, size_t n, size_t partitions, size_t partition, uint64_t *out) {
    const unsigned char *p = keys;
    size_t count = 0, i = 0;
    if (partitions == 1) {
        memcpy(out, p, 8 * n);
        return n;
    }
#if defined(__x86_64__)
    int path = vector_path(implementation);
    if (path == 2) count = gather_partition_avx512(p, n, partitions, partition, out, &i);
    if (path == 1) count = gather_partition_avx2(p, n, partitions, partition, out, &i);
#endif
    // Branch-free: every key is written, the count advances for members only (membership
    // is a coin toss the branch predictor cannot learn).
    for (; i < n; i++) {
        uint64_t key = load_key(p + 8 * i);
        out[count] = key;
        count += partition_of(key, partitions) == partition;
    }
    return count;
}

// A batch's lookup pass over a keyed table (predict, eval): the keys whose hash's top `bits`
// bits are set in the batch's filter of 2^bits bits, to be probed; nearly every key is
// dropped here, 8 (AVX-512) or 4 (AVX2) at a time.
static inline int in_filter(uint64_t hash, const uint64_t *filter, unsigned bits) {
    uint64_t bit = hash >> (64 - bits);
    return (int)((filter[bit >> 6] >> (bit & 63)) & 1);
}

#if defined(__x86_64__)
// Whether a lane holds a hit is a coin toss a branch cannot learn (a third of the groups of 8
// keys hold one when a batch has 4k ids: a branch per group cost 4× the rest), so every group
// stores its hits' indices compressed to the front of a register, and the count advances by
// them (`out` has room for n + 8).
MTLM_KEYS_AVX512 static size_t filter_keys_avx512(const unsigned char *p, size_t n, const uint64_t *filter, unsigned bits, uint32_t *out, size_t *done) {
    size_t count = 0, i = 0;
    const __m512i one = _mm512_set1_epi64(1), low6 = _mm512_set1_epi64(63);
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0);
    for (; i + 8 <= n; i += 8) {
        __m512i bit = _mm512_srli_epi64(mix8(_mm512_loadu_si512(p + 8 * i)), 64 - bits);
        __m512i word = _mm512_i64gather_epi64(_mm512_srli_epi64(bit, 6), (const void *)filter, 8);
        __mmask8 hit = _mm512_test_epi64_mask(_mm512_srlv_epi64(word, _mm512_and_si512(bit, low6)), one);
        __m512i index = _mm512_add_epi32(lanes, _mm512_set1_epi32((int)i));
        _mm256_storeu_si256((__m256i *)(out + count), _mm512_castsi512_si256(_mm512_maskz_compress_epi32((__mmask16)hit, index)));
        count += (size_t)__builtin_popcount(hit);
    }
    *done = i;
    return count;
}

// The same on 4 lanes: the hits' indices moved to the front by a permutation looked up by the
// 4-bit hit mask (AVX2 has no compress).
MTLM_KEYS_AVX2 static size_t filter_keys_avx2(const unsigned char *p, size_t n, const uint64_t *filter, unsigned bits, uint32_t *out, size_t *done) {
    static const int32_t front[16][4] = {  // front[mask]: the lanes set in mask, first
        {0, 0, 0, 0}, {0, 0, 0, 0}, {1, 0, 0, 0}, {0, 1, 0, 0}, {2, 0, 0, 0}, {0, 2, 0, 0}, {1, 2, 0, 0}, {0, 1, 2, 0},
        {3, 0, 0, 0}, {0, 3, 0, 0}, {1, 3, 0, 0}, {0, 1, 3, 0}, {2, 3, 0, 0}, {0, 2, 3, 0}, {1, 2, 3, 0}, {0, 1, 2, 3},
    };
    size_t count = 0, i = 0;
    const __m256i one = _mm256_set1_epi64x(1), low6 = _mm256_set1_epi64x(63);
    for (; i + 4 <= n; i += 4) {
        __m256i bit = _mm256_srli_epi64(mix4(_mm256_loadu_si256((const __m256i *)(p + 8 * i))), 64 - (int)bits);
        __m256i word = _mm256_i64gather_epi64((const long long *)filter, _mm256_srli_epi64(bit, 6), 8);
        __m256i set = _mm256_and_si256(_mm256_srlv_epi64(word, _mm256_and_si256(bit, low6)), one);
        int hit = _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_sub_epi64(_mm256_setzero_si256(), set)));
        __m128i index = _mm_add_epi32(_mm_loadu_si128((const __m128i *)front[hit]), _mm_set1_epi32((int)i));
        _mm_storeu_si128((__m128i *)(out + count), index);
        count += (size_t)__builtin_popcount((unsigned)hit);
    }
    *done = i;
    return count;
}
#endif

size_t mtlm_filter_keys(const void *keys, size_t n, const uint64_t *filter, unsigned bits, uint32_t *out) {
    return mtlm_filter_keys_using(2, keys, n, filter, bits, out);
}

size_t mtlm_filter_keys_using(int implementation, const void *keys, size_t n, const uint64_t *filter, unsigned bits, uint32_t *out) {
    const unsigned char *p = keys;
    size_t count = 0, i = 0;
#if defined(__x86_64__)
    int path = vector_path(implementation);
    if (path == 2) count = filter_keys_avx512(p, n, filter, bits, out, &i);
    if (path == 1) count = filter_keys_avx2(p, n, filter, bits, out, &i);
#endif
    // Branch-free, as in the partition gather: the index is written, the count advances for
    // keys in the filter.
    for (; i < n; i++) {
        out[count] = (uint32_t)i;
        count += (size_t)in_filter(mix(load_key(p + 8 * i)), filter, bits);
    }
    return count;
}
