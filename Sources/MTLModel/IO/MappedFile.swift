#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only. Pages are read on first touch, so mapping a 2 GiB model
/// costs nothing until tensors are used; `release(_:)` drops touched pages from this
/// process's resident set after a streaming pass (the page cache keeps them).
///
/// `@unchecked Sendable`: the mapping is read-only and immutable until `deinit`.
final class MappedFile: @unchecked Sendable {
    let path: String
    let byteCount: UInt64
    private let base: UnsafeMutableRawPointer?

    private let registration: InputRegistration

    /// Whether the mapping keeps whole page-cache folios out (`init(path:sparse:)`).
    let isSparse: Bool
    /// What `deinit` unmaps: the mapping, or the reservation it was placed in (`mapPlaced`).
    private let reservation: (base: UnsafeMutableRawPointer, byteCount: Int)?

    /// Maps the file at `path`. `sparse`: a reader that will touch a few scattered rows of large
    /// tables; see `mapPlaced`.
    init(path: String, sparse: Bool = false) throws(MTLModelError) {
        self.path = path
        // Non-blocking, so that opening a FIFO returns at once (and is refused below) instead of
        // waiting for a writer forever.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw MTLModelError(.io, "cannot open: \(String(cString: strerror(errno)))", file: path) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw MTLModelError(.io, "cannot stat: \(String(cString: strerror(errno)))", file: path) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw MTLModelError(.invalidArgument, "is \(Self.kindName(info.st_mode)), not a regular file: a model or checkpoint is read by mapping it, so save it to a file first", file: path)
        }
        registration = InputRegistration(fd: fd, path: path)
        byteCount = UInt64(info.st_size)
        if byteCount == 0 {
            base = nil
            isSparse = false
            reservation = nil
            return
        }
        let placed = Self.mapPlaced(fd, Int(byteCount), sparse: sparse)
        isSparse = sparse && placed != nil
        reservation = placed?.reservation
        let mapped = placed?.base ?? mmap(nil, Int(byteCount), PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != MAP_FAILED else {
            throw MTLModelError(.io, "cannot map \(byteCount) bytes: \(String(cString: strerror(errno)))", file: path)
        }
        base = mapped
    }

    /// Maps `byteCount` bytes of `fd` where the file's 2 MiB boundaries are the address
    /// space's (in bulk) or one page past them (sparse), or nil (then the caller maps as
    /// usual). Linux 6.18 maps a large page-cache folio (up to 2 MiB; ext4 and XFS) whole on a
    /// fault when it fits in one page table: with one PMD entry where the boundaries line up.
    /// - In bulk, that is what a reader of whole tables or of random rows all over them wants:
    ///   one TLB entry covers 2 MiB instead of 4 KiB. `MADV_HUGEPAGE` has a file read from the
    ///   disk come into 2 MiB folios; without it they are smaller, and a random row of a large
    ///   table was a TLB miss and a page walk as well as a DRAM access (`predict` p40 about 10%
    ///   slower; docs/PERFORMANCE.md, #17). Linux places a large mapping on a 2 MiB boundary
    ///   itself; placing it here holds where it does not.
    /// - Sparse, no 2 MiB folio lines up with a page table, so a fault maps only the 64 KiB
    ///   around it rather than 2 MiB of resident memory for one row read. The price: touching a
    ///   whole table maps it 4 KiB at a time, about 50 ms more per GiB on this project's machine.
    private static func mapPlaced(_ fd: Int32, _ byteCount: Int, sparse: Bool) -> (base: UnsafeMutableRawPointer, reservation: (UnsafeMutableRawPointer, Int))? {
        #if os(Linux)
        let alignment = 2 << 20, offset = sparse ? Int(sysconf(Int32(_SC_PAGESIZE))) : 0
        let size = byteCount + alignment + offset
        guard let reserved = mmap(nil, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              reserved != MAP_FAILED else { return nil }
        let start = (Int(bitPattern: reserved) + alignment - 1) / alignment * alignment + offset
        guard let placed = mmap(UnsafeMutableRawPointer(bitPattern: start), byteCount, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0),
              placed != MAP_FAILED else {
            munmap(reserved, size)
            return nil
        }
        // Advisory: without transparent huge pages for files the mapping works as any other.
        if !sparse { madvise(placed, byteCount, MADV_HUGEPAGE) }
        return (placed, (reserved, size))
        #else
        return nil
        #endif
    }

    /// "a directory", "a FIFO (named pipe)" and the like, for messages.
    static func kindName(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "not a regular file"
        }
    }

    deinit {
        if let reservation {
            munmap(reservation.base, reservation.byteCount)
        } else if let base {
            munmap(base, Int(byteCount))
        }
    }

    /// The bytes `offset ..< offset + count`, which the caller has checked to be in bounds.
    func bytes(_ offset: UInt64, _ count: UInt64) -> UnsafeRawBufferPointer {
        precondition(offset <= byteCount && count <= byteCount - offset, "unchecked range")
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + Int(offset), count: Int(count))
    }

    /// Copies `count` bytes at `offset` (bounds checked by the caller).
    func copy(_ offset: UInt64, _ count: UInt64) -> [UInt8] { Array(bytes(offset, count)) }

    /// Tells the kernel this process is done with the pages of `offset ..< offset + count`,
    /// and with the `releaseMargin` bytes before them (none when sparse). Why the margin: the page cache holds
    /// large folios (ext4 and XFS on Linux 6.x, up to 2 MiB), and a fault may map the whole
    /// folio, pages behind the previous release included; a pass releasing behind itself in
    /// windows smaller than a folio would leave most of what it read mapped. Releasing is a
    /// hint: a page still in use is read back from the page cache, never lost.
    func release(_ offset: UInt64, _ count: UInt64) {
        guard let base, count > 0 else { return }
        let margin = isSparse ? 0 : min(offset, Self.releaseMargin)
        guard let (start, end) = pageRange(offset - margin, count + margin) else { return }
        madvise(base + Int(start), Int(end - start), MADV_DONTNEED)
    }

    /// The largest page-cache folio mapped at once on x86-64 and arm64 with 4 KiB pages.
    static let releaseMargin: UInt64 = 2 << 20

    /// The whole pages covering `offset ..< offset + count`, clipped to the file; nil when
    /// nothing of it is in the file. A hint's range never traps, whatever the caller computed.
    private func pageRange(_ offset: UInt64, _ count: UInt64) -> (UInt64, UInt64)? {
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let start = offset / page * page
        let (sum, overflow) = offset.addingReportingOverflow(count)
        let end = overflow ? byteCount : min(byteCount, sum)
        return start < end ? (start, end) : nil
    }
}
