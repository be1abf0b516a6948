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

    public func append(_ bytes: UnsafeRawBufferPointer) throws(MTLModelError) {
        if buffer.count + bytes.count > bufferCapacity { try flush() }
        // Large pieces (a writer's 1 MiB chunks) go straight to the file: copying them into the
        // buffer first would only add a memcpy of every byte.
        if bytes.count >= bufferCapacity / 4 {
            try flush()
            try writeAll(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
        position += UInt64(bytes.count)
        startWriteback()
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

    /// The caller will write `count` bytes at `offset`: a temporary file allocates their blocks
    /// now, in one extent, without changing its size (`fallocate` with `FALLOC_FL_KEEP_SIZE`,
    /// as `np.save` does). ext4 otherwise reserves and allocates blocks page by page while it
    /// copies each write into the page cache, under the inode lock: writing a 2 GiB tensor
    /// took 0.41 s that way and 0.27 s into reserved blocks (fsync'd: 1.17 s and 0.96 s).
    /// Only bytes that will be written: blocks reserved past the end of the finished file
    /// would stay allocated. Advisory: a file system without it, or a full disk (which the
    /// write then reports), leaves the allocation to the writes. Below a MiB the system call
    /// costs more than it saves, and nothing is reserved.
    func reserve(_ count: UInt64, at offset: UInt64) {
        guard temporaryPath != nil, count >= 1 << 20 else { return }
        _ = mtlm_reserve_blocks(fd, Int64(offset), Int64(count))
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
        try transferFully(bytes.count, failure: { ioError("write failed") }) { done in write(fd, bytes.baseAddress! + done, bytes.count - done) }
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

    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(MTLModelError) {
        try transferFully(bytes.count, failure: { MTLModelError(.io, "write failed: \(String(cString: strerror(errno)))", file: messagePath) }) { done in
            pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
        }
    }
}
