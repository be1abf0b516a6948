import Foundation
import Testing
@testable import MTLModel

/// What a planned diff's tasks send to the finish: sketches and top rows of parts of a stream
/// merge into those of the whole stream, and survive their JSON coding bit for bit.
@Suite("diff figures merged from parts")
struct DiffPartialTests {
    /// A stream of changes with ties, zeros and an infinity, cut into `parts` pieces.
    static func stream(count: Int, seed: UInt64) -> [Float] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { index in
            let draw = random.next()
            if index == 17 { return .infinity }
            if draw % 7 == 0 { return 0 }
            return Float(draw % 1000) / 997
        }
    }

    static func pieces(_ values: [Float], _ parts: Int) -> [ArraySlice<Float>] {
        let size = (values.count + parts - 1) / parts
        return stride(from: 0, to: values.count, by: size).map { values[$0..<min($0 + size, values.count)] }
    }

    static func coded<T: Codable>(_ value: T) throws -> T {
        try JSONDecoder().decode(T.self, from: JSONEncoder().encode(value))
    }

    @Test("merged sketches give every rank the whole stream's sketch gives (exact, histogram, and one of each)",
          arguments: [(1000, 4096), (5000, 1024), (3000, 1500)])
    func sketches(count: Int, exactLimit: Int) throws {
        let values = Self.stream(count: count, seed: UInt64(count))
        var whole = QuantileSketch(exactLimit: exactLimit)
        values.forEach { whole.add($0) }
        var merged: QuantileSketch?
        for piece in Self.pieces(values, 3) {
            var part = QuantileSketch(exactLimit: exactLimit)
            piece.forEach { part.add($0) }
            part = try Self.coded(part)
            if merged == nil { merged = part } else { merged!.merge(part) }
        }
        #expect(merged!.count == whole.count)
        #expect(merged!.maximum == whole.maximum)
        for rank in [0, 1, count / 2, count * 99 / 100, count - 1] {
            #expect(merged!.value(atRank: rank).bitPattern == whole.value(atRank: rank).bitPattern, "rank \(rank)")
        }
    }

    @Test("merged top rows are the whole stream's, ties in the order they came")
    func topRows() throws {
        let values = Self.stream(count: 2000, seed: 9)
        var whole = TopValues(limit: 25)
        for (id, value) in values.enumerated() { whole.add(id: UInt64(id) << 40, value) }
        var merged = TopValues(limit: 25), start = 0
        for piece in Self.pieces(values, 5) {
            var part = TopValues(limit: 25)
            for (offset, value) in piece.enumerated() { part.add(id: UInt64(start + offset) << 40, value) }
            merged.merge(try Self.coded(part))
            start += piece.count
        }
        #expect(merged.entries.map(\.id) == whole.entries.map(\.id))
        #expect(merged.entries.map(\.value) == whole.entries.map(\.value))
    }

    @Test("a result that is not base64 of whole words is a decoding error, not a crash")
    func malformed() {
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(QuantileSketch.self, from: Data(#"{"exactLimit": 4, "count": 1, "maximum": 0, "exact": "AAA"}"#.utf8))
        }
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(QuantileSketch.self, from: Data(#"{"exactLimit": 4, "count": 1, "maximum": 0, "buckets": "/////////////////////w=="}"#.utf8))
        }
    }
}
