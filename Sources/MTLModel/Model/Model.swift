/// A model known to be usable: an open `ModelFile` whose structure was checked once, when the
/// value was built, against every rule `verify` checks from the manifest (each tensor the
/// architecture needs present with its role, dtype and shape; nothing unexplained; each
/// training-state group complete or absent) and whose batch-norm buffers are sane. Commands
/// take a `Model`, never a bare file, so none of them decides on its own how much to check,
/// and every tensor it asks for by `TensorName` exists with the shape its architecture says
/// (the way safetensors validates everything in `read_metadata`, so that every `TensorView`
/// is valid by construction).
///
/// Building one reads the manifest and the batch-norm variances only: O(tensors), whatever
/// the size of the weights. The checks that cost O(data) — distinct keys, finite values —
/// are made where a command reads that data anyway (the keyed index of `predict`, the pass of
/// `quantize` or `diff`, the rows a lookup reads), and fail with the same typed error there.
public final class Model: Sendable {
    /// The file opened: the model, or a sharded model's root.
    public let file: ModelFile
    /// A sharded model's shards (format 1.3), shard k at index k − 1; empty for one file.
    public let shards: [ModelFile]
    /// The model's manifest; for a sharded model the root's, its tensors the whole model's.
    public let manifest: Manifest
    private let entries: [TensorName: TensorEntry]
    /// Sharded tensors: the parts, in row order.
    private let parts: [TensorName: [ModelTensor.Part]]

    public var path: String { file.path }
    public var architecture: Architecture { file.architecture }
    /// Every tensor, in file order (a sharded model's in MODEL.md's order, each a whole tensor).
    public var tensors: [TensorEntry] { manifest.tensors }
    /// Whether the model's tables are split across shard files.
    public var isSharded: Bool { !shards.isEmpty }
    /// Every file of the model: the root (or the only file), then the shards.
    public var files: [ModelFile] { [file] + shards }

    /// Checks `file` and wraps it; a sharded model's root opens and checks its shards.
    ///
    /// - Throws: `.invalidArgument` for a delta (it holds only changes) or a shard (its root is
    ///   the model); `.malformed` naming the first structural problem and how many more there
    ///   are (`verify` lists them all).
    public init(_ file: ModelFile, options: ModelFile.Options = .init()) throws(MTLModelError) {
        guard file.manifest.delta == nil else {
            throw MTLModelError(.invalidArgument, FileKind.mtlmDelta.adviceForModel(path: file.path), file: file.path)
        }
        if let shard = file.manifest.shard {
            throw MTLModelError(.invalidArgument, "is shard \(shard.index) of \(shard.count) of the sharded model \(shard.rootFileName): open the root (verify checks a shard alone)", file: file.path)
        }
        var problems = ModelStructure.problems(file.manifest)
        var shards: [ModelFile] = []
        if problems.isEmpty, file.manifest.shards != nil {
            let set = ShardSet.open(root: file, options: options)
            problems = set.problems
            shards = set.files.compactMap { $0 }
        }
        let manifest = file.manifest.wholeModel
        var entries: [TensorName: TensorEntry] = [:]
        for entry in manifest.tensors {
            if let name = TensorName(entry.name) { entries[name] = entry }
        }
        if problems.isEmpty { problems = Self.bufferProblems(file, entries) }
        if let first = problems.first {
            let more = problems.count > 1 ? " (and \(problems.count - 1) more: run mtl-model verify for all of them)" : " (run mtl-model verify for all problems)"
            throw MTLModelError(.malformed, first.message + more, file: first.file ?? file.path, location: .init(tensor: first.tensor))
        }
        self.file = file
        self.shards = shards
        self.manifest = manifest
        self.entries = entries
        parts = Self.parts(shards, table: file.manifest.shards)
    }

    /// Opens and checks the model at `path`.
    public convenience init(path: String, options: ModelFile.Options = .init()) throws(MTLModelError) {
        try self.init(ModelFile(path: path, options: options), options: options)
    }

    private static func parts(_ shards: [ModelFile], table: ShardTable?) -> [TensorName: [ModelTensor.Part]] {
        guard let table else { return [:] }
        var parts: [TensorName: [ModelTensor.Part]] = [:]
        for tensor in table.tensors {
            guard let name = TensorName(tensor.name), let field = name.tableField else { continue }
            parts[name] = zip(shards, table.files).map { shard, record in
                let first = record.parts.first { $0.field == field }!.firstRow
                return ModelTensor.Part(tensor: ModelTensor(entry: shard.entry(named: tensor.name)!, file: shard), firstRow: Int(first))
            }
        }
        return parts
    }

    /// The tensor `name`, which the architecture calls for (and the model therefore has).
    ///
    /// - Precondition: `name` is a tensor of this architecture's serving form, or of a
    ///   training-state group the model holds (`has(_:)`).
    public func tensor(_ name: TensorName) -> ModelTensor {
        guard let tensor = tensorIfPresent(name) else { preconditionFailure("\(name) is not a tensor of this model") }
        return tensor
    }

    /// The tensor `name` if the model holds it (training state is optional), else nil.
    public func tensorIfPresent(_ name: TensorName) -> ModelTensor? {
        entries[name].map { ModelTensor(entry: $0, file: file, parts: parts[name]) }
    }

    /// The tensor of directory entry `entry` (every entry of a checked model has a MODEL.md name).
    public func tensor(_ entry: TensorEntry) -> ModelTensor {
        TensorName(entry.name).flatMap(tensorIfPresent) ?? ModelTensor(entry: entry, file: file)
    }

    /// Whether the model holds a training-state group (complete, by construction).
    public func has(_ group: TrainingStateGroup) -> Bool {
        architecture.trainingTensors(group).first.map { entries[$0.tensorName] != nil } ?? false
    }

    /// Batch-norm running variances that are negative or not finite: every prediction through
    /// that layer would be NaN. A few numbers per layer, read here so that no command has to.
    private static func bufferProblems(_ file: ModelFile, _ entries: [TensorName: TensorEntry]) -> [VerificationProblem] {
        var problems: [VerificationProblem] = []
        for (name, entry) in entries {
            guard case .dense(_, _, .bnRunningVar) = name else { continue }
            do {
                let values = try file.floats(entry.name)
                if let bad = values.firstIndex(where: { !($0 >= 0) || !$0.isFinite }) {
                    problems.append(.init(kind: .values, tensor: entry.name, byteOffset: nil,
                                          message: "element \(bad) is \(values[bad]): a variance must be finite and not negative"))
                }
            } catch let error as MTLModelError {
                problems.append(.init(kind: .checksum, tensor: entry.name, byteOffset: error.location.byteOffset, message: error.message))
            } catch {
                problems.append(.init(kind: .checksum, tensor: entry.name, byteOffset: nil, message: "\(error)"))
            }
        }
        return problems.sorted { ($0.tensor ?? "") < ($1.tensor ?? "") }
    }
}
