#ifndef MTLM_CZLIB_SHIM_H
#define MTLM_CZLIB_SHIM_H
// Only plain functions are used (crc32_z, compress2, uncompress, compressBound): none of
// zlib's macros (deflateInit...) need wrapping yet.
#include <zlib.h>
#endif
