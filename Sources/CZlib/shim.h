#ifndef MTLM_CZLIB_SHIM_H
#define MTLM_CZLIB_SHIM_H
// Plain functions are used directly (crc32_z, compress2, uncompress, compressBound, inflate);
// zlib's init macros are wrapped here, since Swift cannot call a macro.
#include <zlib.h>

// inflateInit2 is a macro (it passes the zlib version and the stream's size): a gzip stream,
// header and trailer checked (windowBits 16 + MAX_WBITS).
static inline int mtlm_inflate_init_gzip(z_stream *stream) {
    return inflateInit2(stream, 16 + MAX_WBITS);
}
#endif
