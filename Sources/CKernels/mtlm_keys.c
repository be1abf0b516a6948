// The duplicate check of a keyed table's keys (verify, import, every command that reads a
// model): a key found twice. Hash-partitioning the keys into buckets of about 8k first (one
// counting pass, one scatter to a few hundred streams), then checking each bucket in a table
// that stays in the L2 cache, is several times faster than inserting every key into one table
// far larger than the caches, where each insert is a cache miss. (Buckets of 1k: the scatter
// to thousands of streams misses the TLB, 30% slower in all.)
#include "mtlm_kernels.h"
#include <stdlib.h>
#include <string.h>

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

int mtlm_find_duplicate_u64(uint64_t *keys, size_t n, uint64_t *scratch, uint64_t *duplicate) {
    unsigned bits = 0;
    while (bits < 24 && ((size_t)8192 << bits) < n) bits++;
    size_t buckets = (size_t)1 << bits;
    size_t *start = calloc(buckets + 1, sizeof *start), *cursor = malloc(buckets * sizeof *cursor);
    if (!start || !cursor) { free(start); free(cursor); return -1; }
    // Buckets by the top bits of the hash (bits = 0: one bucket), slots by its low bits.
    #define BUCKET(hash) (bits ? (size_t)((hash) >> (64 - bits)) : 0)
    for (size_t i = 0; i < n; i++) {
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
    size_t most = 16;
    while (most < 2 * largest) most *= 2;
    uint64_t *table = malloc(most * sizeof *table);
    if (!table) { free(start); return -1; }
    int found = 0;
    for (size_t b = 0; b < buckets && !found; b++) {
        size_t count = start[b + 1] - start[b], slots = 16;
        while (slots < 2 * count) slots *= 2;
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

void mtlm_count_partitions(const void *keys, size_t n, size_t partitions, size_t *counts) {
    const unsigned char *p = keys;
    for (size_t i = 0; i < n; i++) counts[partition_of(load_key(p + 8 * i), partitions)]++;
}

size_t mtlm_gather_partition(const void *keys, size_t n, size_t partitions, size_t partition, uint64_t *out) {
    const unsigned char *p = keys;
    size_t count = 0;
    if (partitions == 1) {
        memcpy(out, p, 8 * n);
        return n;
    }
    // Branch-free: every key is written, the count advances for members only (membership
    // is a coin toss the branch predictor cannot learn); `out` has room for one more.
    for (size_t i = 0; i < n; i++) {
        uint64_t key = load_key(p + 8 * i);
        out[count] = key;
        count += partition_of(key, partitions) == partition;
    }
    return count;
}
