import Foundation
import Testing
@testable import MTLModel

/// Builds safetensors files by hand, so every malformation can be made.
struct SafetensorsBuilder {
    var tensors: [(name: String, dtype: String, shape: [UInt64], bytes: [UInt8])] = []
    var metadata: [String: String] = [:]

    init(model path: String) throws {
        let model = try ModelFile(path: path)
        metadata["mtl_model.config"] = model.architecture.config.serialized()
        for entry in model.tensors {
            let bytes = try model.withTensorBytes(entry.name) { Array($0) }
            tensors.append((entry.name, SafetensorsFile.name(of: entry.dtype), entry.shape, bytes))
        }
    }

    func data(header transform: (inout [String: JSONValue]) -> Void = { _ in }) -> Data {
        var header: [String: JSONValue] = ["__metadata__": .object(metadata.mapValues { .string($0) })]
        var offset: UInt64 = 0
        var payload: [UInt8] = []
        for tensor in tensors {
            header[tensor.name] = .object(["dtype": .string(tensor.dtype), "shape": .array(tensor.shape.map { .number(Double($0)) }),
                                           "data_offsets": .array([.number(Double(offset)), .number(Double(offset + UInt64(tensor.bytes.count)))])])
            offset += UInt64(tensor.bytes.count)
            payload += tensor.bytes
        }
        transform(&header)
        let json = Array(JSONValue.object(header).serialized().utf8)
        return Data(withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) } + json + payload)
    }

    mutating func remove(_ name: String) { tensors.removeAll { $0.name == name } }

    mutating func update(_ name: String, _ change: (inout (name: String, dtype: String, shape: [UInt64], bytes: [UInt8])) -> Void) {
        let index = tensors.firstIndex { $0.name == name }!
        change(&tensors[index])
    }
}

@Suite("safetensors import and export")
struct SafetensorsTests {
    /// The imported model, opened before its directory goes away.
    func importing(_ data: Data, with importer: SafetensorsImporter = .init()) throws -> ModelFile {
        let directory = TemporaryDirectory()
        let input = directory.path("in.safetensors")
        try data.write(to: URL(fileURLWithPath: input))
        let output = directory.path("out.mtlm")
        defer { #expect(!FileManager.default.fileExists(atPath: output) || ModelVerifier().verify(try! ModelFile(path: output)).isValid) }
        try importer.importCheckpoint(input, to: output)
        return try ModelFile(path: output)
    }

    func expectError(_ data: Data, with importer: SafetensorsImporter = .init(), tensor: String? = nil, _ message: String) {
        #expect {
            _ = try importing(data, with: importer)
        } throws: { error in
            guard let error = error as? MTLModelError else { return false }
            return error.message.contains(message) && (tensor == nil || error.location.tensor == tensor) && error.file?.hasSuffix("in.safetensors") == true
        }
    }

    @Test("import → export → import reproduces every tensor, the config and the metadata")
    func roundTrip() throws {
        let directory = TemporaryDirectory()
        var builder = try SafetensorsBuilder(model: TestPaths.fixture("v1.0/small-training.mtlm"))
        builder.metadata["trainer"] = "torch 2.5"
        try builder.data().write(to: URL(fileURLWithPath: directory.path("a.safetensors")))
        try SafetensorsImporter().importCheckpoint(directory.path("a.safetensors"), to: directory.path("a.mtlm"))
        let imported = try ModelFile(path: directory.path("a.mtlm"))
        #expect(ModelVerifier().verify(imported).isValid)
        #expect(imported.manifest.metadata == [.init(key: "trainer", value: "torch 2.5")])
        #expect(try tensorBytes(imported) == tensorBytes(ModelFile(path: TestPaths.fixture("v1.0/small-training.mtlm"))))
        try SafetensorsExporter().export(Model(imported), to: directory.path("b.safetensors"))
        let exported = try SafetensorsFile(path: directory.path("b.safetensors"))
        #expect(exported.metadata["trainer"] == "torch 2.5")
        #expect(try Architecture(configJSON: Data(exported.metadata["mtl_model.config"]!.utf8)) == imported.architecture)
        try SafetensorsImporter().importCheckpoint(directory.path("b.safetensors"), to: directory.path("b.mtlm"))
        #expect(try tensorBytes(ModelFile(path: directory.path("b.mtlm"))) == tensorBytes(imported))
    }

    @Test("Compressed models export the same bytes")
    func exportCompressed() throws {
        let directory = TemporaryDirectory()
        let model = try ModelFile(path: TestPaths.fixture("v1.0/edge-cases-training-zlib.mtlm"))
        try SafetensorsExporter().export(Model(model), to: directory.path("z.safetensors"))
        let file = try SafetensorsFile(path: directory.path("z.safetensors"))
        for tensor in file.tensors {
            #expect(Array(file.bytes(of: tensor)) == (try model.withTensorBytes(tensor.name) { Array($0) }))
        }
    }

