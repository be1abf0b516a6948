/// Element types of tensor payloads (little-endian). Raw values are the on-disk enum values of
/// `schema/mtl_model.proto` and never change meaning; 6...15 are reserved for quantized types.
public enum DType: UInt32, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    case float32 = 1
    case float16 = 2
    case bfloat16 = 3
    case int64 = 4
    case uint64 = 5

    public var byteCount: Int {
        switch self {
        case .float32: 4
        case .float16, .bfloat16: 2
        case .int64, .uint64: 8
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float16, .bfloat16: true
        case .int64, .uint64: false
        }
    }

    public var description: String {
        switch self {
        case .float32: "float32"
        case .float16: "float16"
        case .bfloat16: "bfloat16"
        case .int64: "int64"
        case .uint64: "uint64"
        }
    }

    public init?(name: String) {
        guard let match = DType.allCases.first(where: { $0.description == name }) else { return nil }
        self = match
    }
}

/// How a tensor is stored. Raw values are on-disk enum values.
public enum Compression: UInt32, Sendable, Hashable, Codable, CustomStringConvertible {
    case none = 0
    case zlib = 1

    public var description: String { self == .none ? "none" : "zlib" }
}

/// What a tensor is for. Raw values are on-disk enum values.
public enum TensorRole: UInt32, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    case parameter = 1
    case buffer = 2
    case keys = 3
    case optimizerSlot = 4
    case optimizerStep = 5
    case lossLogVar = 6
    case rowCount = 7

    /// Training state: dropped when a model is converted to its serving form.
    public var isTrainingState: Bool {
        switch self {
        case .optimizerSlot, .optimizerStep, .lossLogVar, .rowCount: true
        case .parameter, .buffer, .keys: false
        }
    }

    public var description: String {
        switch self {
        case .parameter: "parameter"
        case .buffer: "buffer"
        case .keys: "keys"
        case .optimizerSlot: "optimizer-slot"
        case .optimizerStep: "optimizer-step"
        case .lossLogVar: "loss-log-var"
        case .rowCount: "row-count"
        }
    }
}
