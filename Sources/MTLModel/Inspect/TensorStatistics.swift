import CKernels
import Foundation

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
            case .float32: merge(Self.figures(float32: bytes))
            case .float16: add(n) { Double(RowCodec.float(fromHalf: bytes.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
            case .bfloat16: add(n) { Double(RowCodec.float(fromBFloat: bytes.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
            case .int64: add(n) { Double(bytes.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
            case .uint64: add(n) { Double(bytes.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
            case .int8Rowwise, .int4Rowwise, .int8Symmetric: break
            }
        }

        /// Adds n values given one by one: every dtype but float32 (which `mtlm_stats_f32` takes,
        /// as this loop computes it; a test holds the two to the same doubles).
        @inline(__always)
        mutating func add(_ n: Int, _ value: (Int) -> Double) {
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
            var figures = mtlm_stats(finite: chunkFinite, zeros: chunkZeros, nan: chunkNaN, inf: chunkInf, low: chunkLow, high: chunkHigh, mean: 0, m2: 0)
            if chunkFinite > 0 {
                let chunkMean = sum / Double(chunkFinite)
                var chunkM2 = 0.0
                for i in 0..<n {
                    let x = value(i)
                    if x.isFinite { chunkM2 += (x - chunkMean) * (x - chunkMean) }
                }
                figures.mean = chunkMean
                figures.m2 = chunkM2
            }
            merge(figures)
        }

        /// The figures of a chunk of float32 values (`mtlm_stats_f32`: the loop above in C).
        static func figures(float32 bytes: UnsafeRawBufferPointer) -> mtlm_stats {
            var figures = mtlm_stats()
            mtlm_stats_f32(bytes.baseAddress?.assumingMemoryBound(to: Float.self), bytes.count / 4, &figures)
            return figures
        }

        /// Adds a chunk's figures: counts, and the finite values' mean and M2 by Chan et al.'s
        /// pairwise formula. Chunks merged in order give the same doubles however they were
        /// computed (one thread or several).
        mutating func merge(_ chunk: mtlm_stats) {
            count += chunk.finite + chunk.nan + chunk.inf
            nan += chunk.nan
            inf += chunk.inf
            zeros += chunk.zeros
            guard chunk.finite > 0 else { return }
            let total = Double(finite + chunk.finite)
            let delta = chunk.mean - mean
            mean += delta * Double(chunk.finite) / total
            m2 += chunk.m2 + delta * delta * Double(finite) * Double(chunk.finite) / total
            finite += chunk.finite
            low = Swift.min(low, chunk.low)
            high = Swift.max(high, chunk.high)
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
            // Rows straddle chunks: read the whole tensor (mapped) and feed it in windows of rows
            // of about 1 MiB, the pages read released behind every 16 MiB (a quantized table
            // of billions of rows would otherwise stay resident to its end).
            let rowBytes = Int(entry.dtype.rowByteCount(columns: UInt64(entry.columnCount)))
            try withTensorBytes(name) { bytes in
                let window = max(1, (1 << 20) / rowBytes) * rowBytes
                var start = 0, released = 0
                while start < bytes.count {
                    let end = min(bytes.count, start + window)
                    accumulator.add(UnsafeRawBufferPointer(rebasing: bytes[start..<end]), dtype: entry.dtype, columns: entry.columnCount)
                    start = end
                    if entry.compression == .none && (start - released >= 16 << 20 || start == bytes.count) {
                        file.release(entry.offset + UInt64(released), UInt64(start - released))
                        released = start
                    }
                }
            }
            // A compressed tensor was inflated from its mapped chunks, read whole: released here.
            if entry.compression != .none { file.release(entry.offset, entry.storedByteCount) }
            return
        }
        if entry.dtype == .float32, entry.compression == .none, entry.chunkCount > Self.stretchChunkCount {
            for figures in try float32Figures(entry) { accumulator.merge(figures) }
            return
        }
        try visitChunks(of: entry, checkingChecksums: checksChecksumsOnAccess) { visit in
            guard let chunk = visit.logical else { throw chunkError(visit, of: entry) }
            accumulator.add(chunk, dtype: entry.dtype)
        }
    }

    /// The figures of each chunk of a large uncompressed float32 tensor, in chunk order:
    /// stretches of chunks on every core (checksums checked on the way unless they were, or
    /// checks are off), pages released behind each stretch.
    private func float32Figures(_ entry: TensorEntry) throws -> [mtlm_stats] {
        let checkCRC = checksChecksumsOnAccess && !checksumsVerified(entry.name)
        let stretches = forEachStretch(of: entry, [mtlm_stats]()) { figures, chunk, offset, stored in
            if checkCRC, case let crc = CRC32.checksum(stored), crc != entry.chunkCRC32[chunk] {
                return chunkError(ChunkVisit(index: chunk, storedOffset: offset, checksumMismatch: (entry.chunkCRC32[chunk], crc)), of: entry)
            }
            figures.append(TensorStatistics.Accumulator.figures(float32: stored))
            return nil
        }
        if let error = stretches.lazy.compactMap(\.error).first { throw error }
        if checkCRC { markChecksumsVerified(entry.name) }
        return stretches.flatMap(\.state)
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
