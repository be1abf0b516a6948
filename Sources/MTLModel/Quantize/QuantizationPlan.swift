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
