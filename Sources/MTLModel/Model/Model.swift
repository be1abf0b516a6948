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
    public let file: ModelFile
    private let entries: [TensorName: TensorEntry]

    public var path: String { file.path }
    public var architecture: Architecture { file.architecture }
    public var manifest: Manifest { file.manifest }
    /// Every tensor, in file order.
    public var tensors: [TensorEntry] { file.tensors }

    /// Checks `file` and wraps it.
    ///
    /// - Throws: `.invalidArgument` for a delta (it holds only changes); `.malformed` naming
    ///   the first structural problem and how many more there are (`verify` lists them all).
    public init(_ file: ModelFile) throws(MTLModelError) {
        guard file.manifest.delta == nil else {
            throw MTLModelError(.invalidArgument, FileKind.mtlmDelta.adviceForModel(path: file.path), file: file.path)
        }
        var problems = ModelStructure.problems(file.manifest)
        var entries: [TensorName: TensorEntry] = [:]
        for entry in file.tensors {
            if let name = TensorName(entry.name) { entries[name] = entry }
        }
        if problems.isEmpty { problems = Self.bufferProblems(file, entries) }
        if let first = problems.first {
            let more = problems.count > 1 ? " (and \(problems.count - 1) more: run mtl-model verify for all of them)" : " (run mtl-model verify for all problems)"
            throw MTLModelError(.malformed, first.message + more, file: file.path, location: .init(tensor: first.tensor))
        }
        self.file = file
        self.entries = entries
    }

    /// Opens and checks the model at `path`.
    public convenience init(path: String, options: ModelFile.Options = .init()) throws(MTLModelError) {
        try self.init(ModelFile(path: path, options: options))
    }

    /// The tensor `name`, which the architecture calls for (and the model therefore has).
    ///
    /// - Precondition: `name` is a tensor of this architecture's serving form, or of a
    ///   training-state group the model holds (`has(_:)`).
    public func tensor(_ name: TensorName) -> ModelTensor {
        guard let entry = entries[name] else { preconditionFailure("\(name) is not a tensor of this model") }
        return ModelTensor(entry: entry, file: file)
    }

    /// The tensor `name` if the model holds it (training state is optional), else nil.
    public func tensorIfPresent(_ name: TensorName) -> ModelTensor? {
        entries[name].map { ModelTensor(entry: $0, file: file) }
    }

    /// The tensor of directory entry `entry` (every entry of a checked model has a MODEL.md name).
    public func tensor(_ entry: TensorEntry) -> ModelTensor { ModelTensor(entry: entry, file: file) }

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
