#include "mtlm_manifest_alloc.h"
#include <stdlib.h>

typedef struct {
    size_t remaining;
    int exceeded;
} mtlm_budget;

static void *mtlm_budget_alloc(void *data, size_t size) {
    mtlm_budget *budget = data;
    if (size > budget->remaining) {
        budget->exceeded = 1;
        return NULL;
    }
    budget->remaining -= size;
    return malloc(size);
}

// Memory from mtlm_budget_alloc is plain malloc memory, so the default allocator frees it.
static void mtlm_budget_free(void *data, void *pointer) {
    (void)data;
    free(pointer);
}

Mtlm__V1__Manifest *mtlm_manifest_unpack_capped(size_t length, const uint8_t *bytes,
                                                size_t max_allocated_bytes, int *cap_exceeded) {
    mtlm_budget budget = { max_allocated_bytes, 0 };
    ProtobufCAllocator allocator = { mtlm_budget_alloc, mtlm_budget_free, &budget };
    Mtlm__V1__Manifest *manifest = mtlm__v1__manifest__unpack(&allocator, length, bytes);
    *cap_exceeded = budget.exceeded;
    return manifest;
}
