/// Element types of tensor payloads (little-endian). Raw values are the on-disk enum values of
/// `schema/mtl_model.proto` and never change meaning.
///
/// The quantized types (format 1.1) store a tensor of logical shape [..., C] row by row, each
/// row followed by its scale (and bias): see `schema/mtl_model.proto` and docs/FORMAT.md.
public enum DType: UInt32, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    case float32 = 1
    case float16 = 2
    case bfloat16 = 3
    case int64 = 4
    case uint64 = 5
    /// Per row: C uint8, float32 scale, float32 bias; value = scale · q + bias.
    case int8Rowwise = 6
    /// Per row: ⌈C/2⌉ bytes of 4-bit q (low nibble first), float16 scale, float16 bias.
    case int4Rowwise = 7
    /// Per row: C int8, float32 scale; value = scale · q (dense weights, one scale per output).
    case int8Symmetric = 8

    /// Bytes per element of the plain types; nil for the row-wise quantized ones.
    public var elementByteCount: Int? {
        switch self {
        case .float32: 4
        case .float16, .bfloat16: 2
        case .int64, .uint64: 8
        case .int8Rowwise, .int4Rowwise, .int8Symmetric: nil
        }
    }

    /// Whether elements are real numbers (plain floats or quantized ones).
    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float16, .bfloat16, .int8Rowwise, .int4Rowwise, .int8Symmetric: true
        case .int64, .uint64: false
        }
    }

    public var isQuantized: Bool { elementByteCount == nil }

    /// The oldest format version that has this dtype.
    var minimumVersion: FormatVersion {
        isQuantized ? FormatVersion(major: 1, minor: 1) : FormatVersion(major: 1, minor: 0)
    }

    /// Stored bytes of one row of `columns` values of a quantized type.
    public func rowByteCount(columns: UInt64) -> UInt64 {
        switch self {
        case .int8Rowwise: columns + 8
        case .int4Rowwise: (columns + 1) / 2 + 4
        case .int8Symmetric: columns + 4
        default: columns * UInt64(elementByteCount!)
        }
    }

    /// Stored bytes of a tensor of `shape`, or nil when that overflows 64 bits or the shape
    /// does not suit the type (quantized types need rank ≥ 2 and rows of at least one value).
    public func storedByteCount(shape: [UInt64]) -> UInt64? {
        guard let elements = Checked.product(shape) else { return nil }
        if let size = elementByteCount { return Checked.multiply(elements, UInt64(size)) }
        guard shape.count >= 2, let columns = shape.last, columns >= 1, columns < 1 << 32 else { return nil }
        return Checked.multiply(elements / columns, rowByteCount(columns: columns))
    }

    public var description: String {
        switch self {
        case .float32: "float32"
        case .float16: "float16"
        case .bfloat16: "bfloat16"
        case .int64: "int64"
        case .uint64: "uint64"
        case .int8Rowwise: "int8-rowwise"
        case .int4Rowwise: "int4-rowwise"
        case .int8Symmetric: "int8-symmetric"
        }
    }

    public init?(name: String) {
        guard let match = DType.allCases.first(where: { $0.description == name }) else { return nil }
        self = match
    }
}

/// How a tensor is stored. Raw values are on-disk enum values.
public enum Compression: UInt32, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
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
