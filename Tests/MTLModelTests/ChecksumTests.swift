import CKernels
import CZlib
import Foundation
import Testing
@testable import MTLModel

/// The CRC-32 paths of `mtlm_crc32_using` (each falls back to the next below on a CPU without it).
enum CRC32Paths {
    static let fast = [MTLM_CRC32_PCLMUL, MTLM_CRC32_VPCLMUL256, MTLM_CRC32_VPCLMUL512].map(Int32.init)
    static let all = [Int32(MTLM_CRC32_ZLIB)] + fast
}

@Suite("CRC-32 and value scans")
struct ChecksumTests {
    @Test("mtlm_crc32 and each of its paths (PCLMUL, VPCLMULQDQ on 256 and 512 bits) equal zlib's crc32 for every length, alignment and starting value")
    func crcMatchesZlib() {
        var random = SplitMix64(seed: 42)
        let bytes = (0..<5000).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        bytes.withUnsafeBufferPointer { buffer in
            // Every length to 600 covers each path's tail (16-byte blocks, then bytes) after
            // each number of whole 64- and 256-byte blocks.
            for length in Array(0..<600) + [1023, 1024, 1025, 4095, 4096, 4097, 4900] {
                for offset in [0, 1, 7, 16, 33] where offset + length <= buffer.count {
                    for start: UInt32 in [0, 0xFFFF_FFFF, 0x1234_5678] {
                        let p = buffer.baseAddress! + offset
                        let expected = UInt32(crc32_z(UInt(start), p, length))
                        #expect(mtlm_crc32(start, p, length) == expected, "length \(length) offset \(offset) start \(start)")
                        for path in CRC32Paths.fast {
                            #expect(mtlm_crc32_using(path, start, p, length) == expected, "path \(path) length \(length) offset \(offset)")
                        }
                    }
                }
            }
        }
        // Known value: CRC-32 of "123456789"; all zero and all one bytes at once.
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        for fill: UInt8 in [0, 0xFF] {
            let block = [UInt8](repeating: fill, count: 1 << 16)
            block.withUnsafeBufferPointer { #expect(mtlm_crc32(0, $0.baseAddress, $0.count) == UInt32(crc32_z(0, $0.baseAddress, $0.count))) }
        }
        #expect(["vpclmulqdq-avx512", "vpclmulqdq-avx2", "pclmul", "zlib"].contains(CRC32.implementation))
    }

    @Test("The CRC with the largest float32 magnitude: zlib's CRC and the scalar maximum, on every path, length and alignment, with NaN, Inf and huge values anywhere")
    func crcWithMagnitude() {
        var random = SplitMix64(seed: 8)
        var floats = (0..<1200).map { _ in Float(Int64(random.next() % 20001) - 10000) / 100 }
        for length in Array(0..<700) + [1024, 4096, 4800] {
            for special: Float in [1, .nan, -.infinity, 0x1p64] {
                let at = length / 4 > 0 ? Int(random.next() % UInt64(length / 4)) : 0
                let saved = floats[at]
                if length >= 4 { floats[at] = special }
                floats.withUnsafeBytes { raw in
                    for offset in [0, 4] where offset + length <= raw.count {
                        let p = raw.baseAddress!.assumingMemoryBound(to: UInt8.self) + offset
                        var expected: UInt32 = 0
                        for i in stride(from: 0, to: length - 3, by: 4) { expected = max(expected, raw.load(fromByteOffset: offset + i, as: UInt32.self) & 0x7FFF_FFFF) }
                        for path in CRC32Paths.all {
                            var magnitude: UInt32 = 0
                            #expect(mtlm_crc32_f32_magnitude(3, p, length, &magnitude, path) == UInt32(crc32_z(3, p, length)), "length \(length) path \(path)")
                            #expect(magnitude == expected, "length \(length) path \(path) special \(special)")
                        }
                    }
                }
                floats[at] = saved
            }
        }
    }

    @Test("Statistics of float32 chunks: the C kernel gives the Swift loop's doubles, at every length, with NaN, Inf, signed zeros and denormals")
    func statisticsKernel() {
        var random = SplitMix64(seed: 5)
        let specials: [Float] = [.nan, .infinity, -.infinity, 0, -0.0, .leastNonzeroMagnitude, -.leastNormalMagnitude, .greatestFiniteMagnitude]
        for count in Array(0...70) + [1000, 4099] {
            for mix in 0..<3 {
                let values: [Float] = (0..<count).map { i in
                    if mix == 1 { return -0.0 }  // all negative zeros: the sum stays −0
                    if mix == 2, i % 5 == 0 { return specials[Int(random.next() % UInt64(specials.count))] }
                    return Float(Int64(random.next() % 2001) - 1000) / 7
                }
                var swift = TensorStatistics.Accumulator(), kernel = TensorStatistics.Accumulator()
                values.withUnsafeBufferPointer { x in
                    swift.add(count) { Double(x[$0]) }
                    kernel.merge(TensorStatistics.Accumulator.figures(float32: UnsafeRawBufferPointer(x)))
                }
                let a = swift.statistics, b = kernel.statistics
                #expect(a == b, "\(count) values, mix \(mix): \(a) vs \(b)")
                #expect(a.mean.map { $0.sign } == b.mean.map { $0.sign })
            }
        }
    }

    @Test("inspect --stats of a many-chunk float32 tensor (chunks on every core) equals the chunk-by-chunk sequence")
    func statisticsInParallel() throws {
        let directory = TemporaryDirectory()
        let path = directory.path("big.mtlm")
        var options = ModelWriter.Options()
        options.chunkByteCount = 256  // 64 floats a chunk: 3,000 chunks
        let writer = try ModelWriter(path: path, options: options)
        var random = SplitMix64(seed: 9)
        let values = (0..<192_000).map { i -> Float in i == 77_777 ? .nan : Float(Int64(random.next() % 100_001) - 50_000) / 3 }
        try values.withUnsafeBytes { try writer.writeTensor("t", dtype: .float32, shape: [192_000], role: .parameter, bytes: $0) }
        try writer.finish(architecture: architecture(fromConfig: "small.json"), provenance: Provenance(createdUnixSeconds: 0, source: "test"))
        let file = try ModelFile(path: path)
        var sequential = TensorStatistics.Accumulator()
        values.withUnsafeBufferPointer { x in
            for start in stride(from: 0, to: x.count, by: 64) {
                sequential.add(min(64, x.count - start)) { Double(x[start + $0]) }
            }
        }
        let parallel = try file.statistics(of: "t")
        #expect(parallel == sequential.statistics)
        #expect(parallel.nanCount == 1 && parallel.elementCount == 192_000)
        // A chunk that fails its checksum is named, not summarised.
        let entry = try #require(file.entry(named: "t"))
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: entry.offset + 256 * 2000 + 5)
        try handle.write(contentsOf: Data([0x77]))
        try handle.close()
        #expect { _ = try ModelFile(path: path).statistics(of: "t") } throws: { ($0 as? MTLModelError)?.message.contains("chunk 2000 checksum mismatch") == true }
    }

