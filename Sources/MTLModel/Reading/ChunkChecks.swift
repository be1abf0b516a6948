import CKernels

/// The checksums of one uncompressed tensor checked chunk by chunk, each the first time a
/// reader touches it: what a reader that looks up a few rows of a large table uses (predict),
/// so that what is read and checked grows with the rows it touches, not with the table.
/// A chunk that fails is reported each time it is touched; one that matched is not read again.
///
/// `@unchecked Sendable`: the flags are set and read atomically (two threads touching a new
/// chunk at once both check it; the result is the same).
final class ChunkChecks: @unchecked Sendable {
    private let file: ModelFile
    private let entry: TensorEntry
    private let chunkByteCount: Int
    private let chunkShift: Int
    private let flags: UnsafeMutablePointer<UInt8>

    init(file: ModelFile, entry: TensorEntry) {
        precondition(entry.compression == .none && entry.chunkCount > 0)
        self.file = file
        self.entry = entry
        chunkByteCount = Int(entry.chunkByteCount)
        chunkShift = chunkByteCount.nonzeroBitCount == 1 ? chunkByteCount.trailingZeroBitCount : -1
        flags = .allocate(capacity: entry.chunkCount)
        flags.initialize(repeating: 0, count: entry.chunkCount)
    }

    deinit { flags.deallocate() }

    /// Checks the chunks holding `count` (> 0) bytes at `offset` of the tensor, those not
    /// checked yet; nil when they match.
    @inline(__always)
    func check(_ offset: Int, _ count: Int) -> MTLModelError? {
        // A shift for the usual power-of-two chunk size (a lookup pays for this on every row).
        let first = chunkShift >= 0 ? offset >> chunkShift : offset / chunkByteCount
        let last = chunkShift >= 0 ? (offset + count - 1) >> chunkShift : (offset + count - 1) / chunkByteCount
        for chunk in first...last where mtlm_flag_get(flags, chunk) == 0 {
            if let problem = checkChunk(chunk) { return problem }
        }
        return nil
    }

    @inline(never)
    private func checkChunk(_ chunk: Int) -> MTLModelError? {
        let range = entry.logicalRange(ofChunk: chunk)  // uncompressed: stored as is
        let offset = entry.offset + range.lowerBound
        let crc = CRC32.checksum(file.file.bytes(offset, UInt64(range.count)))
        guard crc == entry.chunkCRC32[chunk] else {
            return file.chunkError(ChunkVisit(index: chunk, storedOffset: offset, checksumMismatch: (entry.chunkCRC32[chunk], crc)), of: entry)
        }
        mtlm_flag_set(flags, chunk)
        // A sparse reader keeps only the rows it reads, not the chunks around them.
        if file.file.isSparse { file.file.release(offset, UInt64(range.count)) }
        return nil
    }
}

extension ModelFile {
    /// The mapped bytes of uncompressed tensor `name` without checking its checksums whole,
    /// and what checks them chunk by chunk as they are touched (nil when they need no check:
    /// already checked, or checks on access are off). Nil for a compressed tensor.
    func mappedBytesCheckedOnTouch(of name: String) -> (bytes: UnsafeRawBufferPointer, checks: ChunkChecks?)? {
        guard let entry = entry(named: name), entry.compression == .none else { return nil }
        let bytes = file.bytes(entry.offset, entry.storedByteCount)
        guard checksChecksumsOnAccess, !checksumsVerified(name), entry.chunkCount > 0 else { return (bytes, nil) }
        return (bytes, ChunkChecks(file: self, entry: entry))
    }
}
