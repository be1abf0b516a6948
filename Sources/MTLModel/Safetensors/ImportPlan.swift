/// What `import` will write, decided before anything is written: each tensor the architecture
/// needs matched with the checkpoint's, the dtype it is stored in, and every problem — missing,
/// unexpected, wrong shape or dtype, duplicate keys, non-finite values — found at once, so that
/// a user fixes a checkpoint in one round, not one error at a time.
struct ImportPlan {
    struct Item {
        var spec: TensorSpec
        var tensor: SafetensorsCheckpoint.Tensor
        var storedDType: DType
    }

    private(set) var items: [Item] = []
    private(set) var groups: [String] = []
    private(set) var notes: [String] = []
    private var problems: [(tensor: String, message: String)] = []

    /// Most problems spelled out in the message; the rest are counted.
    static let shownProblems = 12

    init(architecture: Architecture, tensors byName: [String: SafetensorsCheckpoint.Tensor], importer: SafetensorsImporter,
         checkpoint: SafetensorsCheckpoint) throws(MTLModelError) {
        var specs = architecture.servingTensors
        var reportedMissing = Set<String>()
        for group in TrainingStateGroup.allCases {
            let groupSpecs = architecture.trainingTensors(group)
            let missing = groupSpecs.filter { byName[$0.name] == nil }
            guard missing.count < groupSpecs.count else { continue }
            specs += groupSpecs
            groups.append(group.rawValue)
            reportedMissing.formUnion(missing.map(\.name))
            if let first = missing.first {
                problems.append((first.name, "missing tensor: \(group.rawValue) are present for some tensors but not this one"
                                 + (missing.count > 1 ? " (nor \(missing.count - 1) more)" : "")))
            }
        }
        let expected = Set(specs.map(\.name))
        for name in byName.keys.sorted() where !expected.contains(name) {
            problems.append((name, Self.unexpected(byName[name]!.name, renamed: name, expected: expected, architecture, importer)))
        }
        var halves = 0, unsigned = 0
        for spec in specs {
            guard let tensor = byName[spec.name] else {
                if !reportedMissing.contains(spec.name) {
                    problems.append((spec.name, "missing tensor: the architecture needs \(spec.dtype) \(spec.shape)"))
                }
                continue
            }
            guard let stored = storedDType(tensor, spec, widen: importer.widenToFloat32) else { continue }
            if tensor.dtype.isHalfPrecision { halves += 1 }
            if tensor.dtype == .uint64 { unsigned += 1 }
            checkValues(tensor, spec, checkpoint, allowNonfinite: importer.allowNonfinite)
            items.append(Item(spec: spec, tensor: tensor, storedDType: stored))
        }
        if halves > 0 {
            notes.append(importer.widenToFloat32 ? "\(halves) half-precision tensors widened to float32"
                         : "\(halves) half-precision tensors stored as they are (--float32 widens them)")
        }
        if unsigned > 0 { notes.append("\(unsigned) uint64 keys tensors stored as int64 bits, as MODEL.md keeps them") }
        try throwProblems()
    }

    /// The dtype `tensor` is stored in, or nil (a problem recorded). Parameters may be half
    /// precision (kept, or widened on request); other float tensors only when widened; keys
    /// may be unsigned (the same bits).
    private mutating func storedDType(_ tensor: SafetensorsCheckpoint.Tensor, _ spec: TensorSpec, widen: Bool) -> DType? {
        guard tensor.shape == spec.shape else {
            let hint = tensor.shape.count == 2 && tensor.shape == spec.shape.reversed() ? " (transposed? PyTorch's nn.Linear stores [out, in])" : ""
            problems.append((spec.name, "is \(SafetensorsFile.name(of: tensor.dtype)) \(tensor.shape), the architecture needs \(SafetensorsFile.name(of: spec.dtype)) \(spec.shape)\(hint)"))
            return nil
        }
        if tensor.dtype == spec.dtype { return spec.dtype }
        if spec.dtype == .float32, tensor.dtype.isHalfPrecision {
            if widen { return .float32 }
            if spec.role == .parameter { return tensor.dtype }
        }
        if spec.role == .keys, tensor.dtype == .uint64 { return .int64 }
        var message = "is \(SafetensorsFile.name(of: tensor.dtype)) \(tensor.shape), the architecture needs \(SafetensorsFile.name(of: spec.dtype)) \(spec.shape)"
        if spec.dtype == .float32, tensor.dtype.isHalfPrecision { message += ": only parameters may be half precision; import with --float32 to widen it" }
        problems.append((spec.name, message))
        return nil
    }

