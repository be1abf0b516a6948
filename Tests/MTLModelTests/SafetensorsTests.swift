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
    func importing(_ data: Data) throws -> String {
        let directory = TemporaryDirectory()
        let input = directory.path("in.safetensors")
        try data.write(to: URL(fileURLWithPath: input))
        let output = directory.path("out.mtlm")
        defer { #expect(!FileManager.default.fileExists(atPath: output) || ModelVerifier().verify(try! ModelFile(path: output)).isValid) }
        try SafetensorsImporter().importCheckpoint(input, to: output)
        return output
    }

    func expectError(_ data: Data, tensor: String? = nil, _ message: String) {
        #expect {
            _ = try importing(data)
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
