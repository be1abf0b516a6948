import Foundation
import Testing
@testable import MTLModel

@Suite("Write → read round trips")
struct RoundTripTests {
    static let configs = ["model-md-example.json", "model-md-small.json", "small.json", "one-field.json", "edge-cases.json"]

    @Test("synth → read gives back the config and a valid model", arguments: configs, [false, true])
    func synthRoundTrip(config: String, training: Bool) throws {
        let directory = TemporaryDirectory()
        var arch = try architecture(fromConfig: config)
        if training && arch.optimizer == nil { arch.optimizer = .init(type: .adam, parameters: []) }
        let path = directory.path("model.mtlm")
        try Synthesizer(seed: 42, training: training).write(arch, to: path, source: "test")
        let model = try ModelFile(path: path)
        #expect(model.architecture == arch)
        #expect(try Architecture(config: model.architecture.config) == arch)
        #expect(model.version == FormatVersion(major: 1, minor: 0))
        let expected = training ? arch.trainingFormTensors : arch.servingTensors
        #expect(model.tensors.map(\.name) == expected.map(\.name))
        #expect(model.tensors.map(\.shape) == expected.map(\.shape))
        let report = ModelVerifier().verify(model)
        #expect(report.problems == [])
    }

    @Test("Tensors written piece by piece read back bit-identical, compressed or not",
          arguments: [Compression.none, .zlib], [UInt64(64), 960, 1 << 20])
    func bitIdentical(compression: Compression, chunk: UInt64) throws {
        let directory = TemporaryDirectory()
        let arch = try architecture(fromConfig: "small.json")
        var options = ModelWriter.Options()
        options.compression = compression
        options.chunkByteCount = chunk
        let path = directory.path("model.mtlm")
        let writer = try ModelWriter(path: path, options: options)
        var random = SplitMix64(seed: 9)
        var written: [String: [UInt8]] = [:]
        for spec in arch.trainingFormTensors where spec.role != .optimizerSlot {
            let count = Int(spec.elementCount) * spec.dtype.elementByteCount!
            // Random bytes, with NaN payloads and all bit patterns: the format must not care.
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            try writer.beginTensor(spec.name, dtype: spec.dtype, shape: spec.shape, role: spec.role)
            var offset = 0
            while offset < count {  // uneven pieces cross chunk boundaries
                let piece = min(count - offset, Int(random.next() % 97) + 1)
                try bytes[offset..<offset + piece].withUnsafeBytes { try writer.write($0) }
                offset += piece
            }
            try writer.endTensor()
            written[spec.name] = bytes
        }
        try writer.finish(architecture: arch, provenance: Provenance(createdUnixSeconds: 1, source: "test"),
                          metadata: [.init(key: "team", value: "ranking"), .init(key: "note", value: "ünïcödé ✓")])
        let model = try ModelFile(path: path)
        #expect(try tensorBytes(model) == written)
        #expect(model.manifest.metadata.map(\.key) == ["team", "note"])
        #expect(model.manifest.metadata[1].value == "ünïcödé ✓")
        #expect(model.requiredFeatures == (compression == .zlib ? [.zlibChunks] : []))
        for entry in model.tensors {
            #expect(entry.offset % 64 == 0)
            if entry.compression == .none, entry.byteCount > 0 {
                try model.withTensorBytes(entry.name) { #expect(Int(bitPattern: $0.baseAddress) % 64 == 0) }
            }
        }
    }

    @Test("The same seed gives the same weights; compression does not change them")
    func deterministicSynth() throws {
        let directory = TemporaryDirectory()
        let arch = try architecture(fromConfig: "small.json")
        try Synthesizer(seed: 5, training: true).write(arch, to: directory.path("a.mtlm"), source: "a")
        try Synthesizer(seed: 5, training: true).write(arch, to: directory.path("b.mtlm"), source: "b")
        var zlib = ModelWriter.Options()
        zlib.compression = .zlib
        try Synthesizer(seed: 5, training: true, writerOptions: zlib).write(arch, to: directory.path("c.mtlm"), source: "c")
        try Synthesizer(seed: 6).write(arch, to: directory.path("d.mtlm"), source: "d")
        let a = try tensorBytes(ModelFile(path: directory.path("a.mtlm")))
        #expect(a == (try tensorBytes(ModelFile(path: directory.path("b.mtlm")))))
        #expect(a == (try tensorBytes(ModelFile(path: directory.path("c.mtlm")))))
        let d = try tensorBytes(ModelFile(path: directory.path("d.mtlm")))
        #expect(a["embedding.user_id.weight"] != d["embedding.user_id.weight"])
    }

    @Test("Synthetic weights have the documented initial scales")
    func initialScales() throws {
        let directory = TemporaryDirectory()
        let arch = try architecture(fromConfig: "small.json")
        try Synthesizer(seed: 1, training: true).write(arch, to: directory.path("m.mtlm"), source: "t")
        let model = try ModelFile(path: directory.path("m.mtlm"))
        let embedding = try model.floats("embedding.user_id.weight")
        #expect(embedding.allSatisfy { abs($0) <= 0.05 } && Set(embedding).count > 70)
        let dense = try model.floats("shared.0.weight")  // [8, 16]: U(±1/4)
        #expect(dense.allSatisfy { abs($0) <= 0.25 } && dense.contains { abs($0) > 0.15 })
        #expect(try model.floats("shared.0.bn.running_var") == Array(repeating: 1, count: 8))
        #expect(try model.floats("shared.0.bn.weight") == Array(repeating: 1, count: 8))
        #expect(try model.floats("optimizer.shared.0.weight.sum") == Array(repeating: Float(0.001), count: 128))
        #expect(try model.floats("loss.log_var") == [0.1, -0.2])
        let keys = try model.withTensorBytes("embedding.item_id.keys") { raw in (0..<12).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self) } }
        #expect(Set(keys).count == 12)
        #expect(keys.contains { $0 >= 1 << 63 })  // keys use the whole unsigned range
    }

    @Test("Tensors can be viewed as typed buffers of their dtype only")
    func typedAccess() throws {
        let model = try ModelFile(path: TestPaths.fixture("v1.0/small.mtlm"))
        let sum = try model.withElements(of: "shared.0.bn.running_var", as: Float.self) { $0.reduce(0, +) }
        #expect(sum == 8)
        let keys = try model.withElements(of: "embedding.item_id.keys", as: UInt64.self) { Array($0) }
        #expect(keys.count == 12 && Set(keys).count == 12)
        #expect(throws: MTLModelError.self) { try model.withElements(of: "shared.0.weight", as: Int64.self) { _ in } }
        #expect(throws: MTLModelError.self) { try model.withElements(of: "nope", as: Float.self) { _ in } }
    }

    @Test("Synth of training state without an optimizer section names the key")
    func trainingNeedsOptimizer() throws {
        let directory = TemporaryDirectory()
        let arch = try architecture(fromConfig: "one-field.json")
        #expect {
            try Synthesizer(training: true).write(arch, to: directory.path("m.mtlm"), source: "t")
        } throws: { ($0 as? MTLModelError)?.location.key == "optimizer" }
        #expect(!FileManager.default.fileExists(atPath: directory.path("m.mtlm")))
    }

    @Test("A writer that is not finished leaves nothing behind")
    func abandonedWriter() throws {
        let directory = TemporaryDirectory()
        do {
            let writer = try ModelWriter(path: directory.path("m.mtlm"))
            try writer.beginTensor("x", dtype: .float32, shape: [4], role: .parameter)
            try [Float](repeating: 1, count: 2).withUnsafeBytes { try writer.write($0) }
            #expect(throws: MTLModelError.self) { try writer.endTensor() }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path) == [])
    }

    @Test("Writer misuse is refused")
    func writerMisuse() throws {
        let directory = TemporaryDirectory()
        let writer = try ModelWriter(path: directory.path("m.mtlm"))
        #expect(throws: MTLModelError.self) { try writer.beginTensor("bad name", dtype: .float32, shape: [1], role: .parameter) }
        #expect(throws: MTLModelError.self) { try writer.beginTensor("huge", dtype: .float32, shape: [1 << 40, 1 << 40], role: .parameter) }
        try writer.beginTensor("x", dtype: .float32, shape: [1], role: .parameter)
        #expect(throws: MTLModelError.self) { try [Float](repeating: 0, count: 2).withUnsafeBytes { try writer.write($0) } }
        try [Float(1)].withUnsafeBytes { try writer.write($0) }
        try writer.endTensor()
        #expect(throws: MTLModelError.self) { try writer.beginTensor("x", dtype: .float32, shape: [1], role: .parameter) }
    }

    @Test("Without fsync (Options.synchronize off) the file is the same, still written atomically")
    func unsynchronized() throws {
        let directory = TemporaryDirectory()
        var options = ModelWriter.Options()
        options.synchronize = false
        let architecture = try MTLModelTests.architecture(fromConfig: "small.json")
        try Synthesizer(seed: 5, writerOptions: options).write(architecture, to: directory.path("fast.mtlm"), source: "t")
        try Synthesizer(seed: 5).write(architecture, to: directory.path("durable.mtlm"), source: "t")
        #expect(try tensorBytes(ModelFile(path: directory.path("fast.mtlm"))) == tensorBytes(ModelFile(path: directory.path("durable.mtlm"))))
        #expect(firstProblem(directory.path("fast.mtlm")) == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path).sorted() == ["durable.mtlm", "fast.mtlm"])
    }
}
