import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The source rows of a keyed table that one shard holds, in the shard's order (by bucket, the
/// source order within a bucket), when they are too many to hold as one list: a billion ids in
/// 16 shards would be 500 MB of row numbers a shard.
///
/// The shard's buckets are cut into *runs* of consecutive buckets holding at most `capacity`
/// rows (a bucket holding more is a run of its own). One pass over the keys appends each row,
/// with its bucket, to its run's region of an unlinked temporary file, through a small buffer a
/// run; each run is then read back and counting-sorted by bucket on its own. Memory: a buffer a
/// run and one run's rows, whatever the table's size; nothing is left behind, even by a crash.
final class KeyedRuns: @unchecked Sendable {
    struct Run {
        /// First entry of the run's region in the file, and its entries.
        var offset: Int
        var count: Int
        /// Buckets, as offsets in the shard's bucket range.
        var buckets: Range<Int>
    }

    /// Rows a run holds unless one bucket holds more (8 MiB of row numbers).
    static let defaultCapacity = 1 << 20
    /// An entry is the row << 24 | the bucket's offset (bucket bits ≤ 24).
    private static let bucketBits = 24

    let runs: [Run]
    let count: Int
    private let capacity: Int
    private let file: TemporaryFile

    /// - Parameters: `counts` the rows of each of the shard's buckets, in order; `bucket` the
    ///   offset in the shard's range of a key's bucket, nil when the key is another shard's.
    init(keys: RowSource, counts: [UInt32], capacity: Int, bucket: (UInt64) -> Int?) throws {
        guard keys.rows.count < 1 << (64 - Self.bucketBits) else {
            throw MTLModelError(.unsupported, "a keyed table of 2^40 rows or more", location: .init(tensor: keys.entry.name))
        }
        var runs: [Run] = []
        var total = 0
        for (offset, rows) in counts.enumerated() {
            if let last = runs.last, last.count + Int(rows) <= capacity || last.count == 0 {
                runs[runs.count - 1].count += Int(rows)
                runs[runs.count - 1].buckets = last.buckets.lowerBound..<(offset + 1)
            } else {
                runs.append(Run(offset: total, count: Int(rows), buckets: offset..<(offset + 1)))
            }
            total += Int(rows)
        }
        self.runs = runs
        count = total
        self.capacity = capacity
        file = try TemporaryFile("shard", for: "a shard's rows")
        try fill(keys, bucket: bucket)
    }

    /// The one pass over the keys: each of the shard's rows appended to its run's region.
    private func fill(_ keys: RowSource, bucket: (UInt64) -> Int?) throws {
        let bufferSize = 4096
        var buffers = runs.map { _ in [UInt64]() }
        var written = runs.map { _ in 0 }
        let starts = runs.map(\.buckets.lowerBound)
        func flush(_ run: Int) throws {
            try buffers[run].withUnsafeBytes { bytes in try file.write(bytes, at: (runs[run].offset + written[run]) * 8) }
            written[run] += buffers[run].count
            buffers[run].removeAll(keepingCapacity: true)
        }
        var failure: Error?
        try ShardPlan.forEachKey(keys) { row, key in
            guard failure == nil, let offset = bucket(key) else { return }
            // The run: the last whose first bucket is ≤ offset (binary search: runs are few).
            var low = 0, high = starts.count - 1
            while low < high {
                let middle = (low + high + 1) / 2
                if starts[middle] <= offset { low = middle } else { high = middle - 1 }
            }
            buffers[low].append(UInt64(row) << UInt64(Self.bucketBits) | UInt64(offset))
            if buffers[low].count == bufferSize {
                do { try flush(low) } catch { failure = error }
            }
        }
        if let failure { throw failure }
        for run in runs.indices where !buffers[run].isEmpty { try flush(run) }
    }

    private func read(_ entries: Range<Int>) throws -> [UInt64] {
        var out = [UInt64](repeating: 0, count: entries.count)
        try out.withUnsafeMutableBytes { buffer in try file.read(into: buffer, at: entries.lowerBound * 8) }
        return out
    }

    /// Calls `body` with the shard's rows in order, a chunk of at most `capacity` rows at a time
    /// (a run; a bucket larger than that in pieces, already in order).
    func forEachChunk(_ body: ([Int]) throws -> Void) throws {
        let mask = UInt64(1) << UInt64(Self.bucketBits) - 1
        for run in runs where run.count > 0 {
            // More rows than a run holds: one bucket (with empty ones), by construction.
            if run.buckets.count == 1 || run.count > capacity {
                for start in stride(from: run.offset, to: run.offset + run.count, by: capacity) {
                    try body(read(start..<min(start + capacity, run.offset + run.count)).map { Int($0 >> UInt64(Self.bucketBits)) })
                }
                continue
            }
            // A stable counting sort by bucket: the file holds each bucket's rows in source order.
            let entries = try read(run.offset..<(run.offset + run.count))
            var next = [Int](repeating: 0, count: run.buckets.count + 1)
            for entry in entries { next[Int(entry & mask) - run.buckets.lowerBound + 1] += 1 }
            for slot in 1..<next.count { next[slot] += next[slot - 1] }
            var rows = [Int](repeating: 0, count: entries.count)
            for entry in entries {
                let slot = Int(entry & mask) - run.buckets.lowerBound
                rows[next[slot]] = Int(entry >> UInt64(Self.bucketBits))
                next[slot] += 1
            }
            try body(rows)
        }
    }
}
