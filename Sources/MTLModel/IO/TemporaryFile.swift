import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Scratch space that outgrows memory (a diff's key matches, a shard's spilled rows): a file in
/// `TMPDIR` unlinked as soon as it is made, so nothing is left behind even by a crash. Closed
/// when released.
final class TemporaryFile {
    private let descriptor: Int32
    /// What it holds, for messages: "matching keys", "a shard's rows".
    let purpose: String
    /// Where it is (`TMPDIR`), for messages: a full or missing directory is the user's to change.
    private let directory: String

    /// A new unlinked file named after `name`; `purpose` says in errors what it is for.
    init(_ name: String, for purpose: String) throws(MTLModelError) {
        let directory = FileManager.default.temporaryDirectory.path
        var template = Array("\(directory)/mtl-model-\(name)-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else {
            throw MTLModelError(.io, "cannot create a temporary file in \(directory) (TMPDIR) for \(purpose): \(String(cString: strerror(errno)))")
        }
        unlink(template)
        descriptor = fd
        (self.purpose, self.directory) = (purpose, directory)
    }

    deinit { close(descriptor) }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(MTLModelError) {
        try transferFully(bytes.count, failure: { failure("cannot write \(purpose) to a temporary file in \(directory) (TMPDIR)") }) { done in
            pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(MTLModelError) {
        try transferFully(buffer.count, failure: { failure("cannot read \(purpose) back from a temporary file in \(directory) (TMPDIR)") }) { done in
            pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
        }
    }

    /// The file grown to `byteCount` bytes and mapped shared, read-write; the caller unmaps it
    /// (`ScratchArray`) before the file is released.
    fileprivate func map(_ byteCount: Int) throws(MTLModelError) -> UnsafeMutableRawPointer {
        guard ftruncate(descriptor, off_t(byteCount)) == 0,
              let base = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0), base != MAP_FAILED else {
            throw failure("cannot map \(byteCount) bytes of a temporary file in \(directory) (TMPDIR) for \(purpose)")
        }
        return base
    }

    private func failure(_ what: String) -> MTLModelError {
        MTLModelError(.io, "\(what): \(String(cString: strerror(errno)))")
    }
}

/// `count` values in memory when they take at most `memoryBudget` bytes, else in a mapped
/// `TemporaryFile` whose pages a reader releases behind it (`release`).
final class ScratchArray<Element: BitwiseCopyable> {
    let count: Int
    private let base: UnsafeMutablePointer<Element>
    private let file: TemporaryFile?
    private let mappedByteCount: Int

    init(count: Int, memoryBudget: Int, name: String, for purpose: String) throws(MTLModelError) {
        self.count = count
        let byteCount = max(count, 1) * MemoryLayout<Element>.stride
        if byteCount <= memoryBudget {
            base = .allocate(capacity: max(count, 1))
            (file, mappedByteCount) = (nil, 0)
        } else {
            let file = try TemporaryFile(name, for: purpose)
            base = try file.map(byteCount).bindMemory(to: Element.self, capacity: count)
            (self.file, mappedByteCount) = (file, byteCount)
        }
    }

    deinit {
        if file != nil { munmap(base, mappedByteCount) } else { base.deallocate() }
    }

    subscript(index: Int) -> Element {
        get { base[index] }
        set { base[index] = newValue }
    }

    /// Drops the pages of `indices`, already read (file-backed only; partial pages stay).
    func release(_ indices: Range<Int>) {
        guard file != nil else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE))), stride = MemoryLayout<Element>.stride
        let start = indices.lowerBound * stride / page * page, end = indices.upperBound * stride / page * page
        if end > start { madvise(UnsafeMutableRawPointer(base) + start, end - start, MADV_DONTNEED) }
    }
}
