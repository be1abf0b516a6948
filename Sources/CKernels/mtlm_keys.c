// The duplicate check of a keyed table's keys (verify, import, every command that reads a
// model): a key found twice. Hash-partitioning the keys into buckets of about a thousand
// first (one counting pass, one scatter), then checking each bucket in a table that stays in
// the L1/L2 cache, is several times faster than inserting every key into one table far larger
// than the caches, where each insert is a cache miss.
#include "mtlm_kernels.h"
#include <stdlib.h>
#include <string.h>

// SplitMix64's finalizer: a bijection, so distinct keys never share a hash.
static inline uint64_t mix(uint64_t z) {
    z ^= z >> 30;
    z *= 0xBF58476D1CE4E5B9ULL;
    z ^= z >> 27;
    z *= 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// Whether one bucket holds a key twice: linear probing in `table` (a power of two at least
// twice the bucket, cleared here); 0 marks a free slot, so the key 0 is counted aside.
static int bucket_duplicate(const uint64_t *keys, size_t n, uint64_t *table, size_t slots, uint64_t *duplicate) {
    memset(table, 0, slots * sizeof *table);
    int zero = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t key = keys[i];
        if (key == 0) {
            if (zero++) { *duplicate = 0; return 1; }
            continue;
        }
        size_t slot = (size_t)mix(key) & (slots - 1);
        while (table[slot] != 0) {
            if (table[slot] == key) { *duplicate = key; return 1; }
            slot = (slot + 1) & (slots - 1);
        }
        table[slot] = key;
    }
    return 0;
}

int mtlm_find_duplicate_u64(const uint64_t *keys, size_t n, uint64_t *scratch, uint64_t *duplicate) {
    unsigned bits = 0;
    while (bits < 24 && ((size_t)1024 << bits) < n) bits++;
    size_t buckets = (size_t)1 << bits;
    size_t *start = calloc(buckets + 1, sizeof *start), *cursor = malloc(buckets * sizeof *cursor);
    if (!start || !cursor) { free(start); free(cursor); return -1; }
    // Buckets by the top bits of the hash (bits = 0: one bucket), slots by its low bits.
    #define BUCKET(key) (bits ? (size_t)(mix(key) >> (64 - bits)) : 0)
    for (size_t i = 0; i < n; i++) start[BUCKET(keys[i]) + 1]++;
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
    free(table);
    free(start);
    return found;
}
