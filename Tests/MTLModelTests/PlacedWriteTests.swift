import Dispatch
import Foundation
import Testing
@testable import MTLModel

/// Writes at offsets by several threads (`PlacedWrites`, `PlacedTensor`) against the writer's
/// sequential writes: the same file, byte for byte.
@Suite("Placed writes")
struct PlacedWriteTests {
    static let architecture = #"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 70000}, {"name": "b", "vocab_size": 5}], "linear": true, "tasks": [{"name": "t"}]}"#

    /// Each serving tensor's bytes: random floats (keys are none: the fields are direct).
    func contents(_ arch: Architecture) -> [(TensorSpec, [UInt8])] {
        var random = SplitMix64(seed: 7)
        return arch.servingTensors.map { spec in
            let values = (0..<Int(spec.elementCount)).map { _ in random.nextFloat(-1, 1) }
            return (spec, values.withUnsafeBytes { Array($0) })
        }
    }

    func options(chunk: UInt64, placed: Bool) -> ModelWriter.Options {
        var options = ModelWriter.Options()
        options.chunkByteCount = chunk
        options.synchronize = false
        options.placesWrites = placed
        return options
    }

    /// Writes every tensor whole (large pieces: every core's run of chunks when placed).
    func writeWhole(_ path: String, chunk: UInt64, placed: Bool, architecture: String = Self.architecture) throws -> [UInt8] {
        let arch = try MTLModelTests.architecture(json: architecture)
        let writer = try ModelWriter(path: path, options: options(chunk: chunk, placed: placed))
        for (spec, bytes) in contents(arch) {
            try bytes.withUnsafeBytes { try writer.writeTensor(spec.name, dtype: spec.dtype, shape: spec.shape, role: spec.role, bytes: $0) }
        }
        try writer.finish(architecture: arch, provenance: Provenance(createdUnixSeconds: 0, source: "t"))
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    @Test("Whole tensors written by every core are the bytes one thread writes, at chunk sizes that split them unevenly",
          arguments: [64, 192, 4096] as [UInt64])
    func wholeTensors(chunk: UInt64) throws {
        let directory = TemporaryDirectory()
        let placed = try writeWhole(directory.path("placed.mtlm"), chunk: chunk, placed: true)
        let sequential = try writeWhole(directory.path("sequential.mtlm"), chunk: chunk, placed: false)
        #expect(placed == sequential)
        #expect(firstProblem(directory.path("placed.mtlm")) == nil)
    }

    @Test("Tables of several MiB, written whole by every core, are the bytes one thread writes, at chunk sizes that split them unevenly between the cores",
          arguments: [64, 192, 1 << 20, (1 << 20) + 64, 3 << 20] as [UInt64])
    func largeTables(chunk: UInt64) throws {
        let directory = TemporaryDirectory()
        let large = #"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 625003}, {"name": "b", "vocab_size": 300001}], "linear": true, "tasks": [{"name": "t"}]}"#
        let placed = try writeWhole(directory.path("placed.mtlm"), chunk: chunk, placed: true, architecture: large)
        let sequential = try writeWhole(directory.path("sequential.mtlm"), chunk: chunk, placed: false, architecture: large)
        #expect(placed == sequential)
        #expect(firstProblem(directory.path("placed.mtlm")) == nil)
    }

    @Test("A placed tensor: pieces of random lengths across chunk boundaries, from several threads in random order, make the file sequential writes make")
    func piecesInAnyOrder() throws {
        let directory = TemporaryDirectory()
        let sequential = try writeWhole(directory.path("sequential.mtlm"), chunk: 192, placed: false)
        let arch = try MTLModelTests.architecture(json: Self.architecture)
        let writer = try ModelWriter(path: directory.path("placed.mtlm"), options: options(chunk: 192, placed: true))
        var random = SplitMix64(seed: 3)
        for (spec, bytes) in contents(arch) {
            try writer.beginTensor(spec.name, dtype: spec.dtype, shape: spec.shape, role: spec.role)
            let placed = try #require(try writer.placedTensor())
            var pieces: [Range<Int>] = []
            while (pieces.last?.upperBound ?? 0) < bytes.count {
                let start = pieces.last?.upperBound ?? 0
                pieces.append(start..<min(bytes.count, start + 1 + Int(random.next() % 600)))
            }
            pieces.shuffle(using: &random)
            let failures = WorkResults<MTLModelError>(count: pieces.count)
            let shared = pieces
            bytes.withUnsafeBytes { raw in
                let source = UnsafeSendableBytes(raw)
                DispatchQueue.concurrentPerform(iterations: shared.count) { i in
                    do throws(MTLModelError) {
                        try placed.write(UnsafeRawBufferPointer(rebasing: source.bytes[shared[i]]), at: UInt64(shared[i].lowerBound))
                    } catch { failures.set(i, error) }
                }
            }
            #expect(failures.all.allSatisfy { $0 == nil })
            writer.placedBytesWritten(below: UInt64(bytes.count))
            try writer.endTensor()
        }
        try writer.finish(architecture: arch, provenance: Provenance(createdUnixSeconds: 0, source: "t"))
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: directory.path("placed.mtlm")))) == sequential)
    }

    @Test("A placed tensor refuses a gap, an overlap, bytes outside it and writes in order; an output written in place takes no placed writes")
    func refusals() throws {
        let directory = TemporaryDirectory()
        let bytes = [UInt8](repeating: 1, count: 1000)
        func attempt(_ pieces: [(Range<Int>)]) throws -> String? {
            let writer = try ModelWriter(path: directory.path("x.mtlm"), options: options(chunk: 256, placed: true))
            try writer.beginTensor("x", dtype: .float32, shape: [250], role: .parameter)
            let placed = try #require(try writer.placedTensor())
            do {
                try bytes.withUnsafeBytes { raw in
                    for piece in pieces { try placed.write(UnsafeRawBufferPointer(rebasing: raw[piece]), at: UInt64(piece.lowerBound)) }
                }
                try writer.endTensor()
                return nil
            } catch {
                return "\(error)"
            }
        }
        #expect(try attempt([0..<600, 600..<1000]) == nil)
        #expect(try attempt([0..<500, 600..<1000])?.contains("bytes 500..<600 of tensor \"x\" were never written") == true)
        #expect(try attempt([0..<600, 500..<1000])?.contains("bytes 500..<512 of tensor \"x\" were written twice") == true)
        #expect(try attempt([0..<600])?.contains("got 600 of its 1000 bytes") == true)
        let outside = try ModelWriter(path: directory.path("y.mtlm"), options: options(chunk: 256, placed: true))
        try outside.beginTensor("y", dtype: .float32, shape: [10], role: .parameter)
        let placed = try #require(try outside.placedTensor())
        #expect(throws: MTLModelError.self) { try bytes.withUnsafeBytes { try placed.write(UnsafeRawBufferPointer(rebasing: $0[0..<41]), at: 0) } }
        #expect(throws: MTLModelError.self) { try bytes.withUnsafeBytes { try outside.write(UnsafeRawBufferPointer(rebasing: $0[0..<40])) } }
        #expect(throws: MTLModelError.self) { try bytes.withUnsafeBytes { try outside.write(UnsafeRawBufferPointer(rebasing: $0[0..<40]), checkedCRC: 0) } }
        let inPlace = try ModelWriter(path: "/dev/null", options: options(chunk: 256, placed: true))
        try inPlace.beginTensor("z", dtype: .float32, shape: [10], role: .parameter)
        #expect(try inPlace.placedTensor() == nil)
    }
}

/// Bytes the caller keeps alive while `concurrentPerform` reads them.
private struct UnsafeSendableBytes: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }
}
