/// The structural rules of a model (MODEL.md's tensors for its architecture), checked from the
/// manifest alone: what `Model` requires of every file it accepts, and what `verify` reports.
enum ModelStructure {
    /// Every tensor the architecture needs is present with its dtype, shape and role, nothing
    /// else is there, and each training-state group is complete or absent.
    ///
    /// - Complexity: O(tensors): reads the manifest only.
    ///
    /// A sharded model's root is checked as the whole model (its tensors and the shard
    /// table's), a shard as the rows of its parts (`shardProblems`).
    static func problems(_ manifest: Manifest) -> [VerificationProblem] {
        if manifest.delta != nil { return ModelDelta.structureProblems(manifest) }
        if let shard = manifest.shard { return shardProblems(manifest, shard) }
        if let table = manifest.shards { return rootProblems(manifest, table) }
        return problems(manifest.architecture, manifest.tensors) { $0 }
    }

    /// A root stores no table tensor, lists every one in its shard table, and the two together
    /// are the model.
    private static func rootProblems(_ manifest: Manifest, _ table: ShardTable) -> [VerificationProblem] {
        var problems: [VerificationProblem] = []
        for entry in manifest.tensors where TensorName(entry.name)?.tableField != nil {
            problems.append(.init(kind: .structure, tensor: entry.name, byteOffset: nil, message: "a table tensor stored in the root of a sharded model (its rows belong in the shards)"))
        }
        for tensor in table.tensors where TensorName(tensor.name)?.tableField == nil {
            problems.append(.init(kind: .structure, tensor: tensor.name, byteOffset: nil, message: "listed in the shard table, but only table tensors (one row per id) are split across shards"))
        }
        return problems + self.problems(manifest.architecture, manifest.wholeModel.tensors) { $0 }
    }

    /// A shard holds, for each field of its parts, that field's table tensors with the part's
    /// rows, and nothing else.
    private static func shardProblems(_ manifest: Manifest, _ shard: ShardIdentity) -> [VerificationProblem] {
        problems(manifest.architecture, manifest.tensors) { localSpec($0, in: manifest) }
    }

    /// `spec` as the file of `manifest` holds it: a shard the table tensors of its parts'
    /// fields, with the part's rows; a root every other tensor; one file every tensor.
    static func localSpec(_ spec: TensorSpec, in manifest: Manifest) -> TensorSpec? {
        if manifest.shards != nil { return spec.tensorName.tableField == nil ? spec : nil }
        guard let shard = manifest.shard else { return spec }
        guard let field = spec.tensorName.tableField, let part = shard.parts.first(where: { $0.field == field }) else { return nil }
        var local = spec
        local.shape[0] = part.rowCount
        return local
    }

    /// The check itself, of `tensors` against the specs of `architecture` that `expected` keeps
    /// (and reshapes).
    private static func problems(_ architecture: Architecture, _ tensors: [TensorEntry],
                                 expected: (TensorSpec) -> TensorSpec?) -> [VerificationProblem] {
        var present: [String: TensorEntry] = [:]
        for entry in tensors { present[entry.name] = entry }
        var explained = Set<String>()
        var problems: [VerificationProblem] = []

        func check(_ spec: TensorSpec) {
            explained.insert(spec.name)
            guard let entry = present[spec.name] else {
                problems.append(.init(kind: .structure, tensor: spec.name, byteOffset: nil, message: "missing (the architecture needs \(spec.dtype) \(spec.shape))"))
                return
            }
            // Parameters may be stored in any float or quantized type (quantize writes them so).
            let anyFloat = spec.role == .parameter && spec.dtype == .float32
            let dtypeFits = entry.dtype == spec.dtype || (anyFloat && entry.dtype.isFloatingPoint)
            if !dtypeFits || entry.shape != spec.shape {
                problems.append(.init(kind: .structure, tensor: spec.name, byteOffset: nil,
                                      message: "is \(entry.dtype) \(entry.shape), the architecture needs \(anyFloat ? "a float type" : spec.dtype.description) \(spec.shape)"
                                        + shapeHint(entry.shape, spec.shape)))
            }
            if entry.role != spec.role {
                problems.append(.init(kind: .structure, tensor: spec.name, byteOffset: nil, message: "has role \(entry.role), expected \(spec.role)"))
            }
        }

        architecture.servingTensors.compactMap(expected).forEach(check)
        for group in TrainingStateGroup.allCases {
            let specs = architecture.trainingTensors(group).compactMap(expected)
            if specs.contains(where: { present[$0.name] != nil }) { specs.forEach(check) }
        }
        for entry in tensors where !explained.contains(entry.name) {
            problems.append(.init(kind: .structure, tensor: entry.name, byteOffset: nil, message: unexplained(entry.name, architecture)))
        }
        return problems
    }

    /// Why a tensor the architecture does not call for is there, as far as its name tells.
    private static func unexplained(_ name: String, _ architecture: Architecture) -> String {
        var message = "not part of the architecture"
        switch TensorName(name) {
        case .optimizerSlot?:
            message += architecture.optimizer.map { " (a \($0.type.configName) optimizer has slots \($0.type.slots.joined(separator: ", ")))" }
                ?? " (the architecture has no optimizer section)"
        case .keys(let field)?:
            if let mapping = architecture.fields.first(where: { $0.name == field })?.mapping {
                message += " (field \"\(field)\" is \(mapping.configName), and only keyed fields have keys)"
            }
        default:
            if let field = TensorName(name)?.tableField, !architecture.fields.contains(where: { $0.name == field }) {
                message += " (the architecture has no field \"\(field)\")"
            }
        }
        return message
    }

    /// " (transposed?)" when the shape is the needed one reversed.
    private static func shapeHint(_ found: [UInt64], _ needed: [UInt64]) -> String {
        found.count == 2 && found != needed && found == needed.reversed() ? " (transposed? PyTorch's nn.Linear stores [out, in])" : ""
    }
}
