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
    /// Shards of the model written (format 1.3); 1 writes one file.
    public var shardCount = 1
    /// The command recorded as the model's provenance source (default: `import PATH`).
    public var source: String?
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

    /// Keep NaN, Inf and values whose squares overflow float32 (refused by default, naming
    /// the tensor and the first such element).
    public var allowNonfinite = false
    /// Store float16 / bfloat16 weights as float32 (by default they are stored as they are).
    public var widenToFloat32 = false

    public struct Result: Sendable, Codable {
        public var tensorCount: Int
        public var parameterCount: UInt64
        public var trainingStateGroups: [String]
        /// What the config did not say and the tensors did (the optimizer, the loss weighting).
        public var inferred: [String] = []
        /// How half-precision and unsigned tensors were stored.
        public var notes: [String] = []
    }

    /// Checks the checkpoint completely (config, every tensor's presence, dtype and shape,
    /// keys distinct, values finite) — every problem listed at once —, then streams its
    /// tensors into `output` in MODEL.md order.
    ///
    /// - Throws: `MTLModelError` naming the checkpoint and the tensor or config key.
    @discardableResult
    public func importCheckpoint(_ path: String, to output: String) throws(MTLModelError) -> Result {
        guard (1...ReadLimits().maxShardCount).contains(shardCount) else {
            throw MTLModelError(.invalidArgument, "--shards must be in 1...\(ReadLimits().maxShardCount)")
        }
        guard shardCount > 1 else { return try importFile(path, to: output) }
        // A sharded model is split from the imported file, staged beside the target under the
        // target's temporary prefix (so a killed import leaves nothing the next write keeps).
        let slash = output.lastIndex(of: "/")
        let staging = AtomicOutputFile.pendingPath(directory: slash.map { String(output[...$0]) } ?? "",
                                                   base: slash.map { String(output[output.index(after: $0)...]) } ?? output, suffix: "-import")
        defer { unlink(staging) }
        let result = try importFile(path, to: staging)
        var options = ModelSharder.Options(shardCount: shardCount)
        options.synchronize = writerOptions.synchronize
        options.source = source ?? "import \(path) --shards \(shardCount)"
        do {
            _ = try ModelSharder().shard(Model(path: staging), to: output, options: options)
        } catch let error as MTLModelError {
            throw error
        } catch {
            throw MTLModelError(.io, "\(error)", file: output)
        }
        return result
    }

    /// Imports the checkpoint at `path` into one file at `output`.
    private func importFile(_ path: String, to output: String) throws(MTLModelError) -> Result {
        let checkpoint = try SafetensorsCheckpoint(path: path)
        do throws(MTLModelError) {
            var architecture = try resolveArchitecture(checkpoint)
            let byName = try renamedTensors(checkpoint)
            let inferred = Self.inferTrainingSections(&architecture, from: Set(byName.keys))
            let plan = try ImportPlan(architecture: architecture, tensors: byName, importer: self, checkpoint: checkpoint)
            let writer = try ModelWriter(path: output, options: writerOptions)
            for item in plan.items {
                try writer.beginTensor(item.spec.name, dtype: item.storedDType, shape: item.spec.shape, role: item.spec.role)
                try stream(item, from: checkpoint, to: writer)
                try writer.endTensor()
            }
            let metadata = checkpoint.metadata.filter { $0.key != Self.configKey }.sorted { $0.key < $1.key }
                .map { MetadataEntry(key: $0.key, value: $0.value) }
            try writer.finish(architecture: architecture,
                              provenance: Provenance(createdUnixSeconds: Int64(Date().timeIntervalSince1970), source: source ?? "import \(path)"),
                              metadata: metadata)
            let parameters = plan.items.filter { !$0.spec.role.isTrainingState }.reduce(UInt64(0)) { $0 + $1.spec.elementCount }
            return Result(tensorCount: plan.items.count, parameterCount: parameters, trainingStateGroups: plan.groups,
                          inferred: inferred, notes: plan.notes)
        } catch {
            throw error.inFile(path)
        }
    }

    private func resolveArchitecture(_ checkpoint: SafetensorsCheckpoint) throws(MTLModelError) -> Architecture {
        if let architecture { return architecture }
        guard let configText = checkpoint.metadata[Self.configKey] else {
            throw MTLModelError(.invalidConfig, "no architecture config: __metadata__ has no \"\(Self.configKey)\" key; give the config JSON with --config CONFIG.json")
        }
        do {
            return try Architecture(configJSON: Data(configText.utf8))
        } catch {
            throw MTLModelError(error.code, "in __metadata__[\"\(Self.configKey)\"]: \(error.message)", location: error.location)
        }
    }

    /// The checkpoint's tensors under their MODEL.md names (`names` applied).
    private func renamedTensors(_ checkpoint: SafetensorsCheckpoint) throws(MTLModelError) -> [String: SafetensorsCheckpoint.Tensor] {
        var byName: [String: SafetensorsCheckpoint.Tensor] = [:]
        for tensor in checkpoint.tensors {
            let name = names(tensor.name)
            if let other = byName[name] {
                throw MTLModelError(.invalidArgument, "tensors \"\(TerminalText.escaped(other.name))\" and \"\(TerminalText.escaped(tensor.name))\" both become \"\(TerminalText.escaped(name))\" after renaming",
                                    location: .init(tensor: name))
            }
            byName[name] = tensor
        }
        return byName
    }

    /// Trainers rarely write the optimizer or the loss weighting into the architecture: the
    /// tensors say them. Slot names give the optimizer (`sum` Adagrad, `exp_avg` / `exp_avg_sq`
    /// Adam, `z` / `n` FTRL); `loss.log_var` gives uncertainty weighting, log-var
    /// parameterized. Returns what was inferred, in words.
    static func inferTrainingSections(_ architecture: inout Architecture, from names: Set<String>) -> [String] {
        var inferred: [String] = []
        if architecture.optimizer == nil {
            let slots = Set(names.compactMap { name -> String? in
                guard case .optimizerSlot(_, let slot)? = TensorName(name) else { return nil }
                return slot
            })
            if let type = Architecture.OptimizerType.allCases.first(where: { !$0.slots.isEmpty && Set($0.slots) == slots }) {
                architecture.optimizer = .init(type: type, parameters: [])
                inferred.append("optimizer \(type.configName) (its slots \(type.slots.joined(separator: ", ")))")
            }
        }
        if architecture.loss == nil, names.contains(TensorName.lossLogVar.description) {
            architecture.loss = .init(weighting: "uncertainty", parameterization: "log_var")
            inferred.append("loss weighting uncertainty, log_var parameterization (loss.log_var)")
        }
        return inferred
    }

    /// Copies one tensor (its pieces in row order when the checkpoint splits it), 64 MiB at a
    /// time (16 Mi values when widening), each piece's pages released once written: the
    /// resident set stays bounded whatever the size of a table.
    private func stream(_ item: ImportPlan.Item, from checkpoint: SafetensorsCheckpoint, to writer: ModelWriter) throws(MTLModelError) {
        let widen = item.storedDType != item.tensor.dtype && item.storedDType == .float32
        var floats: [Float] = []
        try checkpoint.visit(item.tensor, pieceBytes: widen ? Self.pieceByteCount / 4 : Self.pieceByteCount) { piece throws(MTLModelError) in
            Progress.advance(piece.count)
            guard widen else { return try writer.write(piece) }
            let count = piece.count / 2
            floats.removeAll(keepingCapacity: true)
            floats.reserveCapacity(count)
            for i in 0..<count {
                let bits = piece.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)
                floats.append(item.tensor.dtype == .float16 ? RowCodec.float(fromHalf: bits) : RowCodec.float(fromBFloat: bits))
            }
            try writer.write(floats[...])
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

}
