/// Summary statistics of one tensor's elements, in double precision.
public struct TensorStatistics: Sendable, Hashable, Codable {
    public var elementCount: UInt64 = 0
    public var min: Double?
    public var max: Double?
    public var mean: Double?
    public var std: Double?
    public var zeroFraction: Double?
    public var nanCount: UInt64 = 0
    public var infCount: UInt64 = 0

    /// Statistics of `bytes` holding elements of `dtype`.
    public init(_ bytes: UnsafeRawBufferPointer, dtype: DType, columns: Int = 1) {
        var accumulator = Accumulator()
        accumulator.add(bytes, dtype: dtype, columns: columns)
        self = accumulator.statistics
    }

    init() {}

    /// Accumulates statistics over a tensor fed chunk by chunk: each chunk is reduced in two
    /// passes (sum, then squared deviations, while it is in cache) and merged with Chan et
    /// al.'s pairwise formula, which stays stable for billions of elements.
    ///
    /// - Complexity: O(n); the dtype is switched on once per chunk.
    struct Accumulator {
        private var count: UInt64 = 0
        private var finite: UInt64 = 0
        private var zeros: UInt64 = 0
        private var nan: UInt64 = 0
        private var inf: UInt64 = 0
        private var low = Double.infinity
        private var high = -Double.infinity
        private var mean = 0.0
        private var m2 = 0.0

        /// Adds the values of `bytes`: any number of elements of a plain dtype, or whole rows of
        /// `columns` values of a quantized one.
        mutating func add(_ bytes: UnsafeRawBufferPointer, dtype: DType, columns: Int = 1) {
            guard let size = dtype.elementByteCount else {
                let values = ElementDecoding.floats(bytes, dtype: dtype, columns: columns)
                values.withUnsafeBytes { add($0, dtype: .float32) }
                return
            }
            let n = bytes.count / size
            switch dtype {
            case .float32: add(n) { Double(bytes.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self)) }
            case .float16: add(n) { Double(RowCodec.float(fromHalf: bytes.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
            case .bfloat16: add(n) { Double(RowCodec.float(fromBFloat: bytes.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
            case .int64: add(n) { Double(bytes.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
            case .uint64: add(n) { Double(bytes.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
            case .int8Rowwise, .int4Rowwise, .int8Symmetric: break
            }
        }

        @inline(__always)
        private mutating func add(_ n: Int, _ value: (Int) -> Double) {
            var sum = 0.0, chunkFinite: UInt64 = 0, chunkZeros: UInt64 = 0, chunkNaN: UInt64 = 0, chunkInf: UInt64 = 0
            var chunkLow = Double.infinity, chunkHigh = -Double.infinity
            for i in 0..<n {
                let x = value(i)
                if x.isFinite {
                    sum += x
                    chunkFinite += 1
                    if x == 0 { chunkZeros += 1 }
                    chunkLow = Swift.min(chunkLow, x)
                    chunkHigh = Swift.max(chunkHigh, x)
                } else if x.isNaN {
                    chunkNaN += 1
                } else {
                    chunkInf += 1
                }
            }
            count += UInt64(n)
            nan += chunkNaN
            inf += chunkInf
            zeros += chunkZeros
            guard chunkFinite > 0 else { return }
            let chunkMean = sum / Double(chunkFinite)
            var chunkM2 = 0.0
            for i in 0..<n {
                let x = value(i)
                if x.isFinite { chunkM2 += (x - chunkMean) * (x - chunkMean) }
            }
            let total = Double(finite + chunkFinite)
            let delta = chunkMean - mean
            mean += delta * Double(chunkFinite) / total
            m2 += chunkM2 + delta * delta * Double(finite) * Double(chunkFinite) / total
            finite += chunkFinite
            low = Swift.min(low, chunkLow)
            high = Swift.max(high, chunkHigh)
        }

        var statistics: TensorStatistics {
            var result = TensorStatistics()
            result.elementCount = count
            result.nanCount = nan
            result.infCount = inf
            if count > 0 { result.zeroFraction = Double(zeros) / Double(count) }
            if finite > 0 {
                result.min = low
                result.max = high
                result.mean = mean
                result.std = (m2 / Double(finite)).squareRoot()
            }
            return result
        }
    }
}

extension ModelFile {
    /// Statistics of tensor `name`, streamed chunk by chunk in bounded memory (checksums are
    /// verified on the way unless `Options.verifyChecksumsOnAccess` is off).
    public func statistics(of name: String) throws -> TensorStatistics {
        var accumulator = TensorStatistics.Accumulator()
        try accumulate(name, into: &accumulator)
        return accumulator.statistics
    }

    /// Adds the elements of tensor `name` to `accumulator` (a part of a sharded tensor is one
    /// of several such calls).
    func accumulate(_ name: String, into accumulator: inout TensorStatistics.Accumulator) throws {
        guard let entry = entry(named: name) else {
            throw MTLModelError(.invalidArgument, "no tensor named \"\(name)\"", file: path, location: .init(tensor: name))
        }
        if entry.dtype.isQuantized {
            // Rows straddle chunks: read the whole tensor (mapped) and feed it in windows of rows.
            let rowBytes = Int(entry.dtype.rowByteCount(columns: UInt64(entry.columnCount)))
            try withTensorBytes(name) { bytes in
                let window = max(1, (1 << 20) / rowBytes) * rowBytes
                var start = 0
                while start < bytes.count {
                    let end = min(bytes.count, start + window)
                    accumulator.add(UnsafeRawBufferPointer(rebasing: bytes[start..<end]), dtype: entry.dtype, columns: entry.columnCount)
                    start = end
                }
            }
            file.release(entry.offset, entry.storedByteCount)
            return
        }
        try visitChunks(of: entry, checkingChecksums: checksChecksumsOnAccess) { visit in
            guard let chunk = visit.logical else { throw chunkError(visit, of: entry) }
            accumulator.add(chunk, dtype: entry.dtype)
        }
    }
}

extension ModelTensor {
    /// Statistics of the whole tensor, part by part when it is split across shards.
    public func statistics() throws -> TensorStatistics {
        var accumulator = TensorStatistics.Accumulator()
        for part in parts { try part.tensor.file.accumulate(part.tensor.name, into: &accumulator) }
        return accumulator.statistics
    }
}
