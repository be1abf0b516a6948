#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CKernels
import Foundation

/// A file written under a temporary name in the target's directory and renamed over the
/// target only when complete (after fsync), so that a crash, a kill or a full disk never
/// leaves a partial file at the target path. Until `commit()`, `deinit` removes the
/// temporary file.
///
/// Targets that are not regular files (a character device, a FIFO, `-` for standard output)
/// are written in place, never renamed over (`OutputTarget`); a target that is one of the
/// process's open inputs is refused before anything is created.
public final class AtomicOutputFile {
    /// The path as given.
    public let targetPath: String
    /// What messages name: for a pending output's temporary file (`pendingPath`), the target it
    /// stands for — the user never named the temporary file —, else the path as given.
    let messagePath: String
    /// Where the bytes go until `commit()`: a temporary file, or nil when written in place.
    public let temporaryPath: String?
    /// The file renamed over on commit (a link resolved), or nil when written in place.
    let finalPath: String?
    private var fd: Int32
    private var buffer: [UInt8] = []
    private let bufferCapacity = 4 << 20
    /// Bytes written so far (including buffered ones): the offset of the next byte.
    private(set) var position: UInt64 = 0
    private var committed = false
    private let synchronize: Bool
    /// Bytes whose writeback to the disk has been started (`startWriteback`).
    private var writebackStarted: UInt64 = 0
    /// How far ahead of the started writeback the writer may get: the disk works on one window
    /// while the writer fills the next, and the fsync at the end waits for the last one only.
    private static let writebackWindow: UInt64 = 32 << 20

    /// - Parameter synchronize: fsync before the rename (durable), or only rename (atomic).
    public init(targetPath: String, synchronize: Bool = true) throws(MTLModelError) {
        self.targetPath = targetPath
        messagePath = Self.messagePath(for: targetPath)
        self.synchronize = synchronize
        switch try OutputTarget(resolving: targetPath) {
        case .standardOutput:
            (temporaryPath, finalPath) = (nil, nil)
            fd = dup(1)
        case .inPlace(let path):
            (temporaryPath, finalPath) = (nil, nil)
            fd = open(path, O_WRONLY | O_CLOEXEC)
        case .file(let path):
            let slash = path.lastIndex(of: "/")
            let directory = slash.map { String(path[...$0]) } ?? ""
            let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
            guard !base.isEmpty else { throw MTLModelError(.invalidArgument, "output path names a directory", file: targetPath) }
            Self.removeLeftovers(directory: directory, base: base)
            let temporary = "\(directory)\(Self.temporaryPrefix(base))\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            (temporaryPath, finalPath) = (temporary, path)
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        }
        guard fd >= 0 else {
            let what = temporaryPath == nil ? "cannot open for writing" : "cannot create a temporary file beside it"
            throw MTLModelError(.io, "\(what): \(String(cString: strerror(errno)))", file: messagePath)
        }
        buffer.reserveCapacity(bufferCapacity)
    }

    /// Whether bytes already written can be overwritten (`overwrite(_:at:)`): false for pipes
    /// and terminals.
    var isSeekable: Bool { temporaryPath != nil || lseek(fd, 0, SEEK_CUR) >= 0 }

    /// Temporary files of a target named `base` start with this, then the writer's process id.
    static func temporaryPrefix(_ base: String) -> String { ".\(base).mtlm-tmp-" }

    /// Where a held-back output of `directory` + `base` waits for its commit: this writer's
    /// temporary name, so the next write of the same target removes it if the process dies.
    static func pendingPath(directory: String, base: String, suffix: String = "") -> String {
        "\(directory)\(temporaryPrefix(base))\(getpid())-pending\(suffix)"
    }

    /// The target `path` stands for when it is this process's `pendingPath` of it, else `path`.
    static func messagePath(for path: String) -> String {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? ""
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard base.hasPrefix("."), let marker = base.range(of: ".mtlm-tmp-\(getpid())-pending") else { return path }
        return directory + base[base.index(after: base.startIndex)..<marker.lowerBound]
    }

