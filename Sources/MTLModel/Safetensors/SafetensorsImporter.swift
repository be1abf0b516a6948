import Foundation

/// Imports a PyTorch checkpoint saved as safetensors with MODEL.md's tensor names and its
/// architecture JSON in `__metadata__["mtl_model.config"]` into an `.mtlm` file.
public struct SafetensorsImporter {
    /// The metadata key of the architecture config.
    public static let configKey = "mtl_model.config"

    public var writerOptions: ModelWriter.Options
    /// The architecture, when the checkpoint's metadata has none (or to use another one);
    /// nil reads it from `__metadata__["mtl_model.config"]`.
    public var architecture: Architecture?
    /// How the checkpoint's names become MODEL.md's (the wrappers trainers leave on them).
    public var names = NameMapping()
    static let pieceByteCount = 64 << 20

    public init(writerOptions: ModelWriter.Options = .init()) {
        self.writerOptions = writerOptions
    }

    /// Renames applied to every tensor name of a checkpoint: wrapper prefixes stripped first
    /// (`module.` of DistributedDataParallel, `_orig_mod.` of torch.compile), as often as they
    /// stand in front, then the first prefix rename that matches what is left.
    public struct NameMapping: Sendable, Hashable {
        public var renames: [(from: String, to: String)] = []
        public var strippedPrefixes: [String] = []

        public init(renames: [(from: String, to: String)] = [], strippedPrefixes: [String] = []) {
            self.renames = renames
            self.strippedPrefixes = strippedPrefixes
        }

        public func callAsFunction(_ name: String) -> String {
            var name = Substring(name)
            while let prefix = strippedPrefixes.first(where: { !$0.isEmpty && name.hasPrefix($0) }) { name = name.dropFirst(prefix.count) }
            if let rename = renames.first(where: { name.hasPrefix($0.from) }) { name = Substring(rename.to) + name.dropFirst(rename.from.count) }
            return String(name)
        }

        public static func == (a: NameMapping, b: NameMapping) -> Bool {
            a.strippedPrefixes == b.strippedPrefixes && a.renames.map(\.from) == b.renames.map(\.from) && a.renames.map(\.to) == b.renames.map(\.to)
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(strippedPrefixes)
            for rename in renames { hasher.combine(rename.from); hasher.combine(rename.to) }
        }
    }

    /// Prefixes that wrappers put on every parameter name, for the hint of an unexpected name.
    static let wrapperPrefixes = ["module.", "_orig_mod.", "model."]

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
            let architecture: Architecture
            if let given = self.architecture {
                architecture = given
            } else {
                guard let configText = checkpoint.metadata[Self.configKey] else {
                    throw MTLModelError(.invalidConfig, "no architecture config: __metadata__ has no \"\(Self.configKey)\" key; give the config JSON with --config CONFIG.json")
                }
                do {
                    architecture = try Architecture(configJSON: Data(configText.utf8))
                } catch {
                    throw MTLModelError(error.code, "in __metadata__[\"\(Self.configKey)\"]: \(error.message)", location: error.location)
                }
            }
            var byName: [String: SafetensorsFile.Tensor] = [:]
            for tensor in checkpoint.tensors {
                let name = names(tensor.name)
                if let other = byName[name] {
                    throw MTLModelError(.invalidArgument, "tensors \"\(TerminalText.escaped(other.name))\" and \"\(TerminalText.escaped(tensor.name))\" both become \"\(TerminalText.escaped(name))\" after renaming",
                                        location: .init(tensor: name))
                }
                byName[name] = tensor
            }
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
            let unexpectedNames = byName.keys.filter { !expected.contains($0) }.sorted()
            if let first = unexpectedNames.first, let unexpected = byName[first] {
                var message = "unexpected tensor: not part of the architecture"
                if unexpectedNames.count > 1 { message += " (one of \(unexpectedNames.count))" }
                if let wrappers = wrappersHiding(unexpected.name, expected: expected) {
                    message += "; its name without \(wrappers.map { "\"\($0)\"" }.joined(separator: " and ")) is: import with "
                        + wrappers.map { "--strip-prefix \($0)" }.joined(separator: " ")
                }
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

    /// The wrapper prefixes in front of `name` (outermost first) whose removal makes it a name
    /// of the architecture, if there are any.
    func wrappersHiding(_ name: String, expected: Set<String>) -> [String]? {
        var rest = Substring(name)
        var wrappers: [String] = []
        while let prefix = Self.wrapperPrefixes.first(where: { rest.hasPrefix($0) }) {
            rest = rest.dropFirst(prefix.count)
            wrappers.append(prefix)
            if expected.contains(names(String(rest))) { return wrappers }
        }
        return nil
    }

    /// Keyed tables map each id to one row: a key stored twice is an error. Checked in bounded
    /// memory (a partitioned hash, `KeyJoin.duplicateKey`).
    static func checkDistinct(_ bytes: UnsafeRawBufferPointer, tensor: String) throws(MTLModelError) {
        if let duplicate = KeyJoin.duplicateKey(in: KeyColumn(bytes), release: { _ in }) {
            throw MTLModelError(.malformed, "duplicate key \(duplicate) in a keyed table", location: .init(tensor: tensor))
        }
    }
}
