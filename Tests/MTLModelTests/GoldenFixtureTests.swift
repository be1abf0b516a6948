import Foundation
import Testing
@testable import MTLModel

/// The files in fixtures/v1.0 … v1.4 were written once by the release that introduced
/// their version and are never regenerated: every later reader must read them as it did.
@Suite("Golden fixtures of every format version")
struct GoldenFixtureTests {
    static let fixtures = ["v1.0/small", "v1.0/small-training", "v1.0/edge-cases-training-zlib",
                           "v1.1/small-int8", "v1.1/small-int4-training", "v1.2/small-edited.mtlmd", "v1.3/small-training",
                           "v1.4/small-training-edited.mtlmd"]

    @Test("inspect --json --tensors gives the recorded document", arguments: fixtures)
    func inspectOutput(name: String) throws {
        let delta = name.hasSuffix(".mtlmd")
        let file = delta ? name : name + ".mtlm"
        let result = try runCLI(["inspect", TestPaths.fixture(file), "--json", "--tensors"])
        #expect(result.status == 0)
        guard case .object(var actual) = try JSONValue.parse(Data(result.stdout.utf8)),
              case .object(var expected) = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture((delta ? String(name.dropLast(6)) : name) + ".inspect.json")))) else {
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

    @Test("The sharded 1.3 fixture: a root and three shards that verify together and alone, holding by id every row of v1.0/small-training")
    func shardedGolden() throws {
        let model = try Model(path: TestPaths.fixture("v1.3/small-training.mtlm"))
        let original = try Model(path: TestPaths.fixture("v1.0/small-training.mtlm"))
        #expect(model.file.version == FormatVersion(major: 1, minor: 3) && model.file.requiredFeatures == [.sharding])
        #expect(model.shards.map { ($0.path as NSString).lastPathComponent } == (1...3).map { "small-training-0000\($0)-of-00003.mtlm" })
        #expect(model.shards.allSatisfy { $0.manifest.shard!.modelID == model.file.manifest.shards!.modelID && ModelVerifier().verify($0).isValid })
        #expect(ModelVerifier().verify(model.file).isValid)
        #expect(model.architecture == original.architecture)
        let item = model.shards.map { $0.manifest.shard!.parts[1] }
        #expect(item.map(\.bucketBits) == [16, 16, 16] && item.map(\.buckets) == [0..<21845, 21845..<43690, 43690..<65536])
        #expect(try runCLI(["diff", TestPaths.fixture("v1.0/small-training.mtlm"), TestPaths.fixture("v1.3/small-training.mtlm")]).status == 0)
        let predicted = try runCLI(["predict", TestPaths.fixture("v1.3/small-training.mtlm"), TestPaths.fixture("predict/small.txt")])
        let expected = try runCLI(["predict", TestPaths.fixture("v1.0/small-training.mtlm"), TestPaths.fixture("predict/small.txt")])
        #expect(predicted.status == 0 && predicted.stdout == expected.stdout)
    }

    @Test("The sharded 1.4 delta applies to the golden 1.3 model, shard by shard, and rebuilds the recorded model tensor for tensor")
    func shardedDeltaGolden() throws {
        let delta = try ModelFile(path: TestPaths.fixture("v1.4/small-training-edited.mtlmd"))
        #expect(delta.version == FormatVersion(major: 1, minor: 4) && delta.requiredFeatures == [.delta, .sharding])
        #expect(ModelVerifier().verify(delta).isValid)
        let directory = TemporaryDirectory()
        let result = try runCLI(["apply", TestPaths.fixture("v1.3/small-training.mtlm"), delta.path, directory.path("r.mtlm")])
        #expect(result.status == 0, "\(result.stderr)")
        let rebuilt = try Model(path: directory.path("r.mtlm")), expected = try Model(path: TestPaths.fixture("v1.4/small-training-edited.mtlm"))
        #expect(rebuilt.files.count == 4 && expected.files.count == 4)
        for (r, e) in zip(rebuilt.files, expected.files) {
            #expect(try tensorBytes(r) == tensorBytes(e) && r.manifest.provenance == e.manifest.provenance, "\(e.path)")
        }
        // The recorded delta patches rows (row 5 of user_id, in shard 1), not only whole tensors.
        let shard = try ModelFile(path: TestPaths.fixture("v1.4/small-training-edited-00001-of-00003.mtlmd"))
        #expect(shard.manifest.delta?.tensors.first { $0.name == "embedding.user_id.weight" }?.source == .rows)
    }

    @Test("Quantized 1.1 files decode to the values they were written with")
    func quantizedGolden() throws {
        let int8 = try ModelFile(path: TestPaths.fixture("v1.1/small-int8.mtlm"))
        let int4 = try ModelFile(path: TestPaths.fixture("v1.1/small-int4-training.mtlm"))
        let original = try ModelFile(path: TestPaths.fixture("v1.0/small.mtlm"))
        #expect(int8.version == FormatVersion(major: 1, minor: 1) && int4.version == FormatVersion(major: 1, minor: 1))
        #expect(int8.entry(named: "embedding.user_id.weight")?.dtype == .int8Rowwise)
        #expect(int4.entry(named: "embedding.user_id.weight")?.dtype == .int4Rowwise)
        #expect(int4.entry(named: "embedding.hour.weight")?.dtype == .bfloat16)
        #expect(int4.entry(named: "shared.0.weight")?.dtype == .int8Symmetric)
        for model in [int8, int4] {
            #expect(ModelVerifier().verify(model).isValid)
            let decoded = try model.floats("embedding.user_id.weight"), exact = try original.floats("embedding.user_id.weight")
            #expect(zip(decoded, exact).allSatisfy { abs($0 - $1) < 0.01 })
        }
        // The first row of the int8 table (q = 112, 204, 0, 255; scale 0.00025128724;
        // bias −0.035393745), decoded as scale · q + bias in float32: pinned by an independent
        // computation (numpy) so that decoding never changes.
        let first = Array(try int8.floats("embedding.user_id.weight").prefix(4))
        #expect(first == [Float(-0.007249573245644569), 0.01586885377764702, -0.035393744707107544, 0.028684504330158234])
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