    /// Removes the temporary files that writers of the same target left when they were killed
    /// (their process no longer exists), so that crashes do not accumulate garbage. That
    /// includes the temporary files of a temporary file: commands that check their output
    /// before moving it into place (a quality gate) write it under a temporary name first.
    ///
    /// A model's target also owns the temporary files of its shards (`NAME-0000k-of-0000N.mtlm`,
    /// `.mtlmd` for a delta's, of any count): a killed sharded write leaves one per shard it had begun.
    static func removeLeftovers(directory: String, base: String) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory.isEmpty ? "." : directory) else { return }
        for name in entries {
            // `.BASE.mtlm-tmp-PID-…`, or `..BASE.mtlm-tmp-PID-…` for a temporary file's own.
            let dotted = name.hasPrefix("..") ? name.dropFirst(2) : name.hasPrefix(".") ? name.dropFirst() : nil
            guard let dotted, let marker = dotted.range(of: ".mtlm-tmp-") else { continue }
            let written = String(dotted[..<marker.lowerBound])
            guard written == base || ShardCleanup.isShardName(written, ofRoot: base),
                  let pid = Int32(dotted[marker.upperBound...].prefix { $0 != "-" }), pid != getpid() else { continue }
            if processIsGone(pid) { unlink(directory + name) }
        }
    }

    /// Whether process `pid` has ended: it does not exist, or (Linux) it is a zombie that
    /// nothing has reaped yet — a killed writer stays one for a while in a container whose
    /// init reaps late, and its temporary file is garbage all the same.
    static func processIsGone(_ pid: Int32) -> Bool {
        if kill(pid, 0) != 0 { return errno == ESRCH }
        #if os(Linux)
        // `/proc/PID/stat` is `PID (COMMAND) STATE …`; the command may itself hold ')'.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
        #else
        return false
        #endif
    }

    deinit {
        if !committed {
            if fd >= 0 { close(fd) }
            if let temporaryPath { unlink(temporaryPath) }
        }
    }

    /// Appends `bytes`. Small pieces are buffered; the buffer goes to the file up to a region
    /// boundary (`PlacedWrites.regionByteCount`) together with the head of the piece that
    /// reaches it, in one call, and what follows the boundary stays buffered: so every whole
    /// region of the file is written by one call, and the page cache holds it in one large
    /// folio that a later mmap maps with one entry. Pieces of a region or more go to the file
    /// from where they are (only their tail past the last boundary is copied).
    public func append(_ bytes: UnsafeRawBufferPointer) throws(MTLModelError) {
        if buffer.count + bytes.count <= bufferCapacity && UInt64(bytes.count) < PlacedWrites.regionByteCount {
            buffer.append(contentsOf: bytes)
        } else {
            try writeToRegionBoundary(bytes)
        }
        position += UInt64(bytes.count)
        startWriteback()
    }

    /// Writes the buffer and the head of `bytes` up to the last region boundary they reach, in
    /// one call, and buffers the rest (less than a region).
    private func writeToRegionBoundary(_ bytes: UnsafeRawBufferPointer) throws(MTLModelError) {
        let start = position - UInt64(buffer.count), end = position + UInt64(bytes.count)
        let cut = end / PlacedWrites.regionByteCount * PlacedWrites.regionByteCount
        let fromBuffer = Int(min(UInt64(buffer.count), cut > start ? cut - start : 0))
        let fromBytes = cut > position ? Int(cut - position) : 0
        try withBytes(of: buffer) { raw throws(MTLModelError) in
            try writeAll(UnsafeRawBufferPointer(rebasing: raw[..<fromBuffer]), UnsafeRawBufferPointer(rebasing: bytes[..<fromBytes]))
        }
        buffer.removeFirst(fromBuffer)
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[fromBytes...]))
    }

    public func append(_ bytes: [UInt8]) throws(MTLModelError) {
        try withBytes(of: bytes) { raw throws(MTLModelError) in try append(raw) }
    }

    func appendZeros(_ count: Int) throws(MTLModelError) {
        try append([UInt8](repeating: 0, count: count))
    }

    /// Writes at offsets of the caller's choosing, from any thread (`PlacedWrites`), for bytes
    /// past `position` that `advance(by:)` then moves past. Only into a temporary file this
    /// writer created: an output written in place may be standard output opened for appending,
    /// where `pwrite` ignores the offset. Flushes what is buffered first.
    func placedWrites() throws(MTLModelError) -> PlacedWrites? {
        guard temporaryPath != nil else { return nil }
        try flush()
        return PlacedWrites(fd: fd, messagePath: messagePath)
    }

    /// Moves past `count` bytes that placed writes wrote at `position`.
    func advance(by count: UInt64) throws(MTLModelError) {
        precondition(buffer.isEmpty, "placed writes follow a flush")
        position += count
        guard lseek(fd, off_t(position), SEEK_SET) >= 0 else { throw ioError("seek failed") }
        startWriteback()
    }

    /// Placed writes have written every byte below `offset`: its writeback may start (as it
    /// does for appended bytes) before `advance(by:)` moves past them all.
    func placedBytesWritten(below offset: UInt64) {
        startWriteback(written: offset)
    }

    /// Overwrites bytes already written at `offset` (used for the header, written last).
    func overwrite(_ bytes: [UInt8], at offset: UInt64) throws(MTLModelError) {
        try flush()
        let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
        guard written == bytes.count else { throw ioError("write failed") }
    }

    /// Flushes, fsyncs, renames over the target and fsyncs the directory; in place, only
    /// flushes.
    public func commit() throws(MTLModelError) {
        try flush()
        guard let temporaryPath, let finalPath else {
            committed = true
            guard close(fd) == 0 else { fd = -1; throw ioError("close failed") }
            fd = -1
            return
        }
        if synchronize { guard fsync(fd) == 0 else { throw ioError("fsync failed") } }
        guard close(fd) == 0 else { fd = -1; throw ioError("close failed") }
        fd = -1
        guard rename(temporaryPath, finalPath) == 0 else { throw ioError("cannot rename the temporary file into place") }
        committed = true
        let slash = finalPath.lastIndex(of: "/")
        let directory = slash.map { String(finalPath[...$0]) } ?? "."
        let directoryFD = synchronize ? open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1
        if directoryFD >= 0 {
            fsync(directoryFD)
            close(directoryFD)
        }
    }

    private func flush() throws(MTLModelError) {
        guard !buffer.isEmpty else { return }
        try withBytes(of: buffer) { raw throws(MTLModelError) in try writeAll(raw) }
        buffer.removeAll(keepingCapacity: true)
    }

    /// A durable write of a temporary file starts the writeback of each window written, so the
    /// disk writes while the command computes the next (the fsync of `commit()` would otherwise
    /// begin it all at the end, as `dd conv=fsync` does). The pages stay cached: reading the
    /// output next costs nothing. Off for in-place targets (a device is the user's to flush)
    /// and for files not meant to be durable.
    private func startWriteback() {
        startWriteback(written: position - UInt64(buffer.count))
    }

    private func startWriteback(written: UInt64) {
        guard synchronize, temporaryPath != nil, written > writebackStarted,
              written - writebackStarted >= Self.writebackWindow else { return }
        // Advisory: an error (a file system without it) only leaves the work to the fsync.
        _ = mtlm_start_writeback(fd, Int64(writebackStarted), Int64(written - writebackStarted))
        writebackStarted = written
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws(MTLModelError) {
        try writeAll(bytes, UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// `first` then `second` with one `writev` (a short write goes on with what is left).
    private func writeAll(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(MTLModelError) {
        try writeFully(count: first.count + second.count, file: messagePath) { done in
            var pieces: [iovec] = []
            for (part, skipped) in [(first, done), (second, max(0, done - first.count))] where skipped < part.count {
                pieces.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: part.baseAddress! + skipped), iov_len: part.count - skipped))
            }
            return writev(fd, pieces, Int32(pieces.count))
        }
    }

    private func ioError(_ what: String) -> MTLModelError {
        MTLModelError(.io, "\(what): \(String(cString: strerror(errno)))", file: messagePath)
    }
}

