import Foundation

/// The rows of a tensor by number, whether it is stored in one file or split across shards:
/// the mapped bytes of each part (checksums verified on first access, as any access does), or
/// an inflated copy of a compressed part. What commands that walk a table row by row read
/// (`diff`, the sharded writer); valid for the duration of `ModelTensor.withRows`.
///
/// `@unchecked Sendable`: read-only views of a read-only mapping (or of a copy its owner frees
/// only after every reader is done), so threads may read them at once.
struct TensorRows: @unchecked Sendable {
    private let parts: [(firstRow: Int, bytes: UnsafeRawBufferPointer)]
    /// The bytes of a tensor in one part: a lookup is one multiply-add (predict's hot path).
    private let single: UnsafeRawPointer?
    let rowByteCount: Int
    let count: Int

    init(parts: [(firstRow: Int, bytes: UnsafeRawBufferPointer)], rowByteCount: Int, count: Int) {
        self.parts = parts
        self.rowByteCount = rowByteCount
        self.count = count
        single = parts.count == 1 ? parts[0].bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 64) : nil
    }

    /// The stored bytes of row `index` (0 ≤ index < count).
    @inline(__always)
    func row(_ index: Int) -> UnsafeRawPointer {
        if let single { return single + index * rowByteCount }
        let part = parts[partIndex(of: index)]
        return part.bytes.baseAddress! + (index - part.firstRow) * rowByteCount
    }

    /// The bytes of rows `rows`, in pieces (with their rows) that do not cross a part.
    func visit(_ rows: Range<Int>, _ body: (Range<Int>, UnsafeRawBufferPointer) throws -> Void) rethrows {
        var row = rows.lowerBound
        while row < rows.upperBound {
            let part = parts[partIndex(of: row)]
            let partEnd = part.firstRow + part.bytes.count / max(rowByteCount, 1)
            let end = min(rows.upperBound, partEnd)
            try body(row..<end, UnsafeRawBufferPointer(rebasing: part.bytes[(row - part.firstRow) * rowByteCount..<(end - part.firstRow) * rowByteCount]))
            row = end
        }
    }

    /// Whether both hold the same bytes, row for row (however each is split), compared in
    /// windows of 16 MiB; `release` gets each window's rows once compared (a tensor can be
    /// larger than memory).
    func bytesEqual(_ other: TensorRows, release: (Range<Int>) -> Void = { _ in }) -> Bool {
        guard count == other.count, rowByteCount == other.rowByteCount else { return false }
        let window = max(1, (16 << 20) / max(rowByteCount, 1))
        for start in stride(from: 0, to: count, by: window) {
            let rows = start..<min(start + window, count)
            var equal = true
            visit(rows) { rows, piece in
                var offset = 0
                other.visit(rows) { _, theirs in
                    if equal, memcmp(piece.baseAddress! + offset, theirs.baseAddress!, theirs.count) != 0 { equal = false }
                    offset += theirs.count
                }
            }
            release(rows)
            if !equal { return false }
        }
        return true
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

extension ModelTensor {
    /// Calls `body` with the rows of this tensor, split or not (zero copy where uncompressed).
    func withRows<R>(_ body: (TensorRows) throws -> R) throws -> R {
        var views: [(firstRow: Int, bytes: UnsafeRawBufferPointer)] = []
        var owned: [UnsafeMutableRawBufferPointer] = []
        defer { owned.forEach { $0.deallocate() } }
        for part in parts { views.append((part.firstRow, try part.tensor.storedOrInflated(into: &owned))) }
        return try body(TensorRows(parts: views, rowByteCount: rowByteCount, count: rowCount))
    }

    /// The logical bytes of this (one-file) tensor where they are mapped, or a copy inflated
    /// into memory appended to `owned`, which the caller frees. Checksums are verified first.
    func storedOrInflated(into owned: inout [UnsafeMutableRawBufferPointer]) throws -> UnsafeRawBufferPointer {
        if let mapped = try file.mappedBytes(of: entry.name) { return mapped }
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(Int(entry.byteCount), 1), alignment: 64)
        owned.append(copy)
        try file.withTensorBytes(entry.name) { copy.copyMemory(from: $0) }
        return UnsafeRawBufferPointer(rebasing: copy[..<Int(entry.byteCount)])
    }
}
