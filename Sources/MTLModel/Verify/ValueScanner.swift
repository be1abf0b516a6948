/// Checks a tensor's values chunk by chunk during `verify`: NaN and Inf in float tensors,
/// negative row counts or step, duplicate keys.
struct ValueScanner {
    let entry: TensorEntry
    private var nanCount: UInt64 = 0
    private var infCount: UInt64 = 0
    private var elementsSeen = 0
    private var firstNegative: Int?
    private var keys: [UInt64] = []

    init(_ entry: TensorEntry) {
        self.entry = entry
        if entry.role == .keys { keys.reserveCapacity(Int(entry.elementCount)) }
    }

    /// Quantized tensors: bytes of a row split across two chunks.
    private var partialRow: [UInt8] = []
    private var badParameterRow: Int?
    private var rowsSeen = 0

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        guard let size = entry.dtype.elementByteCount else { return addQuantized(bytes) }
        let n = bytes.count / size
        defer { elementsSeen += n }
        switch entry.dtype {
        case .float32:
            // Exponent all ones: Inf when the mantissa is zero, NaN otherwise. Branch-free so
            // the loop vectorizes.
            for i in 0..<n {
                let bits = bytes.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)
                let special: UInt64 = (bits & 0x7F80_0000) == 0x7F80_0000 ? 1 : 0
                let isNaN: UInt64 = (bits & 0x007F_FFFF) != 0 ? special : 0
                nanCount += isNaN
                infCount += special - isNaN
            }
        case .float16, .bfloat16:
            let exponentMask: UInt16 = entry.dtype == .float16 ? 0x7C00 : 0x7F80
            let mantissaMask: UInt16 = entry.dtype == .float16 ? 0x03FF : 0x007F
            for i in 0..<n {
                let bits = bytes.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)
                let special: UInt64 = (bits & exponentMask) == exponentMask ? 1 : 0
                let isNaN: UInt64 = (bits & mantissaMask) != 0 ? special : 0
                nanCount += isNaN
                infCount += special - isNaN
            }
        case .int64, .uint64:
            if entry.role == .keys {
                for i in 0..<n { keys.append(bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
            } else if entry.role == .rowCount || entry.role == .optimizerStep, firstNegative == nil, entry.dtype == .int64 {
                if let bad = (0..<n).first(where: { bytes.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) < 0 }) {
                    firstNegative = elementsSeen + bad
                }
            }
        case .int8Rowwise, .int4Rowwise, .int8Symmetric:
            break
        }
    }

    /// Checks that each row's scale and bias are finite (the quantized values always are).
    private mutating func addQuantized(_ bytes: UnsafeRawBufferPointer) {
        let columns = entry.columnCount
        let rowBytes = Int(entry.dtype.rowByteCount(columns: UInt64(columns)))
        var rest = bytes
        if !partialRow.isEmpty {
            let take = min(rowBytes - partialRow.count, rest.count)
            partialRow += rest[..<take]
            rest = UnsafeRawBufferPointer(rebasing: rest[take...])
            guard partialRow.count == rowBytes else { return }
            partialRow.withUnsafeBytes { checkRow($0.baseAddress!, columns: columns) }
            partialRow.removeAll(keepingCapacity: true)
        }
        let rows = rest.count / rowBytes
        for r in 0..<rows { checkRow(rest.baseAddress! + r * rowBytes, columns: columns) }
        partialRow += rest[(rows * rowBytes)...]
    }

    private mutating func checkRow(_ row: UnsafeRawPointer, columns: Int) {
        let (scale, bias) = RowCodec.parameters(row, dtype: entry.dtype, columns: columns)
        if badParameterRow == nil && !(scale.isFinite && bias.isFinite) { badParameterRow = rowsSeen }
        rowsSeen += 1
    }

    /// The problems found, once every chunk was added.
    mutating func finish() -> [VerificationProblem] {
        var problems: [VerificationProblem] = []
        if nanCount + infCount > 0 {
            problems.append(.init(kind: .values, tensor: entry.name, byteOffset: nil, message: "\(nanCount) NaN and \(infCount) Inf values"))
        }
        if let badParameterRow {
            problems.append(.init(kind: .values, tensor: entry.name, byteOffset: nil, message: "row \(badParameterRow) has a scale or bias that is NaN or Inf"))
        }
        if let firstNegative {
            problems.append(.init(kind: .values, tensor: entry.name, byteOffset: nil, message: "negative value at element \(firstNegative)"))
        }
        if !keys.isEmpty {
            // Sorting a copy needs 8 bytes per key, far less than a hash set.
            keys.sort()
            if let index = keys.indices.dropFirst().first(where: { keys[$0] == keys[$0 - 1] }) {
                problems.append(.init(kind: .keys, tensor: entry.name, byteOffset: nil, message: "duplicate key \(keys[index])"))
            }
            keys = []
        }
        return problems
    }
}
