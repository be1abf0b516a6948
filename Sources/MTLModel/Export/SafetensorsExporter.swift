import Foundation

/// Writes a model as safetensors: every tensor under its MODEL.md name, the architecture
/// config in `__metadata__["mtl_model.config"]` and the model's metadata beside it. Streams
/// tensor by tensor (the header is computed from the manifest first) and writes atomically.
/// Tensors stored as float16, bfloat16 or a quantized type are written as float32 (their
/// decoded values), the form trainers and MODEL.md use.
public struct SafetensorsExporter {
    public init() {}

    public func export(_ checked: Model, to output: String) throws(MTLModelError) {
        try checked.requireOneFile(for: "export to .safetensors")
        let model = checked.file
        var metadata: [String: JSONValue] = [SafetensorsImporter.configKey: .string(model.architecture.config.serialized())]
        for entry in model.manifest.metadata where entry.key != SafetensorsImporter.configKey {
            metadata[entry.key] = .string(entry.value)
        }
        var header: [String: JSONValue] = ["__metadata__": .object(metadata)]
        var offset: UInt64 = 0
        for entry in model.tensors {
            let dtype = Self.exportedDType(entry.dtype)
            let byteCount = dtype.storedByteCount(shape: entry.shape)!
            header[entry.name] = .object([
                "dtype": .string(SafetensorsFile.name(of: dtype)),
                "shape": .array(entry.shape.map { .number(Double($0)) }),
                "data_offsets": .array([.number(Double(offset)), .number(Double(offset + byteCount))]),
            ])
            offset += byteCount
        }
        var headerBytes = Array(JSONValue.object(header).serialized().utf8)
        // Pad with spaces so the data buffer starts 8-byte aligned, as safetensors does.
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }
        let file = try AtomicOutputFile(targetPath: output)
        try file.append(withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { Array($0) })
        try file.append(headerBytes)
        for entry in model.tensors {
            do {
                if Self.exportedDType(entry.dtype) != entry.dtype {
                    try model.requireValid(entry)
                    try model.visitDecodedRows(of: entry) { floats in try file.append(UnsafeRawBufferPointer(floats)) }
                    continue
                }
                try model.visitValidChunks(of: entry) { chunk in
                    try file.append(chunk)
                }
            } catch let error as MTLModelError {
                throw error
            } catch {
                throw MTLModelError(.io, "\(error)", file: output)
            }
        }
        try file.commit()
    }

    static func exportedDType(_ dtype: DType) -> DType {
        dtype.isFloatingPoint ? .float32 : dtype
    }
}