    @Test("A check given one thread (a command's --threads 1) runs on the calling thread only")
    func stretchThreads() throws {
        let directory = TemporaryDirectory()
        let path = directory.path("big.mtlm")
        var options = ModelWriter.Options()
        options.chunkByteCount = 256  // 64 floats a chunk: 16 chunks a stretch, 200 stretches
        let writer = try ModelWriter(path: path, options: options)
        let values = [Float](repeating: 0.25, count: 64 * 16 * 200)
        try values.withUnsafeBytes { try writer.writeTensor("t", dtype: .float32, shape: [UInt64(values.count)], role: .parameter, bytes: $0) }
        try writer.finish(architecture: architecture(fromConfig: "small.json"), provenance: Provenance(createdUnixSeconds: 0, source: "test"))
        let file = try ModelFile(path: path)
        let entry = try #require(file.entry(named: "t"))
        let caller = UInt(pthread_self())
        let one = file.forEachStretch(of: entry, Set<UInt>(), threadCount: 1) { threads, _, _, _ in
            threads.insert(UInt(pthread_self()))
            return nil
        }
        #expect(one.count == 200 && Set(one.flatMap(\.state)) == [caller])
        try file.requireValid(entry, threadCount: 1)
    }

    @Test("A writer's chunk CRCs are those of its chunks however the bytes arrive: small pieces, pieces of many chunks (checksummed and written by its threads at their offsets, or checksummed on another thread while written in order; with one thread, chunk by chunk) from a chunk boundary or not, a partial last chunk",
          arguments: [true, false], [1, 3])
    func writerChunkCRCs(placed: Bool, threads: Int) throws {
        let directory = TemporaryDirectory()
        var options = ModelWriter.Options()
        options.chunkByteCount = 256
        options.placesWrites = placed
        options.threadCount = threads
        var random = SplitMix64(seed: 4)
        let count = 256 * 40 + 100
        let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        let expected = stride(from: 0, to: count, by: 256).map { start in
            bytes[start..<min(start + 256, count)].withUnsafeBytes { CRC32.checksum($0) }
        }
        let splits: [[Int]] = [[count], [10, count - 10], [256 * 4, count - 256 * 4], [256 * 4 - 1, 1, 256 * 30, count - 256 * 34],
                               Array(repeating: 103, count: count / 103) + [count % 103]]
        for (index, pieces) in splits.enumerated() {
            let path = directory.path("chunks-\(index).mtlm")
            let writer = try ModelWriter(path: path, options: options)
            try writer.beginTensor("t", dtype: .float32, shape: [UInt64(count / 4)], role: .parameter)
            var start = 0
            for piece in pieces {
                try bytes[start..<(start + piece)].withUnsafeBytes { try writer.write($0) }
                start += piece
            }
            try writer.endTensor()
            try writer.finish(architecture: architecture(fromConfig: "small.json"), provenance: Provenance(createdUnixSeconds: 0, source: "test"))
            let file = try ModelFile(path: path)
            #expect(try #require(file.entry(named: "t")).chunkCRC32 == expected, "pieces \(pieces.prefix(4))")
            // (Random bytes are not a model: only what the checksums say matters here.)
            #expect(!ModelVerifier(threadCount: 1).verify(file).problems.contains { $0.kind == .checksum || $0.kind == .padding })
        }
    }

