/// id → row of a keyed table, built once per load over the project's one id hash table
/// (`IDIndex`).
///
/// - Complexity: O(n) to build, O(1) expected per lookup; 12 bytes a slot, twice as many
///   slots as keys.
struct KeyedIndex: Sendable {
    private let index: IDIndex

    /// The index of the keys of `tensor`, part by part (one part unless the model is sharded),
    /// each key at its row of the whole table.
    ///
    /// - Throws: on a duplicate key (a keyed table maps each id to one row), naming it.
    init(_ tensor: ModelTensor) throws {
        let count = tensor.rowCount
        // Rows are 32 bits (12 bytes a slot, not 16); a larger keyed table would need an index
        // of over 100 GB anyway.
        guard count < Int(Int32.max) else {
            throw MTLModelError(.invalidArgument, "a keyed table of \(count) rows is more than predict indexes (\(Int32.max - 1))", location: .init(tensor: tensor.name))
        }
        let capacity = max(16, count * 2)
        index = IDIndex(capacity: capacity)
        index.clear(capacity: capacity)
        for part in tensor.parts {
            try part.tensor.withBytes { raw in
                let column = KeyColumn(raw)
                for local in 0..<column.count {
                    let key = column[local], row = part.firstRow + local
                    index.insert(key, hash: SplitMix64.mix(key), row: Int32(row))
                    if let duplicate = index.duplicate {
                        throw MTLModelError(.malformed, "duplicate key \(duplicate) (again at row \(row)): a keyed table maps each id to one row (run mtl-model verify)",
                                            file: part.tensor.file.path, location: .init(tensor: tensor.name))
                    }
                }
            }
        }
    }

    /// The row of `key`, or -1 when the table does not hold it (out of vocabulary).
    @inline(__always)
    func row(of key: UInt64) -> Int {
        Int(index.row(of: key, hash: SplitMix64.mix(key)))
    }
}
