import Synchronization

/// The open tensor of a `ModelWriter`, written by several threads at once, each piece at its
/// place in the tensor (`ModelWriter.placedTensor()`): a rewrite whose windows have a known
/// size writes each one where it belongs as soon as it is encoded, so that no worker waits for
/// one writing thread (which, with the page-cache copy a third of `quantize`'s work, left the
/// second core a third idle).
///
/// Each piece is checksummed by the thread that writes it, cut at chunk boundaries; when the
/// tensor ends, the pieces must cover it exactly once, and each chunk's CRC is combined from
/// its pieces' (`CRC32.combine`).
final class PlacedTensor: Sendable {
    struct Piece {
        var offset: UInt64
        var count: UInt64
        var crc: UInt32
    }

    let name: String
    /// Where the tensor's first byte is in the file.
    let fileOffset: UInt64
    let byteCount: UInt64
    let chunkByteCount: UInt64
    private let writes: PlacedWrites
    private let pieces = Mutex<[Piece]>([])

    init(name: String, fileOffset: UInt64, byteCount: UInt64, chunkByteCount: UInt64, writes: PlacedWrites) {
        self.name = name
        self.fileOffset = fileOffset
        self.byteCount = byteCount
        self.chunkByteCount = chunkByteCount
        self.writes = writes
    }

    /// Writes `bytes` at byte `offset` of the tensor. Any thread; pieces may come in any order.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(MTLModelError) {
        guard offset <= byteCount, UInt64(bytes.count) <= byteCount - offset else {
            throw MTLModelError(.invalidArgument, "bytes \(offset)..<\(offset + UInt64(bytes.count)) are outside tensor \"\(name)\" (\(byteCount) bytes)",
                                file: writes.messagePath)
        }
        var found: [Piece] = []
        var start = 0
        while start < bytes.count {
            let at = offset + UInt64(start)
            let end = start + Int(min(UInt64(bytes.count - start), chunkByteCount - at % chunkByteCount))
            found.append(Piece(offset: at, count: UInt64(end - start), crc: CRC32.checksum(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))))
            start = end
        }
        try writes.write(bytes, at: fileOffset + offset)
        pieces.withLock { $0.append(contentsOf: found) }
    }

    /// Each chunk's CRC-32, once the pieces written cover the tensor exactly once.
    func chunkCRCs() throws(MTLModelError) -> [UInt32] {
        let sorted = pieces.withLock { $0.sorted { $0.offset < $1.offset } }
        var crcs: [UInt32] = []
        var next: UInt64 = 0
        for piece in sorted {
            guard piece.offset == next else {
                let problem = piece.offset < next ? "written twice" : "never written"
                let range = piece.offset < next ? piece.offset..<next : next..<piece.offset
                throw MTLModelError(.invalidArgument, "bytes \(range.lowerBound)..<\(range.upperBound) of tensor \"\(name)\" were \(problem)",
                                    file: writes.messagePath)
            }
            if piece.offset % chunkByteCount == 0 {
                crcs.append(piece.crc)
            } else {
                crcs[crcs.count - 1] = CRC32.combine(crcs[crcs.count - 1], piece.crc, secondCount: piece.count)
            }
            next += piece.count
        }
        guard next == byteCount else {
            throw MTLModelError(.invalidArgument, "tensor \"\(name)\" got \(next) of its \(byteCount) bytes", file: writes.messagePath)
        }
        return crcs
    }
}