    @Test("NaN, Inf and values ≥ 2^64 are counted in float32, float16 and bfloat16, at any count")
    func nonFiniteCounts() {
        for count in [0, 1, 7, 8, 9, 100, 3000] {
            var floats = (0..<count).map { Float($0) - 50 }
            var nan = 0, inf = 0, huge = 0
            for i in stride(from: 3, to: count, by: 11) { floats[i] = .nan; nan += 1 }
            for i in stride(from: 5, to: count, by: 13) where !floats[i].isNaN { floats[i] = i % 2 == 0 ? .infinity : -.infinity; inf += 1 }
            // 2^64 exactly and beyond count as huge (whatever the sign); just below does not.
            for i in stride(from: 2, to: count, by: 17) where floats[i].isFinite {
                floats[i] = [Float(0x1p64), -3e38, Float(0x1p64).nextDown][i % 3]
                if i % 3 != 2 { huge += 1 }
            }
            var n32: UInt64 = 0, i32: UInt64 = 0, h32: UInt64 = 0
            floats.withUnsafeBytes { mtlm_count_nonfinite_f32($0.baseAddress?.assumingMemoryBound(to: UInt32.self), count, &n32, &i32, &h32) }
            #expect(n32 == UInt64(nan) && i32 == UInt64(inf) && h32 == UInt64(huge), "float32, \(count)")
            // Values beyond float16's range become Inf there.
            let halves = floats.map { Float16($0).bitPattern }
            let halfInf = floats.filter { !$0.isNaN && Float16($0).isInfinite }.count
            var n16: UInt64 = 0, i16: UInt64 = 0, h16: UInt64 = 0
            halves.withUnsafeBufferPointer { mtlm_count_nonfinite_16($0.baseAddress, count, 0x7C00, 0x03FF, 0xFFFF, &n16, &i16, &h16) }
            #expect(n16 == UInt64(nan) && i16 == UInt64(halfInf) && h16 == 0, "float16, \(count)")
            let bfloats = floats.map { RowCodec.bfloat($0) }
            let bfloatHuge = floats.filter { Float(bitPattern: UInt32(RowCodec.bfloat($0)) << 16).magnitude >= 0x1p64 && $0.isFinite }.count
            var nb: UInt64 = 0, ib: UInt64 = 0, hb: UInt64 = 0
            bfloats.withUnsafeBufferPointer { mtlm_count_nonfinite_16($0.baseAddress, count, 0x7F80, 0x007F, 0x5F80, &nb, &ib, &hb) }
            #expect(nb == UInt64(nan) && ib == UInt64(inf) && hb == UInt64(bfloatHuge), "bfloat16, \(count)")
        }
    }
}

@Suite("float16 conversion")
struct HalfConversionTests {
    @Test("RowCodec.half gives Float16's bits: normals, subnormals, ties, overflow, zeros, infinities")
    func matchesFloat16() {
        var random = SplitMix64(seed: 77)
        var values: [Float] = [0, -0, 1, -1, 65504, 65519.99, 65520, 65536, 1e10, -1e10, .infinity, -.infinity, .nan,
                               6.1035156e-05, 6.1e-05, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08, 1e-10, .leastNonzeroMagnitude]
        // Every tie between two float16 values in [1, 2), and random bit patterns of every exponent.
        for m in 0..<1024 { values.append(Float(bitPattern: 0x3F80_0000 | UInt32(m) << 13 | 0x1000)) }
        for _ in 0..<200_000 { values.append(Float(bitPattern: UInt32(truncatingIfNeeded: random.next()))) }
        var mismatches = 0
        for value in values where !value.isNaN {
            if RowCodec.half(value) != Float16(value).bitPattern { mismatches += 1 }
        }
        #expect(mismatches == 0)
        #expect(Float16(bitPattern: RowCodec.half(.nan)).isNaN)
    }

    @Test("RowCodec.float(fromHalf:) gives Float(Float16)'s bits for every one of the 65536 float16 bit patterns, NaNs included")
    func decodesEveryHalf() {
        var mismatches: [UInt16] = []
        for bits in 0...UInt16.max where RowCodec.float(fromHalf: bits).bitPattern != Float(Float16(bitPattern: bits)).bitPattern {
            mismatches.append(bits)
        }
        #expect(mismatches.isEmpty, "first: \(mismatches.prefix(5).map { String($0, radix: 16) })")
    }

    @Test("int4 levels: clamped to [0, 15] and rounded half to even")
    func int4Levels() {
        for v: Float in [-3, -0.5, 0, 0.4, 0.5, 1.5, 2.5, 7.49, 14.5, 15, 15.5, 99] {
            #expect(Int4Reference.int4Level(v) == min(max(v.rounded(.toNearestOrEven), 0), 15), "\(v)")
        }
    }
}
