import CKernels
import Foundation

/// For each row of keyed table A, the row of keyed table B that holds the same key (−1: none),
/// in bounded memory whatever the tables' sizes: a hash join done one partition of the key
/// space at a time.
///
/// B's keys of one partition go into an open-addressing index of at most `indexBudget` bytes
/// (12 bytes a slot, 1.5 slots a key); one pass over A's keys then records the matches of A's
/// keys in that partition. Keys are read sequentially from the mapped tables, their pages
/// released behind. The matches take 4 bytes a row of A: in memory up to `memoryBudget`, in
/// an unlinked temporary file mapped beside them past that (its pages released as they are
/// read), so nothing is left behind even by a crash.
final class KeyJoin {
    private let matches: ScratchArray<Int32>
    var count: Int { matches.count }

    /// - Throws: on a duplicate key in B, or when the temporary file cannot be made.
    init(keysA: KeyColumn, keysB: KeyColumn, tensorB: String,
         indexBudget: Int = 40 << 20, memoryBudget: Int = 32 << 20, release: (_ table: Int, _ rows: Range<Int>) -> Void) throws {
        let matches = try ScratchArray<Int32>(count: keysA.count, memoryBudget: memoryBudget, name: "diff", for: "matching keys")
        self.matches = matches
        let count = keysA.count
        let window = Self.window
        try Self.forEachPartition(of: keysB, probeCount: keysA.count, indexBudget: indexBudget, release: { release(1, $0) }) { partition, partitions, index, gather in
            if let duplicate = index.duplicate {
                throw MTLModelError(.malformed, "duplicate key \(duplicate) in a keyed table", location: .init(tensor: tensorB))
            }
            for start in stride(from: 0, to: count, by: window) {
                let rows = start..<min(start + window, count)
                try gather(keysA, rows) { row, key, hash in matches[row] = index.row(of: key, hash: hash) }
                release(0, rows)
            }
        }
    }

