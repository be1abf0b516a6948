import Foundation

/// A safetensors file (huggingface/safetensors), mapped and validated as untrusted input:
/// the header size is capped before it is read, every offset and size is checked with
/// overflow-safe arithmetic, and the tensors must tile the data buffer exactly.
///
/// `@unchecked Sendable`: immutable after `init` (a read-only mapping).
public final class SafetensorsFile: @unchecked Sendable {
    public struct Tensor: Sendable, Hashable {
        public var name: String
        public var dtype: DType
        public var shape: [UInt64]
        /// Offsets into the data buffer (which starts after the header).
        public var begin: UInt64
        public var end: UInt64
    }

    /// Largest header accepted (safetensors itself caps it at 100 MB).
    public static let maxHeaderByteCount: UInt64 = 100_000_000

    public let path: String
    /// Tensors in the order of their data offsets.
    public let tensors: [Tensor]
    /// The `__metadata__` string map.
    public let metadata: [String: String]
    let file: MappedFile
    let dataStart: UInt64

    public init(path: String) throws(MTLModelError) {
        self.path = path
        do throws(MTLModelError) {
            file = try MappedFile(path: path)
            if let advice = FileKind.sniff(file.bytes(0, min(file.byteCount, 4096)), byteCount: file.byteCount).adviceForCheckpoint(path: path) {
                throw MTLModelError(.malformed, advice)
            }
            let headerSize = try Self.headerSize(file)
            dataStart = 8 + headerSize
            let header: JSONValue
            do {
                header = try JSONValue.parse(Data(file.bytes(8, headerSize)))
            } catch {
                throw MTLModelError.malformed("header is not valid JSON: \(error.message)", at: 8)
            }
            guard case .object(let entries) = header else { throw MTLModelError.malformed("header is not a JSON object", at: 8) }
            var tensors: [Tensor] = []
            var metadata: [String: String] = [:]
            for (name, value) in entries {
                if name == "__metadata__" {
                    metadata = try Self.metadata(value)
                } else {
                    tensors.append(try Self.tensor(name, value))
                }
            }
            self.metadata = metadata
            // The rule safetensors converged on: sorted by offset, tensors tile the data buffer
            // exactly, with no hole and no overlap.
            tensors.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
            try Self.checkTiling(tensors, dataStart: dataStart, dataByteCount: file.byteCount - dataStart)
            self.tensors = tensors
        } catch {
            throw error.inFile(path)
        }
    }

    /// The header's size, from the file's first 8 bytes, capped before anything is read.
    private static func headerSize(_ file: MappedFile) throws(MTLModelError) -> UInt64 {
        guard file.byteCount >= 8 else {
            throw MTLModelError.malformed("file is \(file.byteCount) bytes, too short for a safetensors header size", at: 0)
        }
        let headerSize = file.bytes(0, 8).loadUnaligned(as: UInt64.self).littleEndian
        guard headerSize <= Self.maxHeaderByteCount else {
            throw MTLModelError.malformed("header size \(headerSize) exceeds the limit of \(Self.maxHeaderByteCount)", at: 0)
        }
        guard headerSize <= file.byteCount - 8 else {
            throw MTLModelError.malformed("header of \(headerSize) bytes runs past the end of the \(file.byteCount)-byte file", at: 0)
        }
        return headerSize
    }

    private static func metadata(_ value: JSONValue) throws(MTLModelError) -> [String: String] {
        guard case .object(let items) = value else { throw MTLModelError.malformed("__metadata__ is not an object", at: 8) }
        var metadata: [String: String] = [:]
        for (key, item) in items {
            guard case .string(let text) = item else {
                throw MTLModelError.malformed("__metadata__ value of \"\(key)\" is not a string", at: 8)
            }
            metadata[key] = text
        }
        return metadata
    }

