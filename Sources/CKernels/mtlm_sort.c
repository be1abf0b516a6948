// LSD radix sort of fixed-size records by some of their bytes: what the evaluator's sorted
// runs are (8- and 16-byte keys, 24-byte records keyed by an index), where a comparison sort
// of 16-byte pairs was a quarter of `quantize --eval`'s time.
#include "mtlm_kernels.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// One stable scatter of n records by their byte at `key` into `to`, at `offsets` (advanced):
// of a constant size for the strides the evaluator sorts, so that each record moves in
// registers instead of through a call to memcpy (which took 40% of a sort).
#define SCATTER(size) \
    for (size_t i = 0; i < n; i++) { \
        const uint8_t *record = from + i * (size); \
        memcpy(to + offsets[record[key]]++ * (size), record, (size)); \
    }

static void scatter(const uint8_t *from, uint8_t *to, size_t n, size_t stride, size_t key, size_t *offsets) {
    switch (stride) {
    case 4: SCATTER(4) break;
    case 8: SCATTER(8) break;
    case 16: SCATTER(16) break;
    case 24: SCATTER(24) break;
    default: SCATTER(stride) break;
    }
}

// One stable counting pass per key byte, least significant first; a byte every record shares
// is skipped (the histograms of all bytes come from one read of the records first).
int mtlm_radix_sort(void *records, size_t n, size_t stride, const uint8_t *key_bytes, size_t key_byte_count, void *scratch) {
    if (n < 2 || key_byte_count == 0) return 0;
    size_t (*counts)[256] = calloc(key_byte_count, sizeof *counts);
    uint8_t *copy = scratch ? scratch : malloc(n * stride);
    if (!counts || !copy) {
        free(counts);
        if (!scratch) free(copy);
        return -1;
    }
    const uint8_t *bytes = records;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < key_byte_count; k++) counts[k][bytes[i * stride + key_bytes[k]]]++;
    }
    uint8_t *from = records, *to = copy;
    for (size_t k = 0; k < key_byte_count; k++) {
        size_t offsets[256], total = 0;
        if (counts[k][from[key_bytes[k]]] == n) continue;  // one value: the order stays
        for (int b = 0; b < 256; b++) {
            offsets[b] = total;
            total += counts[k][b];
        }
        scatter(from, to, n, stride, key_bytes[k], offsets);
        uint8_t *swap = from;
        from = to;
        to = swap;
    }
    if (from != (uint8_t *)records) memcpy(records, from, n * stride);
    free(counts);
    if (!scratch) free(copy);
    return 0;
}