    /// Distinct keys; and unless allowed, no NaN, Inf or value whose square overflows
    /// float32 (the policy of the checked model). Pages are released behind the scan.
    private mutating func checkValues(_ tensor: SafetensorsCheckpoint.Tensor, _ spec: TensorSpec, _ checkpoint: SafetensorsCheckpoint,
                                      allowNonfinite: Bool) {
        if spec.role == .keys {
            if let duplicate = KeyJoin.duplicateKey(in: KeyColumn(checkpoint.rows(tensor, rowByteCount: 8)), release: { _ in }) {
                problems.append((spec.name, "duplicate key \(duplicate) in a keyed table"))
            }
            checkpoint.release(tensor)
            return
        }
        let entry = TensorEntry(name: spec.name, dtype: tensor.dtype, shape: tensor.shape, role: spec.role, offset: 0,
                                storedByteCount: UInt64(tensor.byteCount), compression: .none, chunkByteCount: 0,
                                chunkCRC32: [], chunkStoredByteCounts: [])
        guard let size = tensor.dtype.elementByteCount else { return }
        var counts = ValueCounts()
        var offset = 0
        checkpoint.visit(tensor, pieceBytes: SafetensorsImporter.pieceByteCount) { piece in
            counts.scanElements(piece, of: entry, first: offset / size)
            offset += piece.count
        }
        if allowNonfinite { (counts.nanCount, counts.infCount, counts.hugeCount) = (0, 0, 0) }
        for problem in counts.problems(entry) {
            let kept = problem.message.contains("NaN") || problem.message.contains("2^64")
            problems.append((spec.name, problem.message + (kept ? " (import with --allow-nonfinite to keep them)" : "")))
        }
    }

    private static func unexpected(_ original: String, renamed name: String, expected: Set<String>, _ architecture: Architecture,
                                   _ importer: SafetensorsImporter) -> String {
        var message = "unexpected tensor: not part of the architecture"
        if let wrappers = importer.wrappersHiding(original, expected: expected) {
            message += "; its name without \(wrappers.map { "\"\($0)\"" }.joined(separator: " and ")) is: import with "
                + wrappers.map { "--strip-prefix \($0)" }.joined(separator: " ")
        } else if let closest = Spelling.closest(to: name, in: expected.sorted()) {
            message += "; did you mean \"\(closest)\"?"
        }
        if name.hasPrefix("optimizer."), name != TensorName.optimizerStep.description {
            message += architecture.optimizer.map { " (a \($0.type.configName) optimizer has slots \($0.type.slots.joined(separator: ", ")))" }
                ?? " (the config has no optimizer section, and the slot names match no optimizer's)"
        }
        return message
    }

    /// One problem: an error located at its tensor. More: one error listing them all.
    private func throwProblems() throws(MTLModelError) {
        guard let first = problems.first else { return }
        guard problems.count > 1 else {
            throw MTLModelError(.malformed, first.message, location: .init(tensor: first.tensor))
        }
        var listed = problems.prefix(Self.shownProblems).map { "tensor \"\(TerminalText.escaped($0.tensor))\": \($0.message)" }
        if problems.count > Self.shownProblems { listed.append("and \(problems.count - Self.shownProblems) more") }
        throw MTLModelError(.malformed, "\(problems.count) problems: " + listed.joined(separator: "; "))
    }
}

extension DType {
    var isHalfPrecision: Bool { self == .float16 || self == .bfloat16 }
}