    @Test("Missing, unexpected, misshapen and mistyped tensors are named")
    func structureErrors() throws {
        let base = try SafetensorsBuilder(model: TestPaths.fixture("v1.0/small.mtlm"))
        var b = base
        b.remove("shared.1.bias")
        expectError(b.data(), tensor: "shared.1.bias", "missing tensor")
        b = base
        b.tensors.append(("shared.9.weight", "F32", [1], [0, 0, 0, 0]))
        expectError(b.data(), tensor: "shared.9.weight", "unexpected tensor")
        b = base
        b.tensors.append(("optimizer.linear.bias.exp_avg", "F32", [1], [0, 0, 0, 0]))
        expectError(b.data(), tensor: "optimizer.linear.bias.exp_avg", "adagrad optimizer has slots sum")
        b = base
        b.update("head.ctr.weight") { $0.shape = [4, 1] }
        expectError(b.data(), tensor: "head.ctr.weight", "is F32 [4, 1], the architecture needs F32 [1, 4]")
        b = base
        b.update("head.ctr.bias") { $0.dtype = "I64"; $0.bytes += [0, 0, 0, 0] }
        expectError(b.data(), tensor: "head.ctr.bias", "is I64 [1], the architecture needs F32 [1]")
        b = base
        b.update("embedding.item_id.keys") { tensor in
            tensor.bytes.replaceSubrange(8..<16, with: tensor.bytes[0..<8])
        }
        expectError(b.data(), tensor: "embedding.item_id.keys", "duplicate key")
        b = base
        b.tensors.append(("loss.log_var", "F32", [2], [UInt8](repeating: 0, count: 8)))
        b.tensors.append(("stats.user_id.count", "I64", [20], [UInt8](repeating: 0, count: 160)))
        expectError(b.data(), tensor: "stats.item_id.count", "row counts are present for some tensors")
    }

    @Test("Wrapper prefixes are stripped and names renamed on request, with a hint when they are not")
    func nameMapping() throws {
        let fixture = TestPaths.fixture("v1.0/small-training.mtlm")
        let base = try SafetensorsBuilder(model: fixture)
        var wrapped = base
        for index in wrapped.tensors.indices { wrapped.tensors[index].name = "_orig_mod.module." + wrapped.tensors[index].name }
        expectError(wrapped.data(), #"its name without "_orig_mod." and "module." is: import with --strip-prefix _orig_mod. --strip-prefix module."#)
        var importer = SafetensorsImporter()
        importer.names = .init(strippedPrefixes: ["module.", "_orig_mod."])
        #expect(try tensorBytes(importing(wrapped.data(), with: importer)) == tensorBytes(ModelFile(path: fixture)))

        var renamed = base
        for index in renamed.tensors.indices where renamed.tensors[index].name.hasPrefix("head.") {
            renamed.tensors[index].name = "towers." + renamed.tensors[index].name.dropFirst("head.".count)
        }
        expectError(renamed.data(), #"8 problems: tensor "towers.ctr.bias": unexpected tensor: not part of the architecture"#)
        importer.names = .init(renames: [(from: "towers.", to: "head.")])
        #expect(try tensorBytes(importing(renamed.data(), with: importer)) == tensorBytes(ModelFile(path: fixture)))
        #expect(importer.names("optimizer.towers.x") == "optimizer.towers.x", "a rename applies to the start of a name only")

        var twice = base
        twice.tensors.append(("module.head.ctr.bias", "F32", [1], [0, 0, 0, 0]))
        importer.names = .init(strippedPrefixes: ["module."])
        expectError(twice.data(), with: importer, tensor: "head.ctr.bias", #"both become "head.ctr.bias""#)
    }

    @Test("An architecture given with the checkpoint replaces a missing config")
    func givenConfig() throws {
        let directory = TemporaryDirectory()
        let fixture = TestPaths.fixture("v1.0/small.mtlm")
        var bare = try SafetensorsBuilder(model: fixture)
        bare.metadata = ["trainer": "torch"]
        expectError(bare.data(), "give the config JSON with --config")
        let configPath = directory.path("config.json")
        try ModelFile(path: fixture).architecture.config.serialized().write(toFile: configPath, atomically: false, encoding: .utf8)
        var importer = SafetensorsImporter()
        importer.architecture = try Architecture(configFile: configPath)
        let output = try importing(bare.data(), with: importer)
        #expect(try output.architecture == ModelFile(path: fixture).architecture)
        #expect(output.manifest.metadata == [.init(key: "trainer", value: "torch")])

        try "{\"embedding_dim\": 0}".write(toFile: configPath, atomically: false, encoding: .utf8)
        #expect {
            _ = try Architecture(configFile: configPath)
        } throws: { ($0 as? MTLModelError)?.file == configPath && ($0 as? MTLModelError)?.location.key == "embedding_dim" }
        #expect {
            _ = try Architecture(configFile: directory.path("absent.json"))
        } throws: { ($0 as? MTLModelError)?.code == .io }
    }

    @Test("import --config, --strip-prefix and --rename on the command line; bad forms are usage errors")
    func commandLine() throws {
        let directory = TemporaryDirectory()
        let fixture = TestPaths.fixture("v1.0/small.mtlm")
        var checkpoint = try SafetensorsBuilder(model: fixture)
        checkpoint.metadata = [:]
        for index in checkpoint.tensors.indices {
            let name = checkpoint.tensors[index].name
            checkpoint.tensors[index].name = "module." + (name.hasPrefix("head.") ? "towers." + name.dropFirst("head.".count) : name)
        }
        let input = directory.path("c.safetensors"), config = directory.path("config.json"), output = directory.path("m.mtlm")
        try checkpoint.data().write(to: URL(fileURLWithPath: input))
        try ModelFile(path: fixture).architecture.config.serialized().write(toFile: config, atomically: false, encoding: .utf8)
        let bare = try runCLI(["import", input, output])
        #expect(bare.status == 2 && bare.stderr.contains("--config"), "\(bare.stderr)")
        let result = try runCLI(["import", input, output, "--config", config, "--strip-prefix", "module.", "--rename", "towers.=head.", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try tensorBytes(ModelFile(path: output)) == tensorBytes(ModelFile(path: fixture)))
        for bad in [["--rename", "towers."], ["--rename", "=head."], ["--strip-prefix", ""]] {
            let usage = try runCLI(["import", input, directory.path("n.mtlm"), "--config", config] + bad)
            #expect(usage.status == 2 && usage.stderr.contains(bad[0]), "\(bad)")
        }
        #expect(!FileManager.default.fileExists(atPath: directory.path("n.mtlm")))
    }

    @Test("Config problems name the key")
    func configErrors() throws {
        var b = try SafetensorsBuilder(model: TestPaths.fixture("v1.0/small.mtlm"))
        b.metadata["mtl_model.config"] = nil
        expectError(b.data(), "no architecture config")
        b.metadata["mtl_model.config"] = #"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 3, "mapping": "hashed"}], "tasks": [{"name": "t"}]}"#
        #expect {
            _ = try importing(b.data())
        } throws: { ($0 as? MTLModelError)?.location.key == "fields[0].mapping" }
        b.metadata["mtl_model.config"] = #"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 3}], "tasks": [{"name": "t"}], "dropout": 0.1}"#
        #expect {
            _ = try importing(b.data())
        } throws: { ($0 as? MTLModelError)?.location.key == "dropout" }
        b.metadata["mtl_model.config"] = "{not json"
        expectError(b.data(), "not valid JSON")
    }

