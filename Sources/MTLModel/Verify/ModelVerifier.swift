/// One thing wrong with a model file.
public struct VerificationProblem: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable {
        case checksum, padding, structure, values, keys
    }

    public var kind: Kind
    public var tensor: String?
    public var byteOffset: UInt64?
    public var message: String
}

/// The result of checking a whole file.
public struct VerificationReport: Sendable, Hashable, Codable {
    public var file: String
    public var formatVersion: String
    public var tensorCount: Int
    public var checkedByteCount: UInt64
    public var problems: [VerificationProblem]
    public var isValid: Bool { problems.isEmpty }
}

/// Checks everything a reader does not check on open: every chunk checksum, zero padding,
/// the structure the architecture calls for, NaN / Inf in weights, distinct keys.
/// Together with the checks of `ModelFile.init` this covers every byte of the file.
public struct ModelVerifier {
    public init() {}

    /// - Complexity: reads every byte once, chunk by chunk; memory stays bounded (mapped pages
    ///   are released every 64 MiB) except for keyed tables, whose keys are copied (8 bytes a
    ///   row) to check them for duplicates.
    public func verify(_ model: ModelFile) -> VerificationReport {
        var problems: [VerificationProblem] = []
        var checked: UInt64 = 0
        let ordered = model.tensors.sorted { ($0.offset, $0.storedByteCount) < ($1.offset, $1.storedByteCount) }
        var cursor = model.footer.dataOffset
        for entry in ordered {
            problems += paddingProblems(model, from: cursor, to: entry.offset)
            var scanner = ValueScanner(entry)
            var intact = true
            model.visitChunks(of: entry, checkingChecksums: true) { visit in
                if let chunk = visit.logical {
                    if intact { scanner.add(chunk) }
                } else {
                    intact = false
                    let error = model.chunkError(visit, of: entry)
                    problems.append(.init(kind: .checksum, tensor: entry.name, byteOffset: visit.storedOffset, message: error.message))
                }
            }
            if intact {
                model.markChecksumsVerified(entry.name)
                problems += scanner.finish()
            }
            checked += entry.storedByteCount
            cursor = entry.offset + entry.storedByteCount
        }
        problems += paddingProblems(model, from: cursor, to: model.footer.manifestOffset)
        problems += structureProblems(model.manifest)
        return VerificationReport(file: model.path, formatVersion: model.version.description,
                                  tensorCount: model.tensors.count, checkedByteCount: checked, problems: problems)
    }

    private func paddingProblems(_ model: ModelFile, from start: UInt64, to end: UInt64) -> [VerificationProblem] {
        guard end > start else { return [] }
        let bytes = model.file.bytes(start, end - start)
        guard let bad = bytes.firstIndex(where: { $0 != 0 }) else { return [] }
        return [.init(kind: .padding, tensor: nil, byteOffset: start + UInt64(bad), message: "padding byte is not zero")]
    }

    /// Every tensor the architecture needs is present with its dtype, shape and role, and
    /// nothing else is there; each training-state group is complete or absent.
    public func structureProblems(_ manifest: Manifest) -> [VerificationProblem] {
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
            let dtypeFits = entry.dtype == spec.dtype || (spec.role == .parameter && spec.dtype == .float32 && entry.dtype.isFloatingPoint)
            if !dtypeFits || entry.shape != spec.shape {
                problems.append(.init(kind: .structure, tensor: spec.name, byteOffset: nil,
                                      message: "is \(entry.dtype) \(entry.shape), the architecture needs \(spec.role == .parameter && spec.dtype == .float32 ? "a float type" : spec.dtype.description) \(spec.shape)"))
            }
            if entry.role != spec.role {
                problems.append(.init(kind: .structure, tensor: spec.name, byteOffset: nil, message: "has role \(entry.role), expected \(spec.role)"))
            }
        }

        architecture.servingTensors.forEach(check)
        for group in TrainingStateGroup.allCases {
            let specs = architecture.trainingTensors(group)
            let found = specs.filter { present[$0.name] != nil }
            if !found.isEmpty { specs.forEach(check) }
        }
        for entry in manifest.tensors where !explained.contains(entry.name) {
            var message = "not part of the architecture"
            if entry.name.hasPrefix("optimizer.") && entry.name != "optimizer.step" {
                message += architecture.optimizer.map { " (a \($0.type.configName) optimizer has slots \($0.type.slots.joined(separator: ", ")))" }
                    ?? " (the architecture has no optimizer section)"
            }
            problems.append(.init(kind: .structure, tensor: entry.name, byteOffset: nil, message: message))
        }
        return problems
    }
}

extension ModelFile {
    /// Throws unless this file is a model with every tensor its architecture names (what
    /// commands that rewrite or export a whole model need); the error names the first
    /// structural problem, which `verify` reports in full.
    public func requireCompleteModel() throws(MTLModelError) {
        try requireModel()
        if let problem = ModelVerifier().structureProblems(manifest).first {
            throw MTLModelError(.malformed, "\(problem.message) (run mtl-model verify)", file: path, location: .init(tensor: problem.tensor))
        }
    }
}
