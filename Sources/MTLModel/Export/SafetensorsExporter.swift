import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a model as safetensors: every tensor under its MODEL.md name, the architecture
/// config in `__metadata__["mtl_model.config"]` and the model's metadata beside it. Streams
/// tensor by tensor (the header is computed from the manifest first) and writes atomically.
/// Tensors stored as float16, bfloat16 or a quantized type are written as float32 (their
/// decoded values), the form trainers and MODEL.md use.
///
/// A sharded model is written the Hugging Face way (docs/SHARDING.md "Sharded safetensors"): `NAME-0000k-of-0000N.safetensors`, one per shard, and
/// `NAME.safetensors.index.json` naming each tensor's file in `weight_map`. A table split by
/// rows keeps its parts: part k is `TENSOR.part-0000k-of-0000N` in file k (a loader that
/// does not know the layout fails loudly on unknown names rather than loading a part as the
/// whole), listed with its first row in the index's `metadata["mtl_model.parts"]`; dense
/// tensors go to file 1. Files are held back under temporary names until all are written,
/// then renamed, the index last.
public struct SafetensorsExporter {
    /// The files written: one, or the shards and the index.
    public struct Written: Sendable {
        public var files: [String]
        public var index: String?
        public var tensorCount: Int
    }

    public init() {}

    /// The suffix of a sharded checkpoint's index (`NAME.safetensors.index.json`).
    public static let indexSuffix = ".index.json"

    @discardableResult
    public func export(_ checked: Model, to output: String) throws(MTLModelError) -> Written {
        let config = checked.architecture.config.serialized()
        guard checked.isSharded else {
            let items = checked.tensors.map { Item(name: $0.name, file: checked.file, entry: $0) }
            try write(items, metadata: modelMetadata(checked, config: config), to: output)
            return Written(files: [output], index: nil, tensorCount: items.count)
        }
        return try exportSharded(checked, config: config, to: output)
    }

    /// One tensor (or part) to write: its name in the output and where its bytes are.
    struct Item {
        let name: String
        let file: ModelFile
        let entry: TensorEntry
        var dtype: DType { SafetensorsExporter.exportedDType(entry.dtype) }
        var byteCount: UInt64 { dtype.storedByteCount(shape: entry.shape)! }
    }

    private func modelMetadata(_ model: Model, config: String) -> [String: JSONValue] {
        var metadata: [String: JSONValue] = [SafetensorsImporter.configKey: .string(config)]
        for entry in model.manifest.metadata where entry.key != SafetensorsImporter.configKey {
            metadata[entry.key] = .string(entry.value)
        }
        return metadata
    }

