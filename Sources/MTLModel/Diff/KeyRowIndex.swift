/// id → row of a keyed table for `diff`, lean where `KeyedIndex` (predict's) is fast: a slot
/// holds only the row (4 bytes), the key is read from the table's mapped keys, and there are
/// 1.5 slots per key (open addressing, linear probing, multiply-shift to any capacity):
/// 6 bytes a key against 24 to 48.
struct KeyRowIndex {
    private var slots: [Int32]
    private let keys: UnsafeBufferPointer<UInt64>

    /// - Parameter keys: must stay valid while the index is used.
    /// - Throws: on a duplicate key.
    init(keys: UnsafeBufferPointer<UInt64>, tensor: String) throws(MTLModelError) {
        self.keys = keys
        slots = Array(repeating: -1, count: max(16, keys.count + keys.count / 2))
        try slots.withUnsafeMutableBufferPointer { (slots) throws(MTLModelError) in
            for (row, key) in keys.enumerated() {
                var slot = Self.home(key, slots.count)
                while slots[slot] >= 0 {
                    if keys[Int(slots[slot])] == key {
                        throw MTLModelError(.malformed, "duplicate key \(key) in a keyed table", location: .init(tensor: tensor))
                    }
                    slot = slot + 1 == slots.count ? 0 : slot + 1
                }
                slots[slot] = Int32(row)
            }
        }
    }

    @inline(__always)
    private static func home(_ key: UInt64, _ capacity: Int) -> Int {
        Int(SplitMix64.mix(key).multipliedFullWidth(by: UInt64(capacity)).high)
    }

    /// The row of `key`, or -1 when the table does not hold it.
    @inline(__always)
    func row(of key: UInt64) -> Int {
        slots.withUnsafeBufferPointer { slots in
            var slot = Self.home(key, slots.count)
            while true {
                let row = slots[slot]
                if row < 0 || keys[Int(row)] == key { return Int(row) }
                slot = slot + 1 == slots.count ? 0 : slot + 1
            }
        }
    }
}
