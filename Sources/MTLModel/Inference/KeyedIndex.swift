/// id → row of a keyed table: open addressing with linear probing, built once per load.
///
/// - Complexity: O(n) to build, O(1) expected per lookup; 12 bytes per slot, at least twice
///   as many slots as keys.
final class KeyedIndex: @unchecked Sendable {
    private let slotKeys: UnsafeMutableBufferPointer<UInt64>
    private let slotRows: UnsafeMutableBufferPointer<Int32>
    private let mask: Int

    /// - Throws: on a duplicate key (a keyed table maps each id to one row).
    init(keys: UnsafeRawBufferPointer, tensor: String) throws(MTLModelError) {
        let count = keys.count / 8
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
                    slotKeys.deallocate()
                    slotRows.deallocate()
                    throw MTLModelError(.malformed, "duplicate key \(key) in a keyed table", location: .init(tensor: tensor))
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
