import Foundation
import Testing
@testable import MTLModel

@Suite("Corrupt and hostile files")
struct CorruptFileTests {
    struct Case: Decodable, CustomTestStringConvertible {
        var file: String
        var code: String
        var message: String
        var verifyExit: Int32
        var testDescription: String { file }
    }

    static let cases: [Case] = {
        let url = TestPaths.fixtures.appendingPathComponent("corrupt/expected.json")
        return (try? JSONDecoder().decode([Case].self, from: Data(contentsOf: url))) ?? []
    }()

    @Test("The corpus is there")
    func corpusPresent() {
        #expect(Self.cases.count >= 20)
    }

    @Test("Each corrupt fixture gives its documented error", arguments: cases)
    func documentedError(_ c: Case) throws {
        let path = TestPaths.fixture("corrupt/" + c.file)
        do {
            let model = try ModelFile(path: path)
            let report = ModelVerifier().verify(model)
            #expect(c.verifyExit == 1, "opened, but the case expects an open error: \(c.message)")
            #expect(report.problems.contains { $0.message.contains(c.message) }, "\(report.problems)")
        } catch {
            #expect(c.verifyExit == 2, "\(error)")
            #expect(error.code.rawValue == c.code)
            #expect(error.message.contains(c.message), "\(error.message)")
            #expect(error.file == path)
        }
    }

    @Test("verify exits with the documented code and one line per error", arguments: cases)
    func verifyExitCode(_ c: Case) throws {
        let result = try runCLI(["verify", TestPaths.fixture("corrupt/" + c.file)])
        #expect(result.status == c.verifyExit)
        if c.verifyExit == 2 {
            #expect(result.stderr.split(separator: "\n").count == 1)
            #expect(result.stderr.contains(c.message))
        } else {
            #expect(result.stdout.contains(c.message))
        }
    }