    @Test("Malformed safetensors files are refused before anything large is allocated")
    func malformed() throws {
        let base = try SafetensorsBuilder(model: TestPaths.fixture("v1.0/small.mtlm"))
        let valid = base.data()
        expectError(Data([1, 2, 3]), "too short")
        expectError(Data(withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Array($0) }) + valid.dropFirst(8), "exceeds the limit")
        expectError(Data(withUnsafeBytes(of: UInt64(1 << 20).littleEndian) { Array($0) }) + valid.dropFirst(8), "runs past the end")
        expectError(valid.dropLast(3), "tensors cover")
        expectError(valid + Data([0]), "tensors cover")
        let badJSON = Data(withUnsafeBytes(of: UInt64(5).littleEndian) { Array($0) }) + Data("{\"a\":".utf8)
        expectError(badJSON, "header is not valid JSON")
        expectError(base.data { $0["linear.bias"] = .object(["dtype": .string("F8_E4M3"), "shape": .array([.number(1)]), "data_offsets": .array([.number(0), .number(1)])]) },
                    tensor: "linear.bias", "dtype F8_E4M3 is not supported")
        expectError(base.data { header in
            guard case .object(var entry) = header["linear.bias"]! else { return }
            entry["data_offsets"] = .array([.number(0), .number(4)])
            header["linear.bias"] = .object(entry)
        }, "overlaps")
        expectError(base.data { header in
            guard case .object(var entry) = header["head.ctr.bias"]! else { return }
            entry["shape"] = .array([.number(Double(1 << 40)), .number(Double(1 << 40))])
            header["head.ctr.bias"] = .object(entry)
        }, tensor: "head.ctr.bias", "overflows 64 bits")
        expectError(base.data { header in
            guard case .object(var entry) = header["head.ctr.bias"]! else { return }
            entry["data_offsets"] = .array([.number(-4), .number(0)])
            header["head.ctr.bias"] = .object(entry)
        }, tensor: "head.ctr.bias", "not a whole number")
        expectError(base.data { $0["__metadata__"] = .object(["mtl_model.config": .number(3)]) }, "is not a string")
    }
}
