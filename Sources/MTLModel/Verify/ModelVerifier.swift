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

    /// - Complexity: reads every byte once; memory stays bounded (pages are released after use)
    ///   except for keyed tables, whose keys are copied to check them for duplicates.
    public func verify(_ model: ModelFile) -> VerificationReport {
        var problems: [VerificationProblem] = []
        var checked: UInt64 = 0
        let ordered = model.tensors.sorted { ($0.offset, $0.storedByteCount) < ($1.offset, $1.storedByteCount) }
        var cursor = model.footer.dataOffset
        for entry in ordered {
            problems += paddingProblems(model, from: cursor, to: entry.offset)
            let checksumErrors = model.checksumProblems(of: entry)
            for error in checksumErrors {
                problems.append(.init(kind: .checksum, tensor: entry.name, byteOffset: error.location.byteOffset, message: error.message))
            }
            if checksumErrors.isEmpty {
                model.markChecksumsVerified(entry.name)
                problems += valueProblems(model, entry)
            }
            model.file.release(entry.offset, entry.storedByteCount)
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

    private func valueProblems(_ model: ModelFile, _ entry: TensorEntry) -> [VerificationProblem] {
        let needsValues = entry.dtype.isFloatingPoint || entry.role == .keys || entry.role == .rowCount || entry.role == .optimizerStep
        guard needsValues, entry.byteCount > 0 else { return [] }
        do {
            return try model.withTensorBytes(entry.name) { bytes -> [VerificationProblem] in
                if entry.dtype.isFloatingPoint {
                    let stats = TensorStatistics(bytes, dtype: entry.dtype)
                    guard stats.nanCount + stats.infCount > 0 else { return [] }
                    return [.init(kind: .values, tensor: entry.name, byteOffset: nil,
                                  message: "\(stats.nanCount) NaN and \(stats.infCount) Inf values")]
                }
                if entry.role == .keys {
                    var keys = (0..<Int(entry.elementCount)).map { bytes.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self) }
                    keys.sort()
                    if let index = keys.indices.dropFirst().first(where: { keys[$0] == keys[$0 - 1] }) {
                        return [.init(kind: .keys, tensor: entry.name, byteOffset: nil, message: "duplicate key \(keys[index])")]
                    }
                    return []
                }
                // Counts and the step are int64 that must not be negative.
                let count = Int(entry.elementCount)
                if let bad = (0..<count).first(where: { bytes.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) < 0 }) {
                    return [.init(kind: .values, tensor: entry.name, byteOffset: entry.offset + UInt64(bad * 8), message: "negative value at element \(bad)")]
                }
                return []
            }
        } catch let error as MTLModelError {
            return [.init(kind: .values, tensor: entry.name, byteOffset: error.location.byteOffset, message: error.message)]
        } catch {
            return [.init(kind: .values, tensor: entry.name, byteOffset: nil, message: "\(error)")]
        }
    }

    /// Every tensor the architecture needs is present with its dtype, shape and role, and
    /// nothing else is there; each training-state group is complete or absent.
    public func structureProblems(_ manifest: Manifest) -> [VerificationProblem] {
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
            if entry.dtype != spec.dtype || entry.shape != spec.shape {
                problems.append(.init(kind: .structure, tensor: spec.name, byteOffset: nil,
                                      message: "is \(entry.dtype) \(entry.shape), the architecture needs \(spec.dtype) \(spec.shape)"))
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
