/// id → row of a keyed table: open addressing with linear probing, built once per load.
///
/// - Complexity: O(n) to build, O(1) expected per lookup; 12 bytes per slot, at least twice
///   as many slots as keys.
///
/// `@unchecked Sendable`: the slots are written only in `init` and read-only afterwards.
final class KeyedIndex: @unchecked Sendable {
    private let slotKeys: UnsafeMutableBufferPointer<UInt64>
    private let slotRows: UnsafeMutableBufferPointer<Int32>
    private let mask: Int

    /// - Throws: on a duplicate key (a keyed table maps each id to one row), naming the key and
    ///   both rows.
    init(keys: UnsafeRawBufferPointer, tensor: String) throws(MTLModelError) {
        let count = keys.count / 8
        // Rows are stored in 32 bits (12 bytes a slot, not 16); a larger keyed table would need
        // an index of over 100 GB anyway.
        guard count < Int(Int32.max) else {
            throw MTLModelError(.invalidArgument, "a keyed table of \(count) rows is more than predict indexes (\(Int32.max - 1))", location: .init(tensor: tensor))
        }
        var capacity = 16
        while capacity < count * 2 { capacity <<= 1 }
        slotKeys = .allocate(capacity: capacity)
        slotRows = .allocate(capacity: capacity)
        slotRows.initialize(repeating: -1)
        slotKeys.initialize(repeating: 0)
        mask = capacity - 1
        for row in 0..<count {
            let key = keys.loadUnaligned(fromByteOffset: row * 8, as: UInt64.self)
            var slot = Int(truncatingIfNeeded: SplitMix64.mix(key)) & mask
            while slotRows[slot] >= 0 {
                if slotKeys[slot] == key {
                    // Every property is set, so `deinit` runs for this throw and frees the slots.
                    throw MTLModelError(.malformed, "duplicate key \(key) at rows \(slotRows[slot]) and \(row): a keyed table maps each id to one row (run mtl-model verify)",
                                        location: .init(tensor: tensor))
                }
                slot = (slot + 1) & mask
            }
            slotKeys[slot] = key
            slotRows[slot] = Int32(row)
        }
    }

    deinit {
        slotKeys.deallocate()
        slotRows.deallocate()
    }

    /// The row of `key`, or -1 when the table does not hold it (out of vocabulary).
    @inline(__always)
    func row(of key: UInt64) -> Int {
        var slot = Int(truncatingIfNeeded: SplitMix64.mix(key)) & mask
        while true {
            let row = slotRows[slot]
            if row < 0 || slotKeys[slot] == key { return Int(row) }
            slot = (slot + 1) & mask
        }
    }
}
