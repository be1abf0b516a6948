import CKernels

/// What `verify` found in a tensor's values: NaN and Inf in float tensors, a negative row count
/// or step, a quantized row whose scale or bias is not finite. Counted over any part of the
/// tensor and merged, so chunks can be scanned on several threads.
struct ValueCounts {
    var nanCount: UInt64 = 0
    var infCount: UInt64 = 0
    /// Finite values of magnitude ≥ 2^64: squared (as the interaction squares embedding
    /// values) they overflow float32, so a model holding one predicts Inf or NaN.
    var hugeCount: UInt64 = 0
    /// Index of the first NaN or Inf element, so that a message can name its row.
    var firstNonFinite: Int?
    /// Index of the first negative element (row counts, step, batch norm variances).
    var firstNegative: Int?
    /// Index of the first quantized row with a non-finite scale or bias.
    var badParameterRow: Int?

    mutating func merge(_ other: ValueCounts) {
        nanCount += other.nanCount
        infCount += other.infCount
        hugeCount += other.hugeCount
        firstNonFinite = [firstNonFinite, other.firstNonFinite].compactMap { $0 }.min()
        firstNegative = [firstNegative, other.firstNegative].compactMap { $0 }.min()
        badParameterRow = [badParameterRow, other.badParameterRow].compactMap { $0 }.min()
    }

    func problems(_ entry: TensorEntry) -> [VerificationProblem] {
        var problems: [VerificationProblem] = []
        if nanCount + infCount > 0 {
            let place = firstNonFinite.map { first in
                entry.shape.count >= 2 ? " (the first at row \(first / max(entry.columnCount, 1)), column \(first % max(entry.columnCount, 1)))" : " (the first at element \(first))"
            } ?? ""
            problems.append(.init(kind: .values, tensor: entry.name, byteOffset: nil, message: "\(nanCount) NaN and \(infCount) Inf values\(place)"))
        }
        if hugeCount > 0 {
            problems.append(.init(kind: .values, tensor: entry.name, byteOffset: nil,
                                  message: "\(hugeCount) values of magnitude ≥ 2^64 (1.8e19): their squares overflow float32, so predictions become Inf or NaN"))
        }
        if let badParameterRow {
            problems.append(.init(kind: .values, tensor: entry.name, byteOffset: nil, message: "row \(badParameterRow) has a scale or bias that is NaN or Inf"))
        }
        if let firstNegative {
            var why = ""
            if case .dense(_, _, .bnRunningVar)? = TensorName(entry.name) { why = ": a variance must be finite and not negative" }
            problems.append(.init(kind: .values, tensor: entry.name, byteOffset: nil, message: "negative value at element \(firstNegative)\(why)"))
        }
        return problems
    }

    /// The CRC-32 of `stored`, a chunk of the uncompressed tensor `entry`, and whether its
    /// values need no scan: float32 values all finite and of magnitude below 2^64, which the
    /// checksum's own pass over the bytes finds (`mtlm_crc32_f32_magnitude`), in a tensor whose
    /// values may be negative (a batch-norm variance may not: its chunks are scanned).
    static func checksum(_ stored: UnsafeRawBufferPointer, of entry: TensorEntry) -> (crc: UInt32, clean: Bool) {
        guard entry.dtype == .float32, let base = stored.baseAddress, !stored.isEmpty else { return (CRC32.checksum(stored), false) }
        if case .dense(_, _, .bnRunningVar)? = TensorName(entry.name) { return (CRC32.checksum(stored), false) }
        var magnitude: UInt32 = 0
        let crc = mtlm_crc32_f32_magnitude(0, base.assumingMemoryBound(to: UInt8.self), stored.count, &magnitude, Int32(MTLM_CRC32_BEST))
        return (crc, magnitude < 0x5F80_0000)
    }