/// `pwrite` into an `AtomicOutputFile`'s temporary file, from any thread: a thread that has
/// produced bytes (checksummed chunks, an encoded window) writes them itself, at their place,
/// instead of handing them to one writing thread that the others then wait for. (ext4 still
/// copies into one file's page cache one write at a time: it holds the inode lock through it.)
struct PlacedWrites: Sendable {
    let fd: Int32
    let messagePath: String

    /// The page cache's largest folio on x86-64 and arm64 with 4 KiB pages: a write that covers
    /// a whole aligned region of the file puts it in one 2 MiB folio, which a later mmap maps
    /// with one page-table entry. A region written by two calls (1 MiB pieces at 64-byte
    /// offsets) is held in small folios: measured on Linux 6.18/ext4, writing 1 GiB that way
    /// took 1.4× as long, and touching its mapping 1.6×, as writing it cut at region
    /// boundaries (docs/PERFORMANCE.md).
    static let regionByteCount: UInt64 = 2 << 20

    /// The first region boundary at or after file offset `offset`.
    static func regionBoundary(atOrAfter offset: UInt64) -> UInt64 {
        (offset + regionByteCount - 1) / regionByteCount * regionByteCount
    }

    /// `range` (file offsets) cut at region boundaries, in order: the pieces to write with one
    /// call each, so that every region inside the range is written whole.
    static func regionPieces(_ range: Range<UInt64>) -> [Range<UInt64>] {
        var pieces: [Range<UInt64>] = []
        var start = range.lowerBound
        while start < range.upperBound {
            let end = min(range.upperBound, regionBoundary(atOrAfter: start + 1))
            pieces.append(start..<end)
            start = end
        }
        return pieces
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(MTLModelError) {
        try writeFully(count: bytes.count, file: messagePath) { done in pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done)) }
    }
}

/// Calls `write(done)` (the bytes written so far) until all `count` bytes are written: a short
/// write goes on, an interrupted one is retried.
private func writeFully(count: Int, file: String, _ write: (Int) -> Int) throws(MTLModelError) {
    var done = 0
    while done < count {
        let result = write(done)
        if result < 0 {
            if errno == EINTR { continue }
            throw MTLModelError(.io, "write failed: \(String(cString: strerror(errno)))", file: file)
        }
        done += result
    }
}
