// System calls Swift's Glibc module does not show (they need _GNU_SOURCE).
#define _GNU_SOURCE
#include "mtlm_kernels.h"
#include <fcntl.h>

int mtlm_start_writeback(int fd, long long offset, long long length) {
#if defined(__linux__)
    return sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd; (void)offset; (void)length;
    return 0;
#endif
}

int mtlm_reserve_blocks(int fd, long long offset, long long length) {
#if defined(__linux__)
    return fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length);
#else
    (void)fd; (void)offset; (void)length;
    return 0;
#endif
}
