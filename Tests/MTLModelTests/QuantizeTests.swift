import Foundation
import Testing
@testable import MTLModel
import CKernels

@Suite("Quantization")
struct QuantizeTests {
    /// Encodes `row` as `dtype` and decodes it back.
    func roundTrip(_ row: [Float], _ dtype: DType) throws -> [Float] {
        var bytes = [UInt8](repeating: 0, count: Int(dtype.rowByteCount(columns: UInt64(row.count))))
        try row.withUnsafeBufferPointer { x in
            try bytes.withUnsafeMutableBytes { out in try RowQuantizer.encode(x.baseAddress!, columns: row.count, as: dtype, into: out.baseAddress!) }
        }
        var decoded = [Float](repeating: .nan, count: row.count)
        bytes.withUnsafeBytes { raw in decoded.withUnsafeMutableBufferPointer { RowCodec.decodeRow(raw.baseAddress!, dtype: dtype, columns: row.count, into: $0.baseAddress!) } }
        return decoded
    }

    func randomRows(_ count: Int, columns: Int, seed: UInt64) -> [[Float]] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            let spread = Float(1 + random.next() % 100) / 50
            return (0..<columns).map { _ in
                // Roughly normal: the sum of uniforms, as trained embeddings look.
                (0..<4).reduce(Float(0)) { sum, _ in sum + random.nextFloat(-spread, spread) } / 2
            }
        }
    }

    @Test("int8: every element within scale/2 of the original, for any row width", arguments: [1, 3, 16, 17, 64])
    func int8Bound(columns: Int) throws {
        for row in randomRows(300, columns: columns, seed: UInt64(columns)) {
            let decoded = try roundTrip(row, .int8Rowwise)
            let scale = (Double(row.max()!) - Double(row.min()!)) / 255
            for (x, y) in zip(row, decoded) {
                #expect(abs(Double(x) - Double(y)) <= scale / 2 + 1e-6 * Double(abs(x)) + 1e-12)
            }
        }
    }

    @Test("int8: the C kernel and the Swift encoder write the same bytes")
    func int8KernelMatchesSwift() throws {
        for columns in [8, 16, 24, 5] {
            let rows = randomRows(200, columns: columns, seed: 99)
            var flat = rows.flatMap { $0 }
            flat[7] = 0; flat[columns] = flat[columns + 1]  // a few ties and zeros
            let rowBytes = columns + 8
            var kernel = [UInt8](repeating: 0, count: rows.count * rowBytes)
            var sum = 0.0, worst = 0.0
            let bad = flat.withUnsafeBufferPointer { x in
                kernel.withUnsafeMutableBufferPointer { mtlm_quantize_int8_rowwise(x.baseAddress!, rows.count, columns, $0.baseAddress!, &sum, &worst) }
            }
            #expect(bad == -1)
            var swift = [UInt8](repeating: 0, count: rows.count * rowBytes)
            flat.withUnsafeBufferPointer { x in
                swift.withUnsafeMutableBytes { out in
                    for r in 0..<rows.count { RowQuantizer.encodeInt8(x.baseAddress! + r * columns, columns: columns, into: out.baseAddress! + r * rowBytes) }
                }
            }
            #expect(kernel == swift)
        }
    }

    @Test("int8: the block kernels (AVX2, 8 rows a block; AVX-512, 16) write the AVX2 loop's bytes and error figures to the bit, at every width they take, with partial last blocks, flat and zero rows, signed zeros and a NaN row")
    func int8BlocksMatchAVX2() {
        // Paths 2 and 3 each fall back to the one below on a CPU without it: on any x86-64 CPU
        // with AVX2 at least the 8-row block is compared with the loop.
        func run(_ path: Int32, _ flat: [Float], rows: Int, columns: Int) -> (status: Int, bytes: [UInt8], sum: Double, max: Double) {
            var bytes = [UInt8](repeating: 0xEE, count: rows * (columns + 8))
            var sum = 0.5, worst = 0.0
            let status = flat.withUnsafeBufferPointer { x in
                bytes.withUnsafeMutableBufferPointer { mtlm_quantize_int8_rowwise_using(path, x.baseAddress!, rows, columns, $0.baseAddress!, &sum, &worst) }
            }
            return (status, bytes, sum, worst)
        }
        for columns in [8, 16, 24, 32, 40, 48] {
            for rowCount in [1, 7, 8, 9, 15, 16, 17, 100] {
                var flat = randomRows(rowCount, columns: columns, seed: UInt64(columns * 1000 + rowCount)).flatMap { $0 }
                for r in stride(from: 0, to: rowCount, by: 7) { for j in 0..<columns { flat[r * columns + j] = 0.25 } }  // flat rows
                for r in stride(from: 5, to: rowCount, by: 11) { for j in 0..<columns { flat[r * columns + j] = 0 } }   // zero rows
                for i in stride(from: 3, to: flat.count, by: 29) { flat[i] = i % 2 == 0 ? 0 : -0.0 }                 // signed zeros
                let loop = run(1, flat, rows: rowCount, columns: columns)
                #expect(loop.status == -1)
                for path: Int32 in [2, 3] {
                    let block = run(path, flat, rows: rowCount, columns: columns)
                    #expect(block.status == loop.status && block.bytes == loop.bytes && block.sum == loop.sum && block.max == loop.max,
                            "path \(path), \(columns) columns, \(rowCount) rows")
                }
                // A NaN in the last row: it is refused, the rows before it written, on every path.
                flat[(rowCount - 1) * columns + columns / 2] = .nan
                let written = (rowCount - 1) * (columns + 8)
                for path: Int32 in [1, 2, 3] {
                    let refused = run(path, flat, rows: rowCount, columns: columns)
                    #expect(refused.status == rowCount - 1 && refused.bytes[written...].allSatisfy { $0 == 0xEE }
                            && Array(refused.bytes[..<written]) == Array(loop.bytes[..<written]), "path \(path), \(columns) columns, \(rowCount) rows")
                }
            }
        }
    }

    @Test("int4: the C kernel, portable, AVX2 and AVX-512, writes the bytes of its Swift twin: random rows of every length to 40, and edge rows")
    func int4KernelMatchesTwin() throws {
        var random = SplitMix64(seed: 17)
        func uniform() -> Float { Float(random.next() >> 40) / Float(1 << 24) }
        var rows: [[Float]] = []
        for columns in 1...40 {
            for scaleExponent in [-30, -12, 0, 6, 15] {  // subnormal spreads to near float16's limit
                rows.append((0..<columns).map { _ in (uniform() * 2 - 1) * Float(sign: .plus, exponent: scaleExponent, significand: 1) })
            }
            rows.append([Float](repeating: 0.25, count: columns))                                     // equal values
            rows.append((0..<columns).map { $0 % 2 == 0 ? 0 : -0.0 })                                  // signed zeros
            rows.append((0..<columns).map { $0 % 3 == 0 ? .leastNonzeroMagnitude : -.leastNormalMagnitude }) // denormals
            rows.append((0..<columns).map { $0 == 0 ? 65504 : ($0 == 1 ? -65504 : uniform()) })        // float16's extremes
            rows.append((0..<columns).map { $0 == columns / 2 ? 100 : uniform() * 0.01 })              // one outlier
            rows.append((0..<columns).map { Float($0 % 31) * 0.5 })                                    // values on half-levels (ties)
            rows.append((0..<columns).map { (Float($0 % 16) + 0.5) * 0.125 - 1 })
            // Spreads of a few ulps, where a step (1/200 of the spread) moves neither end: the
            // search once repeated itself forever on these.
            rows.append((0..<columns).map { $0 % 2 == 0 ? 0 : Float(bitPattern: 70) })
            rows.append((0..<columns).map { $0 % 2 == 0 ? 1000 : Float(1000).nextUp.nextUp })
            rows.append((0..<columns).map { $0 % 3 == 0 ? -0.0 : Float(bitPattern: 1) })
        }
        for row in rows {
            for search in [false, true] {
                let byteCount = (row.count + 1) / 2 + 4
                var twin = [UInt8](repeating: 0xEE, count: byteCount)
                try row.withUnsafeBufferPointer { x in
                    try twin.withUnsafeMutableBytes { try Int4Reference.encode(x.baseAddress!, columns: row.count, into: $0.baseAddress!, search: search) }
                    for path: Int32 in [0, 1, 2] {
                        var kernel = [UInt8](repeating: 0xEE, count: byteCount)
                        let status = kernel.withUnsafeMutableBytes { mtlm_encode_int4_rows(x.baseAddress!, 1, row.count, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), 0, search ? 1 : 0, path, nil) }
                        #expect(status == -1 && kernel == twin, "path \(path), search \(search), row \(row)")
                    }
                }
            }
        }
        // Many rows in one call (searched 8 or 16 a block, up to 8 blocks together — fewer for
        // wide rows —, with a partial last group and a partial last block): the same bytes as one
        // at a time. (Paths 1 and 2 each fall back to the one below on a CPU without it.)
        for columns in [1, 3, 16, 17, 33, 700] {
            let edge = rows.filter { $0.count == columns }
            let batch = (0..<(columns > 40 ? 75 : 300)).map {
                $0 % 5 == 0 && !edge.isEmpty ? edge[$0 / 5 % edge.count] : (0..<columns).map { _ in uniform() * 2 - 1 }
            }
            let flat = batch.flatMap { $0 }, stride = (columns + 1) / 2 + 4
            for path: Int32 in [0, 1, 2] {
                var together = [UInt8](repeating: 0, count: batch.count * stride), apart = together
                flat.withUnsafeBufferPointer { x in
                    together.withUnsafeMutableBytes { #expect(mtlm_encode_int4_rows(x.baseAddress!, batch.count, columns, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), stride, 1, path, nil) == -1) }
                    apart.withUnsafeMutableBytes { out in
                        for r in batch.indices { _ = mtlm_encode_int4_rows(x.baseAddress! + r * columns, 1, columns, out.baseAddress!.assumingMemoryBound(to: UInt8.self) + r * stride, stride, 1, path, nil) }
                    }
                }
                #expect(together == apart, "\(columns) columns, path \(path)")
                // ... and, through the second path, the same bytes as the portable one.
                var portable = together
                flat.withUnsafeBufferPointer { x in
                    portable.withUnsafeMutableBytes { _ = mtlm_encode_int4_rows(x.baseAddress!, batch.count, columns, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), stride, 1, 0, nil) }
                }
                #expect(together == portable, "\(columns) columns, path \(path)")
                // The errors it adds up: RowQuantizer.relativeError's of each row written, to the bit.
                var expected = (sum: 0.0, max: 0.0), scratch = [Float](repeating: 0, count: columns)
                for r in batch.indices {
                    let e = flat.withUnsafeBufferPointer { x in
                        together.withUnsafeBytes { RowQuantizer.relativeError(of: x.baseAddress! + r * columns, columns: columns, storedAs: $0.baseAddress! + r * stride, .int4Rowwise, scratch: &scratch) }
                    }
                    expected = (expected.sum + e, max(expected.max, e))
                }
                var sums = [0.0, 0.0], measured = together
                flat.withUnsafeBufferPointer { x in
                    measured.withUnsafeMutableBytes { _ = mtlm_encode_int4_rows(x.baseAddress!, batch.count, columns, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), stride, 1, path, &sums) }
                }
                #expect(measured == together && sums == [expected.sum, expected.max] && expected.sum > 0, "\(columns) columns, path \(path)")
            }
        }
        // A row beyond float16's range in the first, second or third block of 8 (the first or
        // second of 16), in a later block of the first group, or in the second group: the rows
        // before it are written, it and the rows after it are not; the same on every path.
        for (path, badRow) in [Int32(0), 1, 2].flatMap({ path in [5, 11, 21, 100, 150].map { (path, $0) } }) {
            var values = (0..<160 * 4).map { _ in uniform() }
            values[badRow * 4 + 2] = 70000
            var out = [UInt8](repeating: 0xEE, count: 160 * 6)
            let status = values.withUnsafeBufferPointer { x in out.withUnsafeMutableBytes { mtlm_encode_int4_rows(x.baseAddress!, 160, 4, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), 6, 1, path, nil) } }
            var before = [UInt8](repeating: 0xEE, count: badRow * 6)
            values.withUnsafeBufferPointer { x in before.withUnsafeMutableBytes { _ = mtlm_encode_int4_rows(x.baseAddress!, badRow, 4, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), 6, 1, 0, nil) } }
            #expect(status == badRow, "path \(path), row \(badRow)")
            #expect(Array(out[..<(badRow * 6)]) == before && out[(badRow * 6)...].allSatisfy { $0 == 0xEE }, "path \(path), row \(badRow)")
        }
        let withBad: [Float] = [1, 2, 3, 4, 5, 6, 1, 70000, 2]
        var three = [UInt8](repeating: 0, count: 15)
        withBad.withUnsafeBufferPointer { x in three.withUnsafeMutableBytes { #expect(mtlm_encode_int4_rows(x.baseAddress!, 3, 3, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), 5, 1, 1, nil) == 2) } }
        // Beyond float16's range: refused by both, nothing written.
        let beyond: [Float] = [1, 70000, 2]
        var out = [UInt8](repeating: 0xEE, count: 6)
        #expect(throws: RowQuantizer.Failure.self) { try beyond.withUnsafeBufferPointer { x in try out.withUnsafeMutableBytes { try RowQuantizer.encodeInt4(x.baseAddress!, columns: 3, into: $0.baseAddress!) } } }
        #expect(throws: RowQuantizer.Failure.self) { try beyond.withUnsafeBufferPointer { x in try out.withUnsafeMutableBytes { try Int4Reference.encode(x.baseAddress!, columns: 3, into: $0.baseAddress!) } } }
        #expect(out == [UInt8](repeating: 0xEE, count: 6))
        #expect(["avx512", "avx2", "portable"].contains(String(cString: mtlm_int4_kernel_name())))
    }

    @Test("fp16 / bf16: the C kernel, portable and AVX2, writes RowQuantizer.encode's bytes and adds RowQuantizer.relativeError's figures to the bit: every width to 40, partial blocks of 8 rows, edge values; refuses the row Swift refuses",
          arguments: [DType.float16, .bfloat16])
    func halfKernelMatchesSwift(_ dtype: DType) throws {
        var random = SplitMix64(seed: 23)
        func uniform() -> Float { Float(random.next() >> 40) / Float(1 << 24) }
        let bfloat: Int32 = dtype == .bfloat16 ? 1 : 0
        for columns in 1...40 {
            var rows: [[Float]] = []
            for scaleExponent in [-30, -20, -14, 0, 10, 15] {  // float16 subnormals to near its limit
                rows.append((0..<columns).map { _ in (uniform() * 2 - 1) * Float(sign: .plus, exponent: scaleExponent, significand: 1) })
            }
            rows.append((0..<columns).map { $0 % 2 == 0 ? 0 : -0.0 })                                    // signed zeros: error 0
            rows.append((0..<columns).map { $0 % 3 == 0 ? .leastNonzeroMagnitude : -.leastNormalMagnitude }) // float32 denormals
            rows.append((0..<columns).map { $0 % 2 == 0 ? 65504 : -65504 })                              // float16's extremes
            rows.append((0..<columns).map { Float(bitPattern: 0x3F80_1000 + UInt32($0 % 4) * 0x1_0000) })  // ties of both roundings
            rows.append((0..<columns).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: random.next()) & 0x387F_FFFF) })  // below float16's normals
            rows.append((0..<columns).map { _ in (uniform() * 2 - 1) * 1e30 })                           // bfloat16 only
            rows.append((0..<columns).map { $0 % 2 == 0 ? Float(bitPattern: 0x7F7F_7FFF) : -Float(bitPattern: 0x7F7F_7FFF) })  // bfloat16's extremes
            let batch = dtype == .float16 ? rows.filter { $0.allSatisfy { abs($0) <= 65504 } } : rows
            let flat = batch.flatMap { $0 }, stride = 2 * columns + 3  // rows spaced apart, as a rewrite's window is not
            // Swift: each row encoded and its error summed in row order.
            var swift = [UInt8](repeating: 0xEE, count: batch.count * stride), expected = (sum: 0.0, max: 0.0)
            var scratch = [Float](repeating: 0, count: columns)
            try flat.withUnsafeBufferPointer { x in
                try swift.withUnsafeMutableBytes { out in
                    for r in batch.indices {
                        try RowQuantizer.encode(x.baseAddress! + r * columns, columns: columns, as: dtype, into: out.baseAddress! + r * stride)
                        let e = RowQuantizer.relativeError(of: x.baseAddress! + r * columns, columns: columns, storedAs: out.baseAddress! + r * stride, dtype, scratch: &scratch)
                        expected = (expected.sum + e, max(expected.max, e))
                    }
                }
            }
            for path: Int32 in [0, 1] {
                var kernel = [UInt8](repeating: 0xEE, count: batch.count * stride), sums = [0.0, 0.0]
                let status = flat.withUnsafeBufferPointer { x in
                    kernel.withUnsafeMutableBytes { mtlm_encode_half_rows(x.baseAddress!, batch.count, columns, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), stride, bfloat, path, &sums) }
                }
                #expect(status == -1 && kernel == swift, "\(dtype), \(columns) columns, path \(path)")
                #expect(sums == [expected.sum, expected.max] && expected.sum > 0, "\(dtype), \(columns) columns, path \(path): \(sums) against \(expected)")
            }
        }
        // The first row Swift refuses, in the first or a later block of 8 and in the last rows: NaN,
        // Inf, for float16 a magnitude beyond 65504 (65504 itself is kept), for bfloat16 one that
        // would round to Inf (the largest that does not is kept; a model's check refuses
        // magnitudes of 2^64 and more before, but the encoder stores nothing it cannot hold).
        let refused: [Float] = dtype == .float16 ? [.nan, -.infinity, 65520, -70000]
            : [.nan, .infinity, Float(bitPattern: 0x7F7F_8000), -.greatestFiniteMagnitude]
        let kept: Float = dtype == .float16 ? 65504 : -Float(bitPattern: 0x7F7F_7FFF)
        for (value, badRow) in refused.flatMap({ v in [0, 5, 11, 19].map { (v, $0) } }) {
            for columns in [3, 8, 13] {
                var values = (0..<20 * columns).map { _ in uniform() * 65504 }
                values[badRow * columns + columns / 2] = value
                values[(badRow + 1) % 20 * columns] = kept
                for path: Int32 in [0, 1] {
                    var out = [UInt8](repeating: 0, count: 20 * 2 * columns)
                    let status = values.withUnsafeBufferPointer { x in out.withUnsafeMutableBytes { mtlm_encode_half_rows(x.baseAddress!, 20, columns, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), 2 * columns, bfloat, path, nil) } }
                    let swiftRefuses = values.withUnsafeBufferPointer { x in
                        (0..<20).first { r in (0..<columns).contains { !x[r * columns + $0].isFinite }
                            || (try? out.withUnsafeMutableBytes { try RowQuantizer.encode(x.baseAddress! + r * columns, columns: columns, as: dtype, into: $0.baseAddress!) }) == nil }
                    }
                    #expect(status == badRow && swiftRefuses == badRow, "\(dtype) \(value) in row \(badRow), \(columns) columns, path \(path)")
                }
            }
        }
        #expect(["avx2", "portable"].contains(String(cString: mtlm_half_kernel_name())))
    }

    @Test("inspect --stats of a quantized table releases its pages behind (2M int8 rows of 16: 48 MiB)")
    func statisticsOfQuantizedTableResidentPages() throws {
        let directory = TemporaryDirectory()
        let source = directory.path("f.mtlm"), quantized = directory.path("q.mtlm")
        try synthOneLargeTable(source, field: "user_id", mapping: "modulo", rows: 2_097_152, dim: 16, training: false)
        #expect(try runCLI(["quantize", source, quantized, "--embeddings", "int8"]).status == 0)
        let model = try Model(path: quantized)
        let table = try #require(model.tensors.first { $0.name == "embedding.user_id.weight" })
        #expect(table.dtype == .int8Rowwise)
        let (statistics, files, tablePeak) = try peakResident(filesUnder: directory.url.path, tensor: table, of: model.file) {
            try model.file.statistics(of: table.name)
        }
        #expect(statistics.elementCount == 2_097_152 * 16 && statistics.nanCount == 0)
        // Released every 16 MiB read (plus the 2 MiB before each release's start).
        #expect(files > 0 && tablePeak <= 24 << 20, "peak \(tablePeak >> 20) MiB of the table's 48 MiB resident")
    }

    @Test("int4: within scale/2 (plus float16 rounding of the bias) without clipping; the search beats min/max")
    func int4() throws {
        let rows = randomRows(500, columns: 16, seed: 4)
        var plainError = 0.0, searchedError = 0.0
        for row in rows {
            var plain = [UInt8](repeating: 0, count: 12), searched = [UInt8](repeating: 0, count: 12)
            try row.withUnsafeBufferPointer { x in
                try plain.withUnsafeMutableBytes { try RowQuantizer.encodeInt4(x.baseAddress!, columns: 16, into: $0.baseAddress!, search: false) }
                try searched.withUnsafeMutableBytes { try RowQuantizer.encodeInt4(x.baseAddress!, columns: 16, into: $0.baseAddress!, search: true) }
            }
            var a = [Float](repeating: 0, count: 16), b = [Float](repeating: 0, count: 16)
            plain.withUnsafeBytes { RowCodec.decodeRow($0.baseAddress!, dtype: .int4Rowwise, columns: 16, into: &a) }
            searched.withUnsafeBytes { RowCodec.decodeRow($0.baseAddress!, dtype: .int4Rowwise, columns: 16, into: &b) }
            let (scale, bias) = plain.withUnsafeBytes { RowCodec.int4Parameters($0.baseAddress!, columns: 16) }
            for (x, y) in zip(row, a) {
                #expect(abs(x - y) <= scale / 2 + abs(bias - row.min()!) + 1e-6)
            }
            plainError += zip(row, a).reduce(0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
            searchedError += zip(row, b).reduce(0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
        }
        // Measured: the greedy clipping search removes about a fifth of the squared error.
        #expect(searchedError < 0.9 * plainError, "searched \(searchedError) vs min/max \(plainError)")
    }

    @Test("Edge rows: equal values, zeros, tiny spread, huge magnitude")
    func edgeRows() throws {
        let equal: [Float] = Array(repeating: 0.1234567, count: 16)
        #expect(try roundTrip(equal, .int8Rowwise) == equal)           // exact
        #expect(try roundTrip(equal, .int4Rowwise) == equal.map { Float(Float16($0)) })  // float16 bias
        #expect(try roundTrip(equal, .int8Symmetric).allSatisfy { abs($0 - 0.1234567) <= 0.1234567 / 254 })
        let zeros = [Float](repeating: 0, count: 16)
        for dtype in [DType.int8Rowwise, .int4Rowwise, .int8Symmetric, .float16, .bfloat16] {
            #expect(try roundTrip(zeros, dtype) == zeros, "\(dtype)")
        }
        let tiny = (0..<16).map { 1 + Float($0) * 1e-7 }
        #expect(try zip(roundTrip(tiny, .int8Rowwise), tiny).allSatisfy { abs($0 - $1) <= 1e-7 })
        let tinyAroundZero = (0..<16).map { Float($0) * 1e-9 }
        // float16 scales never go subnormal: the smallest normal keeps the error ≤ 2^-15.
        #expect(try zip(roundTrip(tinyAroundZero, .int4Rowwise), tinyAroundZero).allSatisfy { abs($0 - $1) <= 3.1e-5 })
        let huge = (0..<16).map { Float($0) * 1e30 - 8e30 }
        let decoded = try roundTrip(huge, .int8Rowwise)
        #expect(zip(decoded, huge).allSatisfy { abs($0 - $1) <= 1.6e30 / 255 / 2 * 1.0001 })
        #expect(throws: RowQuantizer.Failure.self) { try roundTrip(huge, .int4Rowwise) }
        #expect(throws: RowQuantizer.Failure.self) { try roundTrip(huge, .float16) }
        #expect(try roundTrip(huge, .bfloat16).allSatisfy { $0.isFinite })
        #expect(try roundTrip([1, 2.5, -3], .float16) == [1, 2.5, -3])
        #expect(try roundTrip([1.00390625], .bfloat16) == [1])  // halfway: rounds to even
    }

    func demo() throws -> (TemporaryDirectory, String, String)? {
        let demo = TestPaths.packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data/demo")
        guard FileManager.default.fileExists(atPath: demo.path) else {
            #expect(ProcessInfo.processInfo.environment["CI"] == nil, "../shared/data/demo is missing")
            return nil
        }
        let directory = TemporaryDirectory()
        _ = try runProcess("/bin/sh", ["-c", "gzip -dc '\(demo.path)/test.txt.gz' > '\(directory.path("test.txt"))'"])
        try SafetensorsImporter().importCheckpoint(demo.appendingPathComponent("serving.safetensors").path, to: directory.path("serving.mtlm"))
        return (directory, directory.path("serving.mtlm"), directory.path("test.txt"))
    }

    @Test("On the PyTorch-trained demo model: int8 + fp16 keeps |ΔAUC| ≤ 0.0003, int4 ≤ 0.002, at ≤ 0.38× / ≤ 0.19× the embedding bytes",
          arguments: [("int8", "fp16", 0.0003, 0.38), ("int4", "fp32", 0.002, 0.19)])
    func demoAccuracy(_ c: (embeddings: String, dense: String, maxDelta: Double, maxRatio: Double)) throws {
        guard let (directory, model, data) = try demo() else { return }
        let output = directory.path("q.mtlm")
        let result = try runCLI(["quantize", model, output, "--embeddings", c.embeddings, "--dense", c.dense, "--eval", data, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(result.json?["report"] as? [String: Any])
        let tasks = try #require((report["evaluation"] as? [String: Any])?["tasks"] as? [[String: Any]])
        #expect(tasks.count == 2)
        for task in tasks {
            let delta = try #require(task["deltaAUC"] as? Double)
            #expect(abs(delta) <= c.maxDelta, "\(task["task"]!): ΔAUC \(delta)")
            #expect((task["deltaAUCLow"] as! Double) <= delta && delta <= (task["deltaAUCHigh"] as! Double))
            #expect(task["deltaLogloss"] is Double && task["deltaCalibration"] is Double)
            #expect(((task["before"] as? [String: Any])?["calibration"]) is Double)
        }
        // The embedding tables (keys aside): float32 [n, 16] rows of 64 bytes.
        let quantized = try ModelFile(path: output), original = try ModelFile(path: model)
        let tables = original.tensors.filter { $0.name.hasPrefix("embedding.") && $0.name.hasSuffix(".weight") }.map(\.name)
        let before = tables.reduce(UInt64(0)) { $0 + original.entry(named: $1)!.byteCount }
        let after = tables.reduce(UInt64(0)) { $0 + quantized.entry(named: $1)!.byteCount }
        #expect(Double(after) / Double(before) <= c.maxRatio)
        #expect(quantized.version == FormatVersion(major: 1, minor: 1))
        #expect(ModelVerifier().verify(quantized).isValid)
    }

    @Test("A quantized model predicts, exports float32, and dequantizes to the same predictions")
    func quantizedModelWorksEverywhere() throws {
        let directory = TemporaryDirectory()
        let q = directory.path("q.mtlm")
        #expect(try runCLI(["quantize", TestPaths.fixture("v1.0/small-training.mtlm"), q, "--embeddings", "int4", "--dense", "int8", "--field", "hour=int8", "--field", "tags=bf16"]).status == 0)
        let model = try ModelFile(path: q)
        #expect(model.entry(named: "embedding.user_id.weight")?.dtype == .int4Rowwise)
        #expect(model.entry(named: "embedding.hour.weight")?.dtype == .int8Rowwise)
        #expect(model.entry(named: "embedding.tags.weight")?.dtype == .bfloat16)
        #expect(model.entry(named: "linear.user_id.weight")?.dtype == .float16)
        #expect(model.entry(named: "linear.tags.weight")?.dtype == .bfloat16)
        #expect(model.entry(named: "shared.0.weight")?.dtype == .int8Symmetric)
        #expect(model.entry(named: "shared.0.bias")?.dtype == .float32)
        #expect(model.entry(named: "optimizer.embedding.user_id.weight.sum")?.dtype == .float32)
        #expect(ModelVerifier().verify(model).isValid)
        let inspect = try runCLI(["inspect", q, "--tensors", "--stats"])
        #expect(inspect.status == 0 && inspect.stdout.contains("int4-rowwise"))

        let predictQ = try runCLI(["predict", q, TestPaths.fixture("predict/small.txt"), "--logits"])
        #expect(try runCLI(["dequantize", q, directory.path("d.mtlm")]).status == 0)
        let dequantized = try ModelFile(path: directory.path("d.mtlm"))
        #expect(dequantized.tensors.allSatisfy { !$0.dtype.isFloatingPoint || $0.dtype == .float32 })
        #expect(dequantized.version == FormatVersion(major: 1, minor: 0))
        let predictD = try runCLI(["predict", directory.path("d.mtlm"), TestPaths.fixture("predict/small.txt"), "--logits"])
        #expect(predictQ.status == 0 && predictQ.stdout == predictD.stdout)
        #expect(try model.floats("embedding.user_id.weight") == dequantized.floats("embedding.user_id.weight"))

        #expect(try runCLI(["export", q, directory.path("q.safetensors")]).status == 0)
        let exported = try SafetensorsFile(path: directory.path("q.safetensors"))
        #expect(exported.tensor(named: "embedding.user_id.weight")?.dtype == .float32)
        #expect(Array(exported.bytes(of: exported.tensor(named: "embedding.user_id.weight")!))
                == (try dequantized.withTensorBytes("embedding.user_id.weight") { Array($0) }))
    }

    @Test("A failing gate writes nothing and exits 1; usage errors exit 2")
    func gate() throws {
        let directory = TemporaryDirectory()
        let output = directory.path("q.mtlm")
        let failed = try runCLI(["quantize", TestPaths.fixture("v1.0/small.mtlm"), output, "--embeddings", "int4", "--dense", "int8",
                                 "--eval", TestPaths.fixture("predict/small.txt"), "--max-logloss-increase", "0", "--max-auc-drop=-1", "--json"])
        #expect(failed.status == 1)
        let json = try #require(failed.json)
        #expect(json["written"] as? Bool == false)
        #expect((json["gate"] as? [String: Any])?["passed"] as? Bool == false)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path) == [])
        let passed = try runCLI(["quantize", TestPaths.fixture("v1.0/small.mtlm"), output, "--eval", TestPaths.fixture("predict/small.txt"), "--max-auc-drop", "1"])
        #expect(passed.status == 0 && passed.stdout.contains("gate: passed"))
        #expect(FileManager.default.fileExists(atPath: output))
        for bad in [["--embeddings", "int2"], ["--dense", "int4"], ["--field", "tags"], ["--max-auc-drop", "0.1"]] {
            #expect(try runCLI(["quantize", TestPaths.fixture("v1.0/small.mtlm"), directory.path("x.mtlm")] + bad).status == 2, "\(bad)")
        }
        let unknownField = try runCLI(["quantize", TestPaths.fixture("v1.0/small.mtlm"), directory.path("x.mtlm"), "--field", "colour=int8"])
        #expect(unknownField.status == 2 && unknownField.stderr.contains("no field named \"colour\""))
    }

    @Test("NaN in a table is an error naming the tensor and the row")
    func nanRow() throws {
        let directory = TemporaryDirectory()
        let arch = try architecture(fromConfig: "one-field.json")
        let path = directory.path("nan.mtlm")
        let writer = try ModelWriter(path: path)
        for spec in arch.servingTensors {
            var values = [Float](repeating: 0.5, count: Int(spec.elementCount))
            if spec.name == "embedding.only.weight" { values[5 * 3 + 1] = .nan }
            try values.withUnsafeBytes { try writer.writeTensor(spec.name, dtype: spec.dtype, shape: spec.shape, role: spec.role, bytes: $0) }
        }
        try writer.finish(architecture: arch, provenance: Provenance(createdUnixSeconds: 0, source: "t"))
        for embeddings in ["int8", "int4"] {
            let result = try runCLI(["quantize", path, directory.path("q.mtlm"), "--embeddings", embeddings])
            #expect(result.status == 2)
            #expect(result.stderr.contains("tensor \"embedding.only.weight\"") && result.stderr.contains("row 5"), "\(result.stderr)")
        }
    }

    @Test("DeLong's paired test: identical models give 0 ± 0; a better model a positive interval")
    func pairedAUC() throws {
        var random = SplitMix64(seed: 1)
        let labels = (0..<400).map { _ in random.next() % 3 == 0 }
        let a = labels.map { ($0 ? 0.6 : 0.4) + Double(random.nextFloat(-0.5, 0.5)) }
        let same = try #require(try PairedAUC.compare(a, a, labels: labels))
        #expect(same.delta == 0 && same.standardError == 0)
        #expect(abs(same.aucA - Evaluator.auc(a, labels)!) < 1e-12)
        let b = zip(a, labels).map { $0 + ($1 ? 0.3 : 0) }
        let better = try #require(try PairedAUC.compare(a, b, labels: labels))
        #expect(better.delta > 0 && better.low > 0)
        #expect(abs(better.aucB - Evaluator.auc(b, labels)!) < 1e-12)
    }

    @Test("Several threads encode the same bytes as one, across many windows of rows", arguments: ["int8", "int4", "fp16"])
    func threadsAgree(type: String) throws {
        let directory = TemporaryDirectory()
        let architecture = try MTLModelTests.architecture(json: """
            {"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 70000}, {"name": "b", "vocab_size": 5}], "linear": true, "tasks": [{"name": "t"}]}
            """)
        try Synthesizer(seed: 4).write(architecture, to: directory.path("m.mtlm"), source: "t")
        let model = try ModelFile(path: directory.path("m.mtlm"))
        let plan = QuantizationPlan(embeddings: QuantizationPlan.embeddingType(named: type)!, dense: .int8Symmetric)
        let one = try ModelQuantizer(plan: plan, threadCount: 1).quantize(Model(model), to: directory.path("1.mtlm"), source: "t")
        let three = try ModelQuantizer(plan: plan, threadCount: 3).quantize(Model(model), to: directory.path("3.mtlm"), source: "t")
        #expect(try tensorBytes(ModelFile(path: directory.path("1.mtlm"))) == tensorBytes(ModelFile(path: directory.path("3.mtlm"))))
        #expect(one.tensors.map(\.meanRelativeError) == three.tensors.map(\.meanRelativeError))
        #expect(one.tensors.map(\.maxRelativeError) == three.tensors.map(\.maxRelativeError))
        // Windows written in order by one thread (an output written in place, rows pruned)
        // against windows each written at its place by the worker that encoded it.
        var inOrder = ModelWriter.Options()
        inOrder.placesWrites = false
        let ordered = try ModelQuantizer(plan: plan, writerOptions: inOrder, threadCount: 3).quantize(Model(model), to: directory.path("o.mtlm"), source: "t")
        #expect(try tensorBytes(ModelFile(path: directory.path("o.mtlm"))) == tensorBytes(ModelFile(path: directory.path("3.mtlm"))))
        #expect(ordered.tensors.map(\.meanRelativeError) == three.tensors.map(\.meanRelativeError))
        #expect(ordered.tensors.map(\.maxRelativeError) == three.tensors.map(\.maxRelativeError))
    }

    @Test("Values beyond float16 in two windows of rows: the first in row order is named, at any thread count, whether windows are written at their place or in order",
          arguments: [1, 2, 3])
    func firstFailureInRowOrder(threads: Int) throws {
        let directory = TemporaryDirectory()
        let arch = try MTLModelTests.architecture(json: """
            {"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 90000}], "tasks": [{"name": "t"}]}
            """)
        let path = directory.path("nan.mtlm")
        let writer = try ModelWriter(path: path)
        for spec in arch.servingTensors {
            var values = [Float](repeating: 0.5, count: Int(spec.elementCount))
            if spec.name == "embedding.a.weight" {
                // Finite (the model is valid), but beyond what float16 holds: windows 1 and 4 fail.
                values[(TensorRewriter.windowRowCount + 5) * 4] = 1e6
                values[(4 * TensorRewriter.windowRowCount + 2) * 4 + 3] = -1e6
            }
            try values.withUnsafeBytes { try writer.writeTensor(spec.name, dtype: spec.dtype, shape: spec.shape, role: spec.role, bytes: $0) }
        }
        try writer.finish(architecture: arch, provenance: Provenance(createdUnixSeconds: 0, source: "t"))
        let model = try Model(ModelFile(path: path))
        for placed in [true, false] {
            var options = ModelWriter.Options()
            options.placesWrites = placed
            let quantizer = ModelQuantizer(plan: QuantizationPlan(embeddings: .float16, dense: .float16), writerOptions: options, threadCount: threads)
            for _ in 0..<5 {
                #expect { try quantizer.quantize(model, to: directory.path("q.mtlm"), source: "t") } throws: { error in
                    "\(error)".contains("row \(TensorRewriter.windowRowCount + 5)") && "\(error)".contains("embedding.a.weight")
                }
            }
            #expect(!FileManager.default.fileExists(atPath: directory.path("q.mtlm")))
        }
    }
}
