/// The rows of one tensor of a model, one file or sharded, read by logical row number for as
/// long as the source lives: what `ModelSharder` copies from. Each part is checked
/// (`ModelFile.requireValid`: checksums, values, distinct keys) before any of its rows is read,
/// so a resharded model never carries a corrupt byte it could have caught.
///
/// Uncompressed parts are read from the mapping (zero copy); a compressed part is inflated
/// whole, once (tables are stored uncompressed unless a user asked otherwise).
final class RowSource {
    let entry: TensorEntry
    let rows: TensorRows
    private let tensor: ModelTensor
    private var owned: [UnsafeMutableRawBufferPointer] = []

    /// Stored bytes of one row (quantized rows carry their parameters).
    var rowByteCount: Int { rows.rowByteCount }

    /// The source of `tensor`'s rows, checked on `threadCount` threads (nil: every core).
    init(_ tensor: ModelTensor, threadCount: Int? = nil) throws {
        entry = tensor.entry
        self.tensor = tensor
        var views: [(firstRow: Int, bytes: UnsafeRawBufferPointer)] = []
        var owned: [UnsafeMutableRawBufferPointer] = []
        do {
            for part in tensor.parts {
                let piece = part.tensor
                try piece.requireValid(threadCount: threadCount)
                views.append((part.firstRow, try piece.storedOrInflated(into: &owned)))
            }
        } catch {
            owned.forEach { $0.deallocate() }
            throw error
        }
        self.owned = owned
        rows = TensorRows(parts: views, rowByteCount: tensor.rowByteCount, count: tensor.rowCount)
    }

    deinit { owned.forEach { $0.deallocate() } }

    /// Calls `body` with the stored bytes of rows `rows`, in pieces that do not cross a part.
    func visit(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        try rows.visit(range) { _, bytes in try body(bytes) }
    }

    /// The bytes of one row, valid while this source lives.
    func row(_ index: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: rows.row(index), count: rowByteCount) }

    /// Drops the mapped pages read so far from the resident set (the page cache keeps them).
    func releasePages() { tensor.releasePages() }

    /// Drops the mapped pages of `rows` from the resident set.
    func releasePages(rows: Range<Int>) { tensor.releasePages(rows: rows) }
}
