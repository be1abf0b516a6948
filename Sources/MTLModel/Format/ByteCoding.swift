import Foundation

/// Little-endian fixed-width fields of the header and footer.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    mutating func append(_ raw: [UInt8]) { bytes += raw }

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    mutating func appendZeros(_ count: Int) { bytes += repeatElement(0, count: count) }
}

struct ByteReader {
    let bytes: [UInt8]

    func integer<T: FixedWidthInteger>(at offset: Int, as: T.Type = T.self) -> T {
        precondition(offset >= 0 && offset <= bytes.count - MemoryLayout<T>.size)
        return bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }

    func slice(_ offset: Int, _ count: Int) -> [UInt8] { Array(bytes[offset..<offset + count]) }
}

/// Arrays of integers as base64 of their little-endian bytes: lossless and compact inside a
/// JSON document (a task's result carries a sketch of a million values).
enum ByteCoding {
    static func base64<T: FixedWidthInteger>(_ words: [T]) -> String {
        var bytes = ByteWriter()
        for word in words { bytes.append(word) }
        return Data(bytes.bytes).base64EncodedString()
    }

    static func words<T: FixedWidthInteger>(base64 text: String, codingPath: [any CodingKey]) throws -> [T] {
        let size = MemoryLayout<T>.size
        guard let data = Data(base64Encoded: text), data.count % size == 0 else {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "not base64 of \(size)-byte words"))
        }
        let reader = ByteReader(bytes: [UInt8](data))
        return stride(from: 0, to: data.count, by: size).map { reader.integer(at: $0) }
    }
}