    /// The first key found twice in `keys` (not necessarily the first in order), or nil: the
    /// duplicate check of `verify`, `import` and a model's first read. The keys of one hash
    /// partition at a time (16 bytes a key of it, `budget` in all) are gathered, reading `keys`
    /// sequentially and releasing them behind, and checked by the C kernel, which buckets them
    /// into tables that stay in the caches (an index as large as the join's misses the cache
    /// on every key: it was three times slower).
    ///
    /// Keys of at most `keptMapped` bytes stay mapped through the passes, released once at the
    /// end: each pass over released pages mapped them again, a page fault per 4 KiB of keys a
    /// pass and a TLB shootdown per window (8M keys, 5 passes: 0.147 -> 0.13 s for `verify`
    /// of the 2 GiB model of `peers.sh`). Off by default: `verify` has the memory to spare,
    /// `diff` (231 MiB with it at 2 GiB) has not.
    ///
    /// Kept mapped, at least a million keys are checked by `threadCount` threads, each taking
    /// partitions with a buffer of its own — as many more partitions, so the same `budget` in
    /// all: a rewrite on two threads otherwise waited for this one-thread check with a core
    /// idle. The key reported is then the one of the lowest partition that holds a duplicate.
    static func duplicateKey(in keys: KeyColumn, budget: Int = 40 << 20, keptMapped: Int = 0, threadCount: Int = 1,
                             release: (Range<Int>) -> Void) -> UInt64? {
        let keepMapped = keys.count * 8 <= keptMapped
        defer { if keepMapped { release(0..<keys.count) } }
        let releaseBehind = keepMapped ? { _ in } : release
        let threads = keepMapped && keys.count >= 1 << 20 ? max(1, threadCount) : 1
        let partitions = max(threads, (keys.count * 16 * threads + budget - 1) / budget)
        var sizes = [keys.count]
        if partitions > 1 {
            sizes = [Int](repeating: 0, count: partitions)
            sizes.withUnsafeMutableBufferPointer { sizes in
                forEachWindow(of: keys, release: releaseBehind) { bytes in mtlm_count_partitions(bytes.baseAddress, bytes.count / 8, partitions, sizes.baseAddress) }
            }
        }
        let largest = sizes.max() ?? 0
        guard threads > 1 else {
            return PartitionCheck.with(largest: largest) { check in
                for partition in 0..<partitions {
                    if let duplicate = check.duplicate(in: partition, of: partitions, keys, release: releaseBehind) { return duplicate }
                }
                return nil
            }
        }
        let found = WorkResults<UInt64?>(count: partitions)
        let shared = SharedKeys(keys: keys)
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            PartitionCheck.with(largest: largest) { check in
                while let partition = found.claim() {
                    found.set(partition, check.duplicate(in: partition, of: partitions, shared.keys, release: { _ in }))
                }
            }
        }
        return found.all.lazy.compactMap { $0 ?? nil }.first
    }

    /// Keys that stay mapped while several threads read them.
    private struct SharedKeys: @unchecked Sendable {
        let keys: KeyColumn
    }

    /// One thread's check of partitions: the keys of a partition gathered into its buffer (8
    /// spare slots: the gather writes past the last member), then the kernel's scratch.
    private struct PartitionCheck {
        let largest: Int
        let buffer: UnsafeMutablePointer<UInt64>

        /// `body` with a check whose buffer holds partitions of up to `largest` keys.
        static func with<R>(largest: Int, _ body: (PartitionCheck) -> R) -> R {
            let check = PartitionCheck(largest: largest, buffer: .allocate(capacity: 2 * largest + 8))
            defer { check.buffer.deallocate() }
            return body(check)
        }

        func duplicate(in partition: Int, of partitions: Int, _ keys: KeyColumn, release: (Range<Int>) -> Void) -> UInt64? {
            var count = 0
            KeyJoin.forEachWindow(of: keys, release: release) { bytes in
                count += mtlm_gather_partition(bytes.baseAddress, bytes.count / 8, partitions, partition, buffer + count)
            }
            var duplicate: UInt64 = 0
            let found = mtlm_find_duplicate_u64(buffer, count, buffer + largest + 8, &duplicate)
            // A few small tables: as out of memory as any Swift allocation that fails (a trap).
            precondition(found >= 0, "out of memory checking keys for duplicates")
            return found == 1 ? duplicate : nil
        }
    }

    /// The keys' bytes a window of rows at a time (a piece per part of a split tensor), each
    /// window released once visited.
    private static func forEachWindow(of keys: KeyColumn, release: (Range<Int>) -> Void, _ body: (UnsafeRawBufferPointer) -> Void) {
        for start in stride(from: 0, to: keys.count, by: window) {
            let rows = start..<min(start + window, keys.count)
            keys.rows.visit(rows) { _, bytes in body(bytes) }
            release(rows)
        }
    }

    private static let window = 1 << 16

    /// A window's keys of one partition, gathered then visited (row, key, hash), with the
    /// index slots prefetched a few keys ahead.
    typealias Gather = (_ keys: KeyColumn, _ rows: Range<Int>, _ visit: (Int, UInt64, UInt64) throws -> Void) throws -> Void

    /// Calls `body` once per hash partition of `keys` with an index holding that partition's
    /// keys (at most `indexBudget` bytes: 12 a slot, 1.5 slots a key), reading `keys`
    /// sequentially and releasing them behind, once to size the partitions and once a partition.
    /// - Parameter probeCount: rows of the other table that `gather` will visit (buffers are sized for them too).
    private static func forEachPartition(of keys: KeyColumn, probeCount: Int = 0, indexBudget: Int, release: (Range<Int>) -> Void,
                                         _ body: (_ partition: Int, _ partitions: Int, _ index: IDIndex, _ gather: Gather) throws -> Void) throws {
        let partitions = max(1, (keys.count * 18 + indexBudget - 1) / indexBudget)
        var sizes = [Int](repeating: 0, count: partitions)
        for start in stride(from: 0, to: keys.count, by: window) {
            for row in start..<min(start + window, keys.count) { sizes[Self.partition(keys[row], partitions)] += 1 }
            release(start..<min(start + window, keys.count))
        }
        // One index, sized for the largest partition and cleared for each (freeing and
        // allocating tens of MB per partition would leave freed blocks in malloc's arenas).
        let largest = sizes.max() ?? 0
        let index = IDIndex(capacity: largest + largest / 2 + 1)
        // A window's keys of the partition are gathered first, then inserted or looked up in a
        // loop that prefetches the slots a few keys ahead: the index is far larger than the
        // caches, and overlapping its misses is what makes the join fast.
        let buffer = min(window, max(keys.count, probeCount)) + 1
        var members = [Int](repeating: 0, count: buffer), hashes = [UInt64](repeating: 0, count: buffer)
        let distance = 8
        for partition in 0..<partitions {
            let gather: Gather = { keys, rows, visit in
                // Branch-free: every key is written, and the count advances only for members
                // (membership is a coin toss the branch predictor cannot learn).
                let found = members.withUnsafeMutableBufferPointer { members in
                    hashes.withUnsafeMutableBufferPointer { hashes in
                        var found = 0
                        if partitions == 1 {
                            for row in rows {
                                members[found] = row
                                found += 1
                            }
                        } else {
                            for row in rows {
                                members[found] = row
                                found += Self.partition(keys[row], partitions) == partition ? 1 : 0
                            }
                        }
                        // The index's hash, for members only.
                        for i in 0..<found { hashes[i] = SplitMix64.mix(keys[members[i]]) }
                        return found
                    }
                }
                for i in 0..<found {
                    if i + distance < found { index.prefetch(hashes[i + distance]) }
                    try visit(members[i], keys[members[i]], hashes[i])
                }
            }
            index.clear(capacity: sizes[partition] + sizes[partition] / 2 + 1)
            for start in stride(from: 0, to: keys.count, by: window) {
                let rows = start..<min(start + window, keys.count)
                try gather(keys, rows) { row, key, hash in index.insert(key, hash: hash, row: Int32(row)) }
                release(rows)
            }
            try body(partition, partitions, index, gather)
        }
    }

    /// The row of B matching row `row` of A, or −1.
    subscript(row: Int) -> Int32 { matches[row] }

    /// Drops the pages of matches already read (file-backed only).
    func release(_ rows: Range<Int>) { matches.release(rows) }

    /// The partition of a key: a multiplicative hash (one multiplication, where the index's
    /// hash takes several; skew only makes a partition's index larger, never wrong).
    @inline(__always)
    private static func partition(_ key: UInt64, _ count: Int) -> Int {
        Int(truncatingIfNeeded: (((key &* 0x9E37_79B9_7F4A_7C15) >> 32) &* UInt64(count)) >> 32)
    }
}

/// The keys of a keyed table as stored: little-endian 64-bit values at any alignment (a
/// safetensors checkpoint aligns tensors to their element size only), read as unsigned.
struct KeyColumn {
    let rows: TensorRows

    init(_ bytes: UnsafeRawBufferPointer) { rows = TensorRows(parts: [(0, bytes)], rowByteCount: 8, count: bytes.count / 8) }
    init(_ keys: UnsafeBufferPointer<UInt64>) { self.init(UnsafeRawBufferPointer(keys)) }
    /// The keys of a keys tensor split or not (one row of 8 bytes each).
    init(_ rows: TensorRows) { self.rows = rows }

    var count: Int { rows.count }

    @inline(__always)
    subscript(row: Int) -> UInt64 { UInt64(littleEndian: rows.row(row).loadUnaligned(as: UInt64.self)) }
}
