import Foundation
import Testing
@testable import MTLModel

@Suite("Atomic writes")
struct AtomicWriteTests {
    /// A config whose model takes long enough to write (≈ 256 MB) to be killed mid-way.
    static let bigConfig = #"{"embedding_dim": 16, "fields": [{"name": "a", "vocab_size": 4000000}], "tasks": [{"name": "t"}]}"#

    @Test("kill -9 during synth leaves the previous file at the target path, and no partial one")
    func killedWriter() throws {
        let directory = TemporaryDirectory()
        let config = directory.path("big.json")
        try Self.bigConfig.write(toFile: config, atomically: true, encoding: .utf8)
        let target = directory.path("model.mtlm")
        try FileManager.default.copyItem(atPath: TestPaths.fixture("v1.0/small.mtlm"), toPath: target)
        let before = try Data(contentsOf: URL(fileURLWithPath: target))
        for delay in [0.05, 0.1, 0.2] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: TestPaths.executable)
            process.arguments = ["synth", config, target]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            Thread.sleep(forTimeInterval: delay)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            // The kill came before the rename: the previous file, complete and untouched.
            #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == before)
        }
        // Each killed writer left only its temporary file, recognisable by name.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.url.path).filter { !["big.json", "model.mtlm"].contains($0) }
        #expect(leftovers.count == 3)
        #expect(leftovers.allSatisfy { $0.hasPrefix(".model.mtlm.mtlm-tmp-") })
    }

    @Test("A failed write leaves the previous file untouched")
    func failedWrite() throws {
        let directory = TemporaryDirectory()
        let target = directory.path("model.mtlm")
        try FileManager.default.copyItem(atPath: TestPaths.fixture("v1.0/small.mtlm"), toPath: target)
        let before = try Data(contentsOf: URL(fileURLWithPath: target))
        do {
            let writer = try ModelWriter(path: target)
            try [Float](repeating: 1, count: 4).withUnsafeBytes { try writer.writeTensor("x", dtype: .float32, shape: [4], role: .parameter, bytes: $0) }
            let arch = try architecture(fromConfig: "small.json")
            // Not the architecture's tensors, but finish() writes what it was given; an
            // invalid architecture is what makes it fail.
            var invalid = arch
            invalid.embeddingDim = 0
            #expect(throws: MTLModelError.self) { try writer.finish(architecture: invalid, provenance: Provenance(createdUnixSeconds: 0, source: "t")) }
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path) == ["model.mtlm"])
    }

    @Test("Writing into a missing directory is a clear I/O error")
    func missingDirectory() {
        #expect {
            _ = try ModelWriter(path: "/nonexistent-dir/m.mtlm")
        } throws: { error in
            guard let error = error as? MTLModelError else { return false }
            return error.code == .io && error.file == "/nonexistent-dir/m.mtlm" && error.message.contains("No such file or directory")
        }
    }
}
