#ifndef MTLM_MANIFEST_ALLOC_H
#define MTLM_MANIFEST_ALLOC_H
#include <stddef.h>
#include <stdint.h>
#include "mtl_model.pb-c.h"

// Unpacks a manifest with an allocator that refuses to hand out more than
// `max_allocated_bytes` in total: protobuf-c bounds no message's total size, and a few MiB
// of empty repeated entries can expand to hundreds of MiB of allocations.
// Returns NULL on malformed bytes or when the cap is hit (then *cap_exceeded is 1).
// Free the result with mtlm__v1__manifest__free_unpacked(result, NULL).
Mtlm__V1__Manifest *mtlm_manifest_unpack_capped(size_t length, const uint8_t *bytes,
                                                size_t max_allocated_bytes, int *cap_exceeded);
#endif
