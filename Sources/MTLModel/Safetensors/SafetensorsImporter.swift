import Foundation

/// Imports a PyTorch checkpoint saved as safetensors with MODEL.md's tensor names and its
/// architecture JSON in `__metadata__["mtl_model.config"]` into an `.mtlm` file.
public struct SafetensorsImporter {
    /// The metadata key of the architecture config.
    public static let configKey = "mtl_model.config"

    public var writerOptions: ModelWriter.Options
    static let pieceByteCount = 64 << 20

    public init(writerOptions: ModelWriter.Options = .init()) {
        self.writerOptions = writerOptions
    }

    public struct Result: Sendable, Codable {
        public var tensorCount: Int
        public var parameterCount: UInt64
        public var trainingStateGroups: [String]
    }

    /// Checks the checkpoint completely (config, every tensor's presence, dtype and shape,
    /// keys distinct), then streams its tensors into `output` in MODEL.md order.
    ///
    /// - Throws: `MTLModelError` naming the checkpoint and the tensor or config key.
    @discardableResult
    public func importCheckpoint(_ path: String, to output: String) throws(MTLModelError) -> Result {
        let checkpoint = try SafetensorsFile(path: path)
        do throws(MTLModelError) {
            guard let configText = checkpoint.metadata[Self.configKey] else {
                throw MTLModelError(.invalidConfig, "no architecture config: __metadata__ has no \"\(Self.configKey)\" key")
            }
            let architecture: Architecture
            do {
                architecture = try Architecture(configJSON: Data(configText.utf8))
            } catch {
                throw MTLModelError(error.code, "in __metadata__[\"\(Self.configKey)\"]: \(error.message)", location: error.location)
            }
            let byName = Dictionary(uniqueKeysWithValues: checkpoint.tensors.map { ($0.name, $0) })
            var specs = architecture.servingTensors
            var groups: [String] = []
            for group in TrainingStateGroup.allCases {
                let groupSpecs = architecture.trainingTensors(group)
                let present = groupSpecs.filter { byName[$0.name] != nil }
                guard !present.isEmpty else { continue }
                if let missing = groupSpecs.first(where: { byName[$0.name] == nil }) {
                    throw MTLModelError(.malformed, "missing tensor: \(group.rawValue) are present for some tensors but not this one",
                                        location: .init(tensor: missing.name))
                }
                specs += groupSpecs
                groups.append(group.rawValue)
            }
            let expected = Set(specs.map(\.name))
            if let unexpected = checkpoint.tensors.first(where: { !expected.contains($0.name) }) {
                var message = "unexpected tensor: not part of the architecture"
                if unexpected.name.hasPrefix("optimizer."), unexpected.name != "optimizer.step" {
                    message += architecture.optimizer.map { " (a \($0.type.configName) optimizer has slots \($0.type.slots.joined(separator: ", ")))" }
                        ?? " (the config has no optimizer section)"
                }
                throw MTLModelError(.malformed, message, location: .init(tensor: unexpected.name))
            }
            for spec in specs {
                guard let tensor = byName[spec.name] else {
                    throw MTLModelError(.malformed, "missing tensor: the architecture needs \(spec.dtype) \(spec.shape)", location: .init(tensor: spec.name))
                }
                guard tensor.dtype == spec.dtype, tensor.shape == spec.shape else {
                    throw MTLModelError(.malformed, "is \(SafetensorsFile.name(of: tensor.dtype)) \(tensor.shape), the architecture needs \(SafetensorsFile.name(of: spec.dtype)) \(spec.shape)",
                                        location: .init(tensor: spec.name))
                }
                if spec.role == .keys { try Self.checkDistinct(checkpoint.bytes(of: tensor), tensor: spec.name) }
            }

            let writer = try ModelWriter(path: output, options: writerOptions)
            for spec in specs {
                // Written 64 MiB at a time, each piece's pages released once written: the
                // resident set stays bounded whatever the size of a table.
                let tensor = byName[spec.name]!
                let bytes = checkpoint.bytes(of: tensor)
                try writer.beginTensor(spec.name, dtype: spec.dtype, shape: spec.shape, role: spec.role)
                for start in stride(from: 0, to: bytes.count, by: Self.pieceByteCount) {
                    let piece = start..<min(start + Self.pieceByteCount, bytes.count)
                    try writer.write(UnsafeRawBufferPointer(rebasing: bytes[piece]))
                    checkpoint.release(tensor, piece)
                }
                try writer.endTensor()
            }
            let metadata = checkpoint.metadata.filter { $0.key != Self.configKey }.sorted { $0.key < $1.key }
                .map { MetadataEntry(key: $0.key, value: $0.value) }
            try writer.finish(architecture: architecture,
                              provenance: Provenance(createdUnixSeconds: Int64(Date().timeIntervalSince1970), source: "import \(path)"),
                              metadata: metadata)
            let parameters = specs.filter { !$0.role.isTrainingState }.reduce(UInt64(0)) { $0 + $1.elementCount }
            return Result(tensorCount: specs.count, parameterCount: parameters, trainingStateGroups: groups)
        } catch {
            throw error.inFile(path)
        }
    }

    /// Keyed tables map each id to one row: a key stored twice is an error. Checked in bounded
    /// memory (a partitioned hash, `KeyJoin.duplicateKey`).
    static func checkDistinct(_ bytes: UnsafeRawBufferPointer, tensor: String) throws(MTLModelError) {
        if let duplicate = KeyJoin.duplicateKey(in: KeyColumn(bytes), release: { _ in }) {
            throw MTLModelError(.malformed, "duplicate key \(duplicate) in a keyed table", location: .init(tensor: tensor))
        }
    }
}
