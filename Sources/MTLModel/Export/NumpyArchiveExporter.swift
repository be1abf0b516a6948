/// Writes a model as numpy's `.npz`: one `.npy` member per tensor under its MODEL.md name, the
/// architecture config as `mtl_model.config.json` (and the model's metadata, when it has any,
/// as `mtl_model.metadata.json`). Members are stored uncompressed, streamed tensor by tensor.
///
/// numpy has no bfloat16 or row-quantized types: those tensors are written as float32 (their
/// decoded values); float16 stays float16. Keys stay int64, as PyTorch stores them.
public struct NumpyArchiveExporter {
    public static let configMember = "mtl_model.config.json"
    public static let metadataMember = "mtl_model.metadata.json"

    /// Sizes from which ZIP64 records are written (4 GiB; lowered by tests).
    var zip64Threshold: UInt64 = 0xFFFF_FFFF

    public init() {}

    public func export(_ checked: Model, to output: String) throws {
        let model = checked
        let archive = try ZipArchiveWriter(path: output, zip64Threshold: zip64Threshold)
        for entry in model.tensors {
            let dtype = Self.exportedDType(entry.dtype)
            let header = Self.npyHeader(dtype: dtype, shape: entry.shape)
            try archive.begin("\(entry.name).npy", size: UInt64(header.count) + dtype.storedByteCount(shape: entry.shape)!)
            try archive.write(header)
            // A sharded model's tables are streamed part by part: one array per tensor, as for one file.
            try model.tensor(entry).visitValid(asFloat32: dtype != entry.dtype) { bytes, crc in try archive.write(bytes, crc: crc) }
            try archive.end()
        }
        var members = [(Self.configMember, model.architecture.config.serialized())]
        if !model.manifest.metadata.isEmpty {
            let metadata = JSONValue.object(Dictionary(model.manifest.metadata.map { ($0.key, JSONValue.string($0.value)) }) { first, _ in first })
            members.append((Self.metadataMember, metadata.serialized()))
        }
        for (name, text) in members {
            let bytes = Array(text.utf8)
            try archive.begin(name, size: UInt64(bytes.count))
            try archive.write(bytes)
            try archive.end()
        }
        try archive.finish()
    }

    static func exportedDType(_ dtype: DType) -> DType {
        switch dtype {
        case .float32, .float16, .int64, .uint64: dtype
        case .bfloat16, .int8Rowwise, .int4Rowwise, .int8Symmetric: .float32
        }
    }

    /// The `.npy` version 1.0 header: magic, version, length, the dict numpy reads, padded
    /// with spaces and a newline so the data starts 64-byte aligned (numpy's own layout).
    static func npyHeader(dtype: DType, shape: [UInt64]) -> [UInt8] {
        let descr = switch dtype {
        case .float16: "<f2"
        case .int64: "<i8"
        case .uint64: "<u8"
        default: "<f4"
        }
        let dimensions = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var dictionary = Array("{'descr': '\(descr)', 'fortran_order': False, 'shape': \(dimensions), }".utf8)
        let prefix = 10
        while (prefix + dictionary.count + 1) % 64 != 0 { dictionary.append(0x20) }
        dictionary.append(0x0A)
        return [0x93] + Array("NUMPY".utf8) + [1, 0] + [UInt8(dictionary.count & 0xFF), UInt8(dictionary.count >> 8)] + dictionary
    }
}
