/// Which dtype each tensor gets.
public struct QuantizationPlan: Sendable, Hashable {
    /// Embedding tables and first-order tables (nil: as stored).
    public var embeddings: DType?
    /// Dense weights of shared layers, towers and heads (nil: as stored).
    public var dense: DType?
    /// Per-field overrides of `embeddings`.
    public var fields: [String: DType]
    /// Decode every other float tensor stored in another type back to float32 (dequantize).
    public var decodeOthers = false

    public init(embeddings: DType? = .int8Rowwise, dense: DType? = .float16, fields: [String: DType] = [:]) {
        self.embeddings = embeddings
        self.dense = dense
        self.fields = fields
    }

    /// Everything back to float32.
    public static var float32: QuantizationPlan {
        var plan = QuantizationPlan(embeddings: .float32, dense: .float32)
        plan.decodeOthers = true
        return plan
    }

    /// Names accepted for embedding tables: fp32, fp16, bf16, int8, int4.
    public static func embeddingType(named name: String) -> DType? {
        ["fp32": .float32, "fp16": .float16, "bf16": .bfloat16, "int8": .int8Rowwise, "int4": .int4Rowwise][name]
    }

    /// Names accepted for dense layers: fp32, fp16, bf16, int8 (symmetric per output channel).
    public static func denseType(named name: String) -> DType? {
        ["fp32": .float32, "fp16": .float16, "bf16": .bfloat16, "int8": .int8Symmetric][name]
    }

    /// The plan taken apart for `model`: one plan per table whose dtype it changes (that
    /// field's override alone), and one for the dense layers if it changes any, each named as
    /// `StepAttribution` shows it.
    func steps(for model: Model) -> [(name: String, plan: QuantizationPlan)] {
        var steps: [(name: String, plan: QuantizationPlan)] = []
        for field in model.architecture.fields {
            let entry = model.tensor(.embedding(field.name)).entry
            guard let type = target(for: entry), type != entry.dtype else { continue }
            steps.append(("quantize table \(field.name) (\(Self.name(of: type)))", QuantizationPlan(embeddings: nil, dense: nil, fields: [field.name: type])))
        }
        let dense = QuantizationPlan(embeddings: nil, dense: dense)
        if let type = self.dense, model.tensors.contains(where: { entry in dense.target(for: entry).map { $0 != entry.dtype } ?? false }) {
            steps.append(("quantize dense layers (\(Self.name(of: type)))", dense))
        }
        return steps
    }

    /// The option value that names `type` (`int8`, `fp16`, …).
    static func name(of type: DType) -> String {
        switch type {
        case .float32: "fp32"
        case .float16: "fp16"
        case .bfloat16: "bf16"
        case .int8Rowwise, .int8Symmetric: "int8"
        case .int4Rowwise: "int4"
        default: type.description
        }
    }

    /// Throws when a per-field override names no field of `architecture`.
    func check(_ architecture: Architecture) throws(MTLModelError) {
        for name in fields.keys.sorted() where !architecture.fields.contains(where: { $0.name == name }) {
            throw MTLModelError(.invalidArgument, "no field named \"\(name)\" (fields: \(architecture.fields.map(\.name).joined(separator: ", ")))")
        }
    }

    /// The dtype `entry` gets, or nil to keep it as stored.
    ///
    /// First-order tables hold one value per row: a per-row scale and bias would cost more
    /// than they save (9 or 5 bytes against 4), so int8 and int4 requests store them as float16.
    /// Biases, batch norm, interaction weights, keys and training state are kept.
    func target(for entry: TensorEntry) -> DType? {
        guard entry.dtype.isFloatingPoint else { return nil }
        guard entry.role == .parameter else { return decodeOthers && entry.dtype != .float32 ? .float32 : nil }
        switch TensorName(entry.name) {
        case .embedding(let field)?:
            return fields[field] ?? embeddings
        case .linear(let field)?:
            return (fields[field] ?? embeddings).map { $0.isQuantized ? .float16 : $0 }
        case .dense(_, _, .weight)?, .headWeight?:
            return dense
        default:
            return decodeOthers && entry.dtype != .float32 ? .float32 : nil
        }
    }
}
