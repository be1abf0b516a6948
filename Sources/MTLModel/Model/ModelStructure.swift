/// The structural rules of a model (MODEL.md's tensors for its architecture), checked from the
/// manifest alone: what `Model` requires of every file it accepts, and what `verify` reports.
enum ModelStructure {
    /// Every tensor the architecture needs is present with its dtype, shape and role, nothing
    /// else is there, and each training-state group is complete or absent.
    ///
    /// - Complexity: O(tensors): reads the manifest only.
    static func problems(_ manifest: Manifest) -> [VerificationProblem] {
        if manifest.delta != nil { return ModelDelta.structureProblems(manifest) }
        let architecture = manifest.architecture
        var present: [String: TensorEntry] = [:]
        for entry in manifest.tensors { present[entry.name] = entry }
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

        architecture.servingTensors.forEach(check)
        for group in TrainingStateGroup.allCases {
            let specs = architecture.trainingTensors(group)
            if specs.contains(where: { present[$0.name] != nil }) { specs.forEach(check) }
        }
        for entry in manifest.tensors where !explained.contains(entry.name) {
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
