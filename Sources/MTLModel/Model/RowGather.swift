import Foundation

/// Copies rows of a table given by number in any order — a shard's keyed rows in bucket order,
/// the rows of B that a diff matched by id to rows of A — into a buffer in that order, reading
/// the source in ascending order and releasing its pages behind.
///
/// Why: read in the given order, each row of a table larger than memory may be a page fault of
/// its own, and the kernel maps the pages around each fault too; the resident set grows with
/// the table, and releasing it often makes every row fault again. In ascending order each page
/// is read about once per call and pages behind the read are done with. The order is a counting
/// sort by blocks of 1,024 source rows: linear, and within a block order costs nothing.
struct RowGather {
    private static let blockShift = 10
    /// Per block of source rows: its count, then where its rows start in `order`.
    private var blocks: [Int32]
    /// Slots of the request in ascending order of their source rows' blocks.
    private var order: [Int32]

    /// - Parameters: `sourceRowCount` the rows of the source; `capacity` the most slots a call
    ///   asks for.
    init(sourceRowCount: Int, capacity: Int) {
        blocks = [Int32](repeating: 0, count: (sourceRowCount >> Self.blockShift) + 2)
        order = [Int32](repeating: 0, count: capacity)
    }

    /// Copies source row `row(i)` to `out + i * rowByteCount` for each slot `i < count` whose
    /// row is not negative (other slots are left as they are). `release` gets the source rows
    /// passed, a stretch at a time.
    mutating func gather(count: Int, row: (Int) -> Int, from source: TensorRows, into out: UnsafeMutableRawPointer,
                         release: (Range<Int>) -> Void) {
        precondition(count <= order.count)
        let shift = Self.blockShift, width = source.rowByteCount
        var placed = 0
        blocks.withUnsafeMutableBufferPointer { blocks in
            order.withUnsafeMutableBufferPointer { order in
                blocks.update(repeating: 0)
                for slot in 0..<count where row(slot) >= 0 { blocks[(row(slot) >> shift) + 1] += 1 }
                for block in 1..<blocks.count { blocks[block] += blocks[block - 1] }
                for slot in 0..<count {
                    let at = row(slot)
                    guard at >= 0 else { continue }
                    order[Int(blocks[at >> shift])] = Int32(slot)
                    blocks[at >> shift] += 1
                    placed += 1
                }
            }
        }
        // Released every 16 MiB of source rows passed (an ascending pass never goes back).
        let stretch = max(1 << shift, (16 << 20) / max(width, 1))
        var released = 0, last = 0
        for index in 0..<placed {
            let slot = Int(order[index]), at = row(slot)
            (out + slot * width).copyMemory(from: source.row(at), byteCount: width)
            last = at
            if at - released >= 2 * stretch {
                let done = (at >> shift) << shift
                release(released..<done)
                released = done
            }
        }
        if placed > 0 { release(released..<min(source.count, ((last >> shift) + 1) << shift)) }
    }
}
