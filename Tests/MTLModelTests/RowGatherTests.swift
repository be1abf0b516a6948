import Foundation
import Testing
@testable import MTLModel

@Suite("Row gather")
struct RowGatherTests {
    /// Gathers `rows` (−1: skipped) from a table of `count` rows of `width` bytes split into
    /// `parts`, and checks every slot against a direct copy and every release range.
    func check(count: Int, width: Int, parts: [Int], rows: [Int], capacity: Int) {
        var table = [UInt8](repeating: 0, count: count * width)
        for i in table.indices { table[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 7) }
        table.withUnsafeBytes { bytes in
            let starts = [0] + parts
            let views = starts.indices.map { k -> (firstRow: Int, bytes: UnsafeRawBufferPointer) in
                let end = k + 1 < starts.count ? starts[k + 1] : count
                return (starts[k], UnsafeRawBufferPointer(rebasing: bytes[(starts[k] * width)..<(end * width)]))
            }
            let source = TensorRows(parts: views, rowByteCount: width, count: count)
            var gather = RowGather(sourceRowCount: count, capacity: capacity)
            var out = [UInt8](repeating: 0xEE, count: capacity * width)
            for start in stride(from: 0, to: rows.count, by: capacity) {
                let n = min(capacity, rows.count - start)
                _ = out.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: 0xEE) }
                var released: [Range<Int>] = []
                out.withUnsafeMutableBytes { buffer in
                    gather.gather(count: n, row: { rows[start + $0] }, from: source, into: buffer.baseAddress!) { released.append($0) }
                }
                for slot in 0..<n {
                    let expected = rows[start + slot] < 0 ? [UInt8](repeating: 0xEE, count: width)
                        : Array(table[(rows[start + slot] * width)..<((rows[start + slot] + 1) * width)])
                    #expect(Array(out[(slot * width)..<((slot + 1) * width)]) == expected, "slot \(slot)")
                }
                // Releases go forward, never overlap, stay in the table, and pass every row read.
                for (a, b) in zip(released, released.dropFirst()) { #expect(a.upperBound <= b.lowerBound) }
                #expect(released.allSatisfy { $0.lowerBound >= 0 && $0.upperBound <= count })
                if let last = rows[start..<(start + n)].max(), last >= 0 { #expect(released.last!.upperBound > last) }
            }
        }
    }

    @Test("Rows in any order, across parts, with skipped slots: every slot gets its row, releases go forward")
    func gathers() {
        var random = SeededGenerator(seed: 7)
        let count = 300_000
        let permutation = Array(0..<count).shuffled(using: &random)
        check(count: count, width: 12, parts: [70_000, 70_001, 200_000], rows: permutation, capacity: 65_536)
        let sparse = (0..<50_000).map { _ in Int.random(in: -1..<count, using: &random) }
        check(count: count, width: 64, parts: [], rows: sparse, capacity: 50_000)
        check(count: 5, width: 3, parts: [2], rows: [4, -1, 0, 4, 2], capacity: 2)
        check(count: 1, width: 8, parts: [], rows: [-1], capacity: 1)
    }
}

/// SplitMix64, for a test's reproducible shuffles.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