    /// One safetensors file: the header from the entries, then each tensor's bytes, streamed.
    private func write(_ items: [Item], metadata: [String: JSONValue], to output: String) throws(MTLModelError) {
        var header: [String: JSONValue] = ["__metadata__": .object(metadata)]
        var offset: UInt64 = 0
        for item in items {
            header[item.name] = .object([
                "dtype": .string(SafetensorsFile.name(of: item.dtype)),
                "shape": .array(item.entry.shape.map { .number(Double($0)) }),
                "data_offsets": .array([.number(Double(offset)), .number(Double(offset + item.byteCount))]),
            ])
            offset += item.byteCount
        }
        var headerBytes = Array(JSONValue.object(header).serialized().utf8)
        // Pad with spaces so the data buffer starts 8-byte aligned, as safetensors does.
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }
        let file = try AtomicOutputFile(targetPath: output)
        file.reserve(offset, at: UInt64(8 + headerBytes.count))
        try file.append(withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { Array($0) })
        try file.append(headerBytes)
        for item in items {
            do {
                if item.dtype != item.entry.dtype {
                    try item.file.requireValid(item.entry)
                    try item.file.visitDecodedRows(of: item.entry) { floats in try file.append(UnsafeRawBufferPointer(floats)) }
                    continue
                }
                try item.file.visitValidChunks(of: item.entry) { chunk, _ in try file.append(chunk) }
            } catch let error as MTLModelError {
                throw error
            } catch {
                throw MTLModelError(.io, "\(error)", file: output)
            }
        }
        try file.commit()
    }

    private func exportSharded(_ model: Model, config: String, to output: String) throws(MTLModelError) -> Written {
        let count = model.shards.count
        let name = (output as NSString).lastPathComponent
        let finals = (1...count).map { ShardNaming.path(root: output, index: $0, count: count, suffix: ".safetensors") }
        let index = output + Self.indexSuffix
        // Every target is checked before anything is written (an input, a directory, a device).
        for path in finals + [index] { _ = try OutputTarget(resolving: path) }
        var pending: [String] = []
        var committed = false
        defer { if !committed { pending.forEach { unlink($0) } } }
        var weightMap: [String: JSONValue] = [:]
        var partsOf: [String: [JSONValue]] = [:]
        var totalSize: UInt64 = 0
        for k in 1...count {
            let fileName = (finals[k - 1] as NSString).lastPathComponent
            let items = items(ofFile: k, count, model, named: fileName, parts: &partsOf)
            for item in items {
                weightMap[item.name] = .string(fileName)
                totalSize += item.byteCount
            }
            var fileMetadata: [String: JSONValue] = k == 1 ? modelMetadata(model, config: config) : [SafetensorsImporter.configKey: .string(config)]
            fileMetadata["mtl_model.index"] = .string(name + Self.indexSuffix)
            let temporary = ShardNaming.beside(root: output, AtomicOutputFile.pendingPath(directory: "", base: fileName))
            pending.append(temporary)
            try write(items, metadata: fileMetadata, to: temporary)
        }
        var indexMetadata = modelMetadata(model, config: config)
        indexMetadata["total_size"] = .number(Double(totalSize))
        var parts: [String: JSONValue] = [:]
        for entry in model.tensors {
            guard let list = partsOf[entry.name] else { continue }
            let shape: [JSONValue] = entry.shape.map { .number(Double($0)) }
            parts[entry.name] = .object(["dtype": .string(SafetensorsFile.name(of: Self.exportedDType(entry.dtype))),
                                         "shape": .array(shape), "parts": .array(list)])
        }
        indexMetadata["mtl_model.parts"] = .object(parts)
        let indexBytes = Array(JSONValue.object(["metadata": .object(indexMetadata), "weight_map": .object(weightMap)]).serialized().utf8)
        let indexFile = try AtomicOutputFile(targetPath: ShardNaming.beside(root: output, AtomicOutputFile.pendingPath(directory: "", base: name + Self.indexSuffix)))
        pending.append(indexFile.targetPath)
        try indexFile.append(indexBytes)
        try indexFile.commit()
        for (from, to) in zip(pending, finals + [index]) where rename(from, to) != 0 {
            throw MTLModelError(.io, "cannot move the output into place: \(String(cString: strerror(errno)))", file: to)
        }
        committed = true
        return Written(files: finals, index: index, tensorCount: weightMap.count)
    }

    /// What file `k` of `count` holds: shard k's part of every split tensor (its record
    /// appended to `parts`) and, in file 1, every tensor that is not split.
    private func items(ofFile k: Int, _ count: Int, _ model: Model, named fileName: String, parts: inout [String: [JSONValue]]) -> [Item] {
        var items: [Item] = []
        for entry in model.tensors {
            let tensor = model.tensor(entry)
            guard tensor.isSplit else {
                if k == 1 { items.append(Item(name: entry.name, file: model.file, entry: entry)) }
                continue
            }
            let part = tensor.parts[k - 1]
            items.append(Item(name: "\(entry.name).part-\(ShardNaming.ordinal(k, of: count))", file: part.tensor.file, entry: part.tensor.entry))
            parts[entry.name, default: []].append(.object(["tensor": .string(items.last!.name), "file": .string(fileName),
                                                           "first_row": .number(Double(part.firstRow)), "rows": .number(Double(part.tensor.rowCount))]))
        }
        return items
    }

    static func exportedDType(_ dtype: DType) -> DType {
        dtype.isFloatingPoint ? .float32 : dtype
    }
}
