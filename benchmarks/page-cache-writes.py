"""How this kernel and file system take a file's writes, the questions behind the writers'
design (docs/PERFORMANCE.md, "Blocks allocated before the bytes are written" and "Tried on
2026-12-06 and not kept"): SIZE MiB written into a new file

- in 1 MiB pieces at 64-byte offsets (as the writers issue them: a tensor follows the header)
  or in 2 MiB pieces at 2 MiB boundaries (which gives the page cache 2 MiB folios),
- with the blocks reserved first (fallocate, FALLOC_FL_KEEP_SIZE, as np.save does) or not,
- by one thread or by two (each its half, with os.pwrite, which releases the GIL),
- fsync'd or not,

every combination once a round, in a shuffled order, ROUNDS rounds; then the median time of
each and the time to populate a read-only mapping of the file written (MADV_POPULATE_READ:
what a reader pays for the folios' size).

usage: python3 benchmarks/page-cache-writes.py SIZE_MIB ROUNDS [DIR]
"""
import ctypes
import itertools
import mmap
import os
import random
import statistics
import sys
import threading
import time

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
MADV_POPULATE_READ = 22


def write(path, source, size, aligned, reserve, threads, sync):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    base, piece = (0, 2 << 20) if aligned else (64, 1 << 20)
    if base:
        os.pwrite(fd, source[:base], 0)
    if reserve:
        libc.fallocate(fd, 1, base, size)

    def part(index):
        for offset in range(index * size // threads, (index + 1) * size // threads, piece):
            os.pwrite(fd, source[offset:offset + piece], base + offset)
    workers = [threading.Thread(target=part, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if sync:
        os.fsync(fd)
    os.close(fd)


def populate(path):
    fd = os.open(path, os.O_RDONLY)
    mapping = mmap.mmap(fd, os.fstat(fd).st_size, prot=mmap.PROT_READ)
    start = time.perf_counter()
    mapping.madvise(MADV_POPULATE_READ)
    elapsed = time.perf_counter() - start
    mapping.close()
    os.close(fd)
    return elapsed


def main():
    size, rounds = int(sys.argv[1]) << 20, int(sys.argv[2])
    path = os.path.join(sys.argv[3] if len(sys.argv) > 3 else ".", "page-cache-writes.bin")
    memory = mmap.mmap(-1, size + (4 << 20))
    memory.madvise(mmap.MADV_HUGEPAGE)  # as numpy's arrays of 4 MiB and more
    block = os.urandom(1 << 20)
    for offset in range(0, len(memory), 1 << 20):
        memory[offset:offset + (1 << 20)] = block
    source = memoryview(memory)
    configs = list(itertools.product((False, True), (False, True), (1, 2), (False, True)))
    times, maps = ({c: [] for c in configs} for _ in range(2))
    for _ in range(rounds):
        for config in random.sample(configs, len(configs)):
            if os.path.exists(path):
                os.remove(path)
            start = time.perf_counter()
            write(path, source, size, *config)
            times[config].append(time.perf_counter() - start)
            maps[config].append(populate(path))
    os.remove(path)
    print("%-26s %-9s %-7s %-8s %9s %9s  runs" % ("pieces", "blocks", "threads", "fsync", "write s", "map s"))
    for config in configs:
        aligned, reserve, threads, sync = config
        print("%-26s %-9s %-7d %-8s %9.3f %9.3f  %s" % (
            "2 MiB at 2 MiB boundaries" if aligned else "1 MiB at 64-byte offsets", "reserved" if reserve else "-",
            threads, "fsync'd" if sync else "-", statistics.median(times[config]), statistics.median(maps[config]),
            " ".join("%.2f" % t for t in times[config])))


if __name__ == "__main__":
    main()
