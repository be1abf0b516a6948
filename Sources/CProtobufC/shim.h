#ifndef MTLM_CPROTOBUFC_SHIM_H
#define MTLM_CPROTOBUFC_SHIM_H
#include <protobuf-c/protobuf-c.h>
#endif
