/// The rows of one tensor of a model, one file or sharded, read by logical row number: what
/// `ModelSharder` copies from. Each part is checked (`ModelFile.requireValid`: checksums,
/// values, distinct keys) before any of its rows is read, so a resharded model never carries a
/// corrupt byte it could have caught.
///
/// Uncompressed parts are read from the mapping (zero copy); a compressed part is inflated
/// whole, once (tables are stored uncompressed unless a user asked otherwise).
final class RowSource {
    private struct Part {
        var firstRow: Int
        var rowCount: Int
        var bytes: UnsafeRawBufferPointer
        /// The inflated copy of a compressed part, freed with the source.
        var owned: UnsafeMutableRawBufferPointer?
        var tensor: ModelTensor
    }

    let entry: TensorEntry
    /// Stored bytes of one row (quantized rows carry their parameters).
    let rowByteCount: Int
    private var parts: [Part] = []

    init(_ tensor: ModelTensor) throws {
        entry = tensor.entry
        let rows = tensor.rowCount
        rowByteCount = rows == 0 ? 0 : Int(entry.byteCount) / rows
        for part in tensor.parts {
            let piece = part.tensor
            try piece.file.requireValid(piece.entry)
            var owned: UnsafeMutableRawBufferPointer?
            let bytes: UnsafeRawBufferPointer
            if let mapped = try piece.file.mappedBytes(of: piece.entry.name) {
                bytes = mapped
            } else {
                let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(piece.entry.byteCount), alignment: 64)
                try piece.withBytes { copy.copyMemory(from: $0) }
                owned = copy
                bytes = UnsafeRawBufferPointer(copy)
            }
            parts.append(Part(firstRow: part.firstRow, rowCount: piece.rowCount, bytes: bytes, owned: owned, tensor: piece))
        }
    }

    /// Calls `body` with the stored bytes of rows `rows`, in pieces that do not cross a part.
    func visit(_ rows: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var row = rows.lowerBound
        while row < rows.upperBound {
            let index = partIndex(of: row)
            let part = parts[index]
            let end = min(rows.upperBound, part.firstRow + part.rowCount)
            let range = (row - part.firstRow) * rowByteCount..<(end - part.firstRow) * rowByteCount
            try body(UnsafeRawBufferPointer(rebasing: part.bytes[range]))
            row = end
        }
    }

    /// The bytes of one row, valid while this source lives (mapped or owned).
    func row(_ row: Int) -> UnsafeRawBufferPointer {
        let part = parts[partIndex(of: row)]
        let start = (row - part.firstRow) * rowByteCount
        return UnsafeRawBufferPointer(rebasing: part.bytes[start..<start + rowByteCount])
    }

    deinit { parts.forEach { $0.owned?.deallocate() } }

    /// Drops the mapped pages read so far from the resident set (the page cache keeps them).
    func releasePages() {
        for part in parts where part.owned == nil { part.tensor.releasePages() }
    }

    /// The part holding `row`: the last part starting at or before it.
    private func partIndex(of row: Int) -> Int {
        var low = 0, high = parts.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if parts[middle].firstRow <= row { low = middle } else { high = middle - 1 }
        }
        return low
    }
}