    @Test("Every flipped byte and every truncation is detected",
          arguments: ["v1.0/small.mtlm", "v1.0/edge-cases-training-zlib.mtlm"])
    func everyByte(fixture: String) throws {
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture(fixture))))
        #expect(firstProblem(TestPaths.fixture(fixture)) == nil)
        let directory = TemporaryDirectory()
        let path = directory.path("variant.mtlm")
        // One file changed in place, a byte at a time, then cut shorter and shorter: rewriting
        // it whole each time (truncated to 0) makes ext4 start its writeback at every close, and
        // the next truncation wait for the disk — most of this test's time, which was CI's
        // longest (90 s; 145 s under AddressSanitizer).
        try Data(original).write(to: URL(fileURLWithPath: path))
        let file = open(path, O_RDWR)
        #expect(file >= 0)
        defer { close(file) }
        func put(_ byte: UInt8, at index: Int) { var byte = byte; #expect(pwrite(file, &byte, 1, off_t(index)) == 1) }
        var undetected: [String] = []
        for index in original.indices {
            put(original[index] ^ 0x40, at: index)
            if firstProblem(path) == nil { undetected.append("flip at \(index)") }
            put(original[index], at: index)
        }
        for length in (0..<original.count).reversed() {
            #expect(ftruncate(file, off_t(length)) == 0)
            if firstProblem(path) == nil { undetected.append("truncation to \(length)") }
        }
        #expect(undetected.isEmpty, "\(undetected.prefix(20))")
    }

    @Test("Manifest limits are enforced before unpacking")
    func manifestLimits() throws {
        var options = ModelFile.Options()
        options.limits.maxManifestByteCount = 100
        #expect {
            _ = try ModelFile(path: TestPaths.fixture("v1.0/small.mtlm"), options: options)
        } throws: { ($0 as? MTLModelError)?.message.contains("exceeds the limit of 100") == true }
        options = ModelFile.Options()
        options.limits.maxManifestAllocationByteCount = 1000
        #expect {
            _ = try ModelFile(path: TestPaths.fixture("v1.0/small.mtlm"), options: options)
        } throws: { ($0 as? MTLModelError)?.message.contains("bytes of memory to unpack") == true }
        options = ModelFile.Options()
        options.limits.maxTensorCount = 10
        #expect {
            _ = try ModelFile(path: TestPaths.fixture("v1.0/small.mtlm"), options: options)
        } throws: { ($0 as? MTLModelError)?.message.contains("more than the limit of 10") == true }
    }

    @Test("A tensor whose checksum fails is refused on access, unless checking is off")
    func checksumOnAccess() throws {
        let path = TestPaths.fixture("corrupt/data-bitflip.mtlm")
        let model = try ModelFile(path: path)
        #expect(throws: MTLModelError.self) { _ = try model.floats("embedding.user_id.weight") }
        #expect(try model.floats("embedding.tags.weight").count == 32)
        var options = ModelFile.Options()
        options.verifyChecksumsOnAccess = false
        let unchecked = try ModelFile(path: path, options: options)
        #expect(try unchecked.floats("embedding.user_id.weight").count == 80)
    }

    @Test("Structure problems are listed: missing, unexpected, wrong shape, partial training state")
    func structure() throws {
        let arch = try architecture(fromConfig: "small.json")
        let directory = TemporaryDirectory()
        let path = directory.path("m.mtlm")
        let writer = try ModelWriter(path: path)
        for spec in arch.servingTensors where spec.name != "linear.bias" {
            let shape = spec.name == "interaction.pair_weight" ? [UInt64(4)] : spec.shape
            var bytes = [UInt8](repeating: 0, count: Int(shape.reduce(1, *)) * spec.dtype.elementByteCount!)
            if spec.role == .keys {  // distinct keys, so only structure problems remain
                bytes.withUnsafeMutableBytes { raw in for i in 0..<12 { raw.storeBytes(of: UInt64(i), toByteOffset: i * 8, as: UInt64.self) } }
            }
            try bytes.withUnsafeBytes { try writer.writeTensor(spec.name, dtype: spec.dtype, shape: shape, role: spec.role, bytes: $0) }
        }
        try [Float](repeating: 0, count: 3).withUnsafeBytes { try writer.writeTensor("extra.thing", dtype: .float32, shape: [3], role: .parameter, bytes: $0) }
        try [Float](repeating: 0, count: 2).withUnsafeBytes { try writer.writeTensor("loss.log_var", dtype: .float32, shape: [2], role: .lossLogVar, bytes: $0) }
        try [Int64](repeating: 0, count: 20).withUnsafeBytes { try writer.writeTensor("stats.user_id.count", dtype: .int64, shape: [20], role: .rowCount, bytes: $0) }
        try writer.finish(architecture: arch, provenance: Provenance(createdUnixSeconds: 0, source: "test"))
        let problems = ModelVerifier().verify(try ModelFile(path: path)).problems
        let byTensor = Dictionary(grouping: problems, by: { $0.tensor ?? "" })
        #expect(byTensor["linear.bias"]?.first?.message.contains("missing") == true)
        #expect(byTensor["interaction.pair_weight"]?.first?.message.contains("the architecture needs a float type [3]") == true)
        #expect(byTensor["extra.thing"]?.first?.message.contains("not part of the architecture") == true)
        #expect(byTensor["stats.item_id.count"]?.first?.message.contains("missing") == true)  // partial group
        #expect(byTensor["loss.log_var"] == nil)
        #expect(byTensor["optimizer.step"] == nil)  // an absent group is fine
        #expect(problems.allSatisfy { $0.kind == .structure })
    }

    @Test("NaN, Inf, duplicate keys and negative counts are reported")
    func values() throws {
        let arch = try architecture(fromConfig: "small.json")
        let directory = TemporaryDirectory()
        let path = directory.path("m.mtlm")
        let writer = try ModelWriter(path: path)
        for spec in arch.trainingTensors(.rowCounts) + arch.servingTensors {
            var bytes = [UInt8](repeating: 0, count: Int(spec.elementCount) * spec.dtype.elementByteCount!)
            bytes.withUnsafeMutableBytes { raw in
                if spec.name == "shared.1.weight" {
                    raw.storeBytes(of: Float.nan, toByteOffset: 0, as: Float.self)
                    raw.storeBytes(of: -Float.infinity, toByteOffset: 8, as: Float.self)
                }
                if spec.name == "embedding.item_id.keys" {
                    for i in 0..<12 { raw.storeBytes(of: UInt64(i % 11), toByteOffset: i * 8, as: UInt64.self) }
                }
                if spec.name == "stats.hour.count" { raw.storeBytes(of: Int64(-3), toByteOffset: 16, as: Int64.self) }
            }
            try bytes.withUnsafeBytes { try writer.writeTensor(spec.name, dtype: spec.dtype, shape: spec.shape, role: spec.role, bytes: $0) }
        }
        try writer.finish(architecture: arch, provenance: Provenance(createdUnixSeconds: 0, source: "test"))
        let problems = ModelVerifier().verify(try ModelFile(path: path)).problems
        #expect(problems.count == 3)
        #expect(problems.contains { $0.tensor == "shared.1.weight" && $0.message == "1 NaN and 1 Inf values (the first at row 0, column 0)" })
        #expect(problems.contains { $0.tensor == "embedding.item_id.keys" && $0.message == "duplicate key 0" })
        #expect(problems.contains { $0.tensor == "stats.hour.count" && $0.message.contains("negative value at element 2") })
        // The keys are read for the duplicate check as stored (the stretches checksum them): a
        // keys tensor that fails its checksum reports that, and no finding of the check.
        let keys = try #require(try ModelFile(path: path).entry(named: "embedding.item_id.keys"))
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: keys.offset + 5 * 8 + 1)
        try handle.write(contentsOf: Data([0x5A]))
        try handle.close()
        let corrupt = ModelVerifier().verify(try ModelFile(path: path)).problems.filter { $0.tensor == "embedding.item_id.keys" }
        #expect(corrupt.count == 1 && corrupt[0].kind == .checksum, "\(corrupt)")
    }
}
