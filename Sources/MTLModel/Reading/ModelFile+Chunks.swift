/// One chunk of a tensor as visited by `ModelFile.visitChunks`.
struct ChunkVisit {
    var index: Int
    /// File offset of the chunk's stored bytes.
    var storedOffset: UInt64
    /// The stored and computed CRC when they differ (only when checksums are checked).
    var checksumMismatch: (stored: UInt32, computed: UInt32)?
    /// The chunk's logical bytes; nil when its checksum failed or it did not inflate.
    var logical: UnsafeRawBufferPointer?
}

extension ModelFile {
    /// Pages of the mapping released after each window of this many stored bytes, so a
    /// streaming pass over a tensor of any size keeps a bounded resident set; a file mapped
    /// sparsely (a few samples' lookups) keeps less: 4 MiB.
    static let releaseWindowByteCount: UInt64 = 64 << 20
    static let sparseReleaseWindowByteCount: UInt64 = 4 << 20

    /// Visits every chunk of `entry` in order, in bounded memory: uncompressed chunks are the
    /// mapped bytes, compressed ones are inflated into one reused buffer, and mapped pages
    /// are released every 64 MiB.
    func visitChunks(of entry: TensorEntry, checkingChecksums: Bool, _ body: (ChunkVisit) throws -> Void) rethrows {
        var inflated = entry.compression == .zlib ? [UInt8](repeating: 0, count: Int(min(entry.chunkByteCount, entry.byteCount))) : []
        try visitStoredChunks(of: entry) { index, offset, stored in
            var visit = ChunkVisit(index: index, storedOffset: offset)
            if checkingChecksums {
                let crc = CRC32.checksum(stored)
                if crc != entry.chunkCRC32[index] { visit.checksumMismatch = (entry.chunkCRC32[index], crc) }
            }
            guard visit.checksumMismatch == nil else { return try body(visit) }
            guard entry.compression == .zlib else {
                visit.logical = stored
                return try body(visit)
            }
            let count = entry.logicalRange(ofChunk: index).count
            let inflatedOK = inflated.withUnsafeMutableBytes { buffer in
                ZlibChunk.decompress(stored, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<count]))
            }
            guard inflatedOK else { return try body(visit) }
            try inflated.withUnsafeBytes { buffer in
                visit.logical = UnsafeRawBufferPointer(rebasing: buffer[..<count])
                try body(visit)
            }
        }
    }

    /// Visits the stored bytes of each chunk (compressed or not), releasing mapped pages every
    /// 64 MiB (4 MiB when mapped sparsely).
    func visitStoredChunks(of entry: TensorEntry,
                           _ body: (_ index: Int, _ offset: UInt64, _ stored: UnsafeRawBufferPointer) throws -> Void) rethrows {
        let window = file.isSparse ? Self.sparseReleaseWindowByteCount : Self.releaseWindowByteCount
        var windowStart = entry.offset
        for (index, range) in entry.storedRanges().enumerated() {
            let offset = entry.offset + range.lowerBound
            try body(index, offset, file.bytes(offset, UInt64(range.count)))
            let end = offset + UInt64(range.count)
            if end - windowStart >= window {
                file.release(windowStart, end - windowStart)
                windowStart = end
            }
        }
        file.release(windowStart, entry.offset + entry.storedByteCount - windowStart)
    }

    /// The error for a chunk that failed its checksum or did not inflate.
    func chunkError(_ visit: ChunkVisit, of entry: TensorEntry) -> MTLModelError {
        let message = visit.checksumMismatch.map { "chunk \(visit.index) checksum mismatch (stored \(hex32($0.stored)), computed \(hex32($0.computed)))" }
            ?? "chunk \(visit.index) does not inflate to its \(entry.logicalRange(ofChunk: visit.index).count) bytes"
        return MTLModelError(.malformed, message, file: path, location: .init(byteOffset: visit.storedOffset, tensor: entry.name))
    }
}
