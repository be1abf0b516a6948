import Foundation
import Testing
@testable import MTLModel

/// The files in fixtures/v1.0 were written once by the first release and are never
/// regenerated: every later reader must read them exactly as it did.
@Suite("Golden fixtures of format 1.0")
struct GoldenFixtureTests {
    static let fixtures = ["small", "small-training", "edge-cases-training-zlib"]

    @Test("inspect --json --tensors gives the recorded document", arguments: fixtures)
    func inspectOutput(name: String) throws {
        let result = try runCLI(["inspect", TestPaths.fixture("v1.0/\(name).mtlm"), "--json", "--tensors"])
        #expect(result.status == 0)
        guard case .object(var actual) = try JSONValue.parse(Data(result.stdout.utf8)),
              case .object(var expected) = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("v1.0/\(name).inspect.json")))) else {
            Issue.record("not JSON objects")
            return
        }
        // The path is whatever the caller typed; everything else must match exactly.
        #expect(actual.removeValue(forKey: "file") != nil)
        expected["file"] = nil
        #expect(actual == expected)
    }

    @Test("Golden files verify and carry the configs they were made from")
    func contents() throws {
        for (name, config) in [("small", "small.json"), ("small-training", "small.json"), ("edge-cases-training-zlib", "edge-cases.json")] {
            let model = try ModelFile(path: TestPaths.fixture("v1.0/\(name).mtlm"))
            #expect(model.architecture == (try architecture(fromConfig: config)))
            #expect(ModelVerifier().verify(model).isValid)
        }
        let serving = try ModelFile(path: TestPaths.fixture("v1.0/small.mtlm"))
        #expect(serving.manifest.metadata == [.init(key: "team", value: "ranking"), .init(key: "purpose", value: "golden-fixture")])
        #expect(serving.manifest.provenance.source.hasPrefix("synth --seed 7"))
        // Weights are pinned too: the first values of a tensor as synth wrote them in 1.0.
        let regenerated = TemporaryDirectory()
        try Synthesizer(seed: 7).write(serving.architecture, to: regenerated.path("m.mtlm"), source: "t")
        #expect(try tensorBytes(serving) == tensorBytes(ModelFile(path: regenerated.path("m.mtlm"))))
    }

    @Test("Standard protobuf tooling decodes the manifest (protoc --decode)")
    func protocDecodes() throws {
        guard let protoc = ["/usr/bin/protoc", "/usr/local/bin/protoc"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            // CI installs protobuf-compiler: there the check must run.
            #expect(ProcessInfo.processInfo.environment["CI"] == nil, "protoc is not installed")
            return
        }
        let model = try ModelFile(path: TestPaths.fixture("v1.0/small-training.mtlm"))
        let bytes = model.file.copy(model.footer.manifestOffset, model.footer.manifestByteCount)
        let directory = TemporaryDirectory()
        try Data(bytes).write(to: URL(fileURLWithPath: directory.path("manifest.bin")))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: protoc)
        process.arguments = ["--proto_path=\(TestPaths.packageRoot.appendingPathComponent("schema").path)",
                             "--decode=mtlm.v1.Manifest", "mtl_model.proto"]
        process.standardInput = FileHandle(forReadingAtPath: directory.path("manifest.bin"))
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(text.contains("name: \"optimizer.embedding.user_id.weight.sum\""))
        #expect(text.contains("mapping: MAPPING_KEYED"))
        #expect(text.contains("type: OPTIMIZER_TYPE_ADAGRAD"))
        #expect(text.contains("dtype: DTYPE_INT64"))
    }
}