    /// `tensors`, sorted by offset, must cover the data buffer exactly once.
    private static func checkTiling(_ tensors: [Tensor], dataStart: UInt64, dataByteCount: UInt64) throws(MTLModelError) {
        var cursor: UInt64 = 0
        for tensor in tensors {
            guard tensor.begin == cursor else {
                throw MTLModelError.malformed(tensor.begin < cursor ? "data overlaps the previous tensor" : "hole of \(tensor.begin - cursor) bytes before this tensor's data",
                                              at: dataStart + min(tensor.begin, dataByteCount), tensor: tensor.name)
            }
            cursor = tensor.end
        }
        guard cursor == dataByteCount else {
            throw MTLModelError.malformed("tensors cover \(cursor) bytes of a \(dataByteCount)-byte data buffer", at: dataStart + min(cursor, dataByteCount))
        }
    }

    private static func tensor(_ name: String, _ value: JSONValue) throws(MTLModelError) -> Tensor {
        func fail(_ message: String) -> MTLModelError { .malformed(message, at: 8, tensor: name) }
        guard case .object(let fields) = value else { throw fail("entry is not an object") }
        guard case .string(let dtypeName)? = fields["dtype"] else { throw fail("missing dtype") }
        guard let dtype = Self.dtypes[dtypeName] else {
            throw fail("dtype \(dtypeName) is not supported (supported: \(Self.dtypes.keys.sorted().joined(separator: ", ")))")
        }
        guard case .array(let dims)? = fields["shape"] else { throw fail("missing shape") }
        guard case .array(let offsets)? = fields["data_offsets"], offsets.count == 2 else { throw fail("data_offsets must be [begin, end]") }
        guard dims.count <= ReadLimits().maxRank else { throw fail("rank \(dims.count) exceeds the limit of \(ReadLimits().maxRank)") }
        let shape = try dims.map { dim throws(MTLModelError) in try Self.integer(dim, "shape", name) }
        let begin = try Self.integer(offsets[0], "data_offsets", name)
        let end = try Self.integer(offsets[1], "data_offsets", name)
        guard let byteCount = dtype.storedByteCount(shape: shape) else {
            throw fail("shape \(shape) overflows 64 bits")
        }
        guard begin <= end, end - begin == byteCount else {
            throw fail("data_offsets [\(begin), \(end)] hold \(end &- begin) bytes, its shape \(shape) needs \(byteCount)")
        }
        guard fields.keys.allSatisfy({ ["dtype", "shape", "data_offsets"].contains($0) }) else {
            throw fail("unknown keys in the tensor's entry")
        }
        return Tensor(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }

    private static func integer(_ value: JSONValue, _ key: String, _ name: String) throws(MTLModelError) -> UInt64 {
        // JSON numbers arrive as Double: exact up to 2^53, far beyond any real offset.
        guard case .number(let number) = value, number >= 0, number == number.rounded(), number < 9_007_199_254_740_992 else {
            throw .malformed("\(key) holds a value that is not a whole number in 0..<2^53", at: 8, tensor: name)
        }
        return UInt64(number)
    }

    static let dtypes: [String: DType] = ["F32": .float32, "F16": .float16, "BF16": .bfloat16, "I64": .int64, "U64": .uint64]

    static func name(of dtype: DType) -> String {
        dtypes.first { $0.value == dtype }!.key
    }

    public func tensor(named name: String) -> Tensor? { tensors.first { $0.name == name } }

    /// The bytes of `tensor` (little-endian, as stored).
    public func bytes(of tensor: Tensor) -> UnsafeRawBufferPointer {
        file.bytes(dataStart + tensor.begin, tensor.end - tensor.begin)
    }

    /// Drops the pages of `tensor` (or of `range` of its bytes) from this process's resident
    /// set after a streaming pass.
    func release(_ tensor: Tensor, _ range: Range<Int>? = nil) {
        let range = range ?? 0..<Int(tensor.end - tensor.begin)
        file.release(dataStart + tensor.begin + UInt64(range.lowerBound), UInt64(range.count))
    }
}