    /// Scans whole elements of a non-quantized tensor, `bytes` starting at element `first`.
    mutating func scanElements(_ bytes: UnsafeRawBufferPointer, of entry: TensorEntry, first: Int) {
        guard let size = entry.dtype.elementByteCount else { return }
        let n = bytes.count / size
        switch entry.dtype {
        case .float32:
            let before = nanCount + infCount
            mtlm_count_nonfinite_f32(bytes.baseAddress?.assumingMemoryBound(to: UInt32.self), n, &nanCount, &infCount, &hugeCount)
            if nanCount + infCount > before, firstNonFinite == nil,
               let bad = (0..<n).first(where: { !bytes.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self).isFinite }) {
                firstNonFinite = first + bad
            }
            // A variance cannot be negative: batch norm would take the square root of it.
            if case .dense(_, _, .bnRunningVar)? = TensorName(entry.name), firstNegative == nil,
               let bad = (0..<n).first(where: { bytes.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) < 0 }) {
                firstNegative = first + bad
            }
        case .float16, .bfloat16:
            let exponentMask: UInt16 = entry.dtype == .float16 ? 0x7C00 : 0x7F80
            let mantissaMask: UInt16 = entry.dtype == .float16 ? 0x03FF : 0x007F
            let hugeBits: UInt16 = entry.dtype == .float16 ? 0xFFFF : 0x5F80
            mtlm_count_nonfinite_16(bytes.baseAddress?.assumingMemoryBound(to: UInt16.self), n, exponentMask, mantissaMask, hugeBits,
                                    &nanCount, &infCount, &hugeCount)
        case .int64 where entry.role == .rowCount || entry.role == .optimizerStep:
            if firstNegative == nil, let bad = (0..<n).first(where: { bytes.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) < 0 }) {
                firstNegative = first + bad
            }
        default:
            break
        }
    }

    /// Checks that each quantized row's scale and bias are finite (the codes always are).
    mutating func scanRow(_ row: UnsafeRawPointer, index: Int, of entry: TensorEntry) {
        let (scale, bias) = RowCodec.parameters(row, dtype: entry.dtype, columns: entry.columnCount)
        if badParameterRow == nil && !(scale.isFinite && bias.isFinite) { badParameterRow = index }
    }
}

/// Feeds a tensor's logical bytes, chunk by chunk in order, to `ValueCounts`: for tensors that
/// must be read in order (compressed ones, inflated chunk by chunk), where a quantized row or
/// an element can straddle two chunks.
struct ValueScanner {
    let entry: TensorEntry
    private(set) var counts = ValueCounts()
    private var partial: [UInt8] = []
    private var unitsSeen = 0

    init(_ entry: TensorEntry, counts: ValueCounts = ValueCounts()) {
        self.entry = entry
        self.counts = counts
    }

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        let unit = entry.dtype.elementByteCount ?? Int(entry.dtype.rowByteCount(columns: UInt64(entry.columnCount)))
        guard unit > 0 else { return }
        var rest = bytes
        if !partial.isEmpty {
            let take = min(unit - partial.count, rest.count)
            partial += rest[..<take]
            rest = UnsafeRawBufferPointer(rebasing: rest[take...])
            guard partial.count == unit else { return }
            partial.withUnsafeBytes { scan($0) }
            partial.removeAll(keepingCapacity: true)
        }
        let whole = rest.count / unit * unit
        scan(UnsafeRawBufferPointer(rebasing: rest[..<whole]))
        partial += rest[whole...]
    }

    private mutating func scan(_ bytes: UnsafeRawBufferPointer) {
        if entry.dtype.elementByteCount != nil {
            counts.scanElements(bytes, of: entry, first: unitsSeen)
            unitsSeen += bytes.count / entry.dtype.elementByteCount!
        } else {
            let rowBytes = Int(entry.dtype.rowByteCount(columns: UInt64(entry.columnCount)))
            for r in 0..<(bytes.count / rowBytes) { counts.scanRow(bytes.baseAddress! + r * rowBytes, index: unitsSeen + r, of: entry) }
            unitsSeen += bytes.count / rowBytes
        }
    }
}
