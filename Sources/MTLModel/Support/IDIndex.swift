import CKernels

/// id → row: open addressing with linear probing over (key, row) slots, 12 bytes a slot. The
/// one hash table of feature ids: the keyed index of the predictor (`KeyedIndex`) and each
/// partition of the key join of `diff`, `verify` and `import` (`KeyJoin`).
///
/// `@unchecked Sendable`: filled by one thread, then only read (the predictor's lookups).
final class IDIndex: @unchecked Sendable {
    private let keys: UnsafeMutableBufferPointer<UInt64>
    private let rows: UnsafeMutableBufferPointer<Int32>
    /// Slots in use: the first `capacity` of the allocation.
    private var capacity = 0

    init(capacity: Int) {
        keys = .allocate(capacity: capacity)
        rows = .allocate(capacity: capacity)
        keys.initialize(repeating: 0)
    }

    deinit {
        keys.deallocate()
        rows.deallocate()
    }

    func clear(capacity: Int) {
        self.capacity = capacity
        duplicate = nil
        UnsafeMutableBufferPointer(rebasing: rows[..<capacity]).initialize(repeating: -1)
    }

    /// Multiply-shift of the hash's low 32 bits onto the capacity (fewer than 2^32 slots:
    /// the index budget bounds them).
    @inline(__always)
    private func home(_ hash: UInt64) -> Int {
        Int(truncatingIfNeeded: ((hash & 0xFFFF_FFFF) &* UInt64(capacity)) >> 32)
    }

    @inline(__always)
    func prefetch(_ hash: UInt64) {
        let slot = home(hash)
        mtlm_prefetch(rows.baseAddress! + slot)
        mtlm_prefetch(keys.baseAddress! + slot)
    }

    /// The first key inserted twice since the last `clear`.
    private(set) var duplicate: UInt64?

    func insert(_ key: UInt64, hash: UInt64, row: Int32) {
        var slot = home(hash)
        while rows[slot] >= 0 {
            if keys[slot] == key {
                if duplicate == nil { duplicate = key }
                return
            }
            slot = slot + 1 == capacity ? 0 : slot + 1
        }
        keys[slot] = key
        rows[slot] = row
    }

    @inline(__always)
    func row(of key: UInt64, hash: UInt64) -> Int32 {
        var slot = home(hash)
        while true {
            let row = rows[slot]
            if row < 0 || keys[slot] == key { return row }
            slot = slot + 1 == capacity ? 0 : slot + 1
        }
    }
}
