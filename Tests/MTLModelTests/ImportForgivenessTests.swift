import Foundation
import Testing
@testable import MTLModel

/// What trainers really write — half precision, unsigned ids, no optimizer or loss section in
/// the config, a few wrong names at once, NaN — and what import makes of it.
@Suite("import forgives what trainers write")
struct ImportForgivenessTests {
    let fixture = TestPaths.fixture("v1.0/small-training.mtlm")

    /// Imports `data` into a temporary directory: the result and the opened model.
    func run(_ data: Data, _ configure: (inout SafetensorsImporter) -> Void = { _ in }) throws -> (SafetensorsImporter.Result, ModelFile) {
        let directory = TemporaryDirectory()
        let input = directory.path("in.safetensors")
        try data.write(to: URL(fileURLWithPath: input))
        var importer = SafetensorsImporter()
        configure(&importer)
        let result = try importer.importCheckpoint(input, to: directory.path("out.mtlm"))
        return (result, try ModelFile(path: directory.path("out.mtlm")))
    }

    func error(_ data: Data, _ configure: (inout SafetensorsImporter) -> Void = { _ in }) -> MTLModelError? {
        do {
            _ = try run(data, configure)
            return nil
        } catch {
            return error as? MTLModelError
        }
    }

    static func halves(_ bytes: [UInt8], bfloat: Bool) -> [UInt8] {
        bytes.withUnsafeBytes { raw in
            raw.bindMemory(to: Float.self).flatMap { value -> [UInt8] in
                let bits = bfloat ? UInt16(value.bitPattern >> 16) : Float16(value).bitPattern
                return [UInt8(bits & 0xFF), UInt8(bits >> 8)]
            }
        }
    }

    @Test("Every problem is listed at once, each unexpected name with the closest expected one")
    func allProblemsAtOnce() throws {
        var b = try SafetensorsBuilder(model: fixture)
        b.remove("head.ctr.bias")
        b.update("embedding.user_id.weight") { $0.name = "embeding.user_id.weight" }
        b.update("shared.0.weight") { $0.shape = $0.shape.reversed() }
        let failure = try #require(error(b.data()))
        #expect(failure.message.hasPrefix("4 problems: "), "\(failure.message)")
        #expect(failure.message.contains(#"tensor "embeding.user_id.weight": unexpected tensor: not part of the architecture; did you mean "embedding.user_id.weight"?"#))
        #expect(failure.message.contains(#"tensor "head.ctr.bias": missing tensor"#))
        #expect(failure.message.contains("(transposed? PyTorch's nn.Linear stores [out, in])"))
        #expect(failure.file?.hasSuffix("in.safetensors") == true)
    }

    @Test("Half-precision parameters are stored as they are, or widened with --float32", arguments: [false, true])
    func halfPrecision(bfloat: Bool) throws {
        var b = try SafetensorsBuilder(model: TestPaths.fixture("v1.0/small.mtlm"))
        let name = "embedding.user_id.weight"
        b.update(name) { $0.dtype = bfloat ? "BF16" : "F16"; $0.bytes = Self.halves($0.bytes, bfloat: bfloat) }
        let (kept, keptModel) = try run(b.data())
        #expect(keptModel.entry(named: name)?.dtype == (bfloat ? .bfloat16 : .float16))
        #expect(kept.notes == ["1 half-precision tensors stored as they are (--float32 widens them)"])
        #expect(ModelVerifier().verify(keptModel).isValid)
        let (widened, wideModel) = try run(b.data()) { $0.widenToFloat32 = true }
        #expect(wideModel.entry(named: name)?.dtype == .float32)
        #expect(widened.notes == ["1 half-precision tensors widened to float32"])
        #expect(try wideModel.floats(name) == keptModel.floats(name))
    }

    @Test("A half-precision optimizer slot needs --float32; uint64 keys are taken as they are")
    func slotsAndKeys() throws {
        var b = try SafetensorsBuilder(model: fixture)
        let slot = "optimizer.embedding.user_id.weight.sum"
        b.update(slot) { $0.dtype = "F16"; $0.bytes = Self.halves($0.bytes, bfloat: false) }
        b.update("embedding.item_id.keys") { $0.dtype = "U64" }
        let failure = try #require(error(b.data()))
        #expect(failure.location.tensor == slot && failure.message.contains("only parameters may be half precision; import with --float32"))
        let (result, model) = try run(b.data()) { $0.widenToFloat32 = true }
        #expect(model.entry(named: slot)?.dtype == .float32 && model.entry(named: "embedding.item_id.keys")?.dtype == .int64)
        #expect(result.notes.contains("1 uint64 keys tensors stored as int64 bits, as MODEL.md keeps them"))
        #expect(ModelVerifier().verify(model).isValid)
    }

    @Test("A config without optimizer or loss section: both inferred from the tensors",
          arguments: [("adagrad", ["sum"]), ("adam", ["exp_avg", "exp_avg_sq"]), ("ftrl", ["z", "n"])])
    func inference(optimizer: String, slots: [String]) throws {
        var b = try SafetensorsBuilder(model: fixture)
        var config = try ModelFile(path: fixture).architecture
        config.optimizer = nil
        config.loss = nil
        b.metadata["mtl_model.config"] = config.config.serialized()
        let sums = b.tensors.filter { $0.name.hasSuffix(".sum") }
        b.tensors.removeAll { $0.name.hasSuffix(".sum") }
        for tensor in sums {
            for slot in slots { b.tensors.append((String(tensor.name.dropLast(3)) + slot, tensor.dtype, tensor.shape, tensor.bytes)) }
        }
        let (result, model) = try run(b.data())
        #expect(model.architecture.optimizer?.type.configName == optimizer)
        #expect(model.architecture.loss == .init(weighting: "uncertainty", parameterization: "log_var"))
        #expect(result.inferred == ["optimizer \(optimizer) (its slots \(slots.joined(separator: ", ")))",
                                    "loss weighting uncertainty, log_var parameterization (loss.log_var)"])
        #expect(ModelVerifier().verify(model).isValid)
    }

    @Test("NaN and Inf are refused, naming tensor and element, unless allowed")
    func nonFinite() throws {
        var b = try SafetensorsBuilder(model: fixture)
        b.update("shared.0.weight") { tensor in
            withUnsafeBytes(of: Float.nan.bitPattern) { tensor.bytes.replaceSubrange(20..<24, with: $0) }
        }
        let failure = try #require(error(b.data()))
        #expect(failure.location.tensor == "shared.0.weight")
        #expect(failure.message == "1 NaN and 0 Inf values (the first at row 0, column 5) (import with --allow-nonfinite to keep them)",
                "\(failure.message)")
        let (_, model) = try run(b.data()) { $0.allowNonfinite = true }
        #expect(!ModelVerifier().verify(model).isValid)
    }

    @Test("import --float32 and --allow-nonfinite on the command line; inferred sections are reported")
    func commandLine() throws {
        let directory = TemporaryDirectory()
        var b = try SafetensorsBuilder(model: fixture)
        var config = try ModelFile(path: fixture).architecture
        config.optimizer = nil
        b.metadata["mtl_model.config"] = config.config.serialized()
        b.update("embedding.user_id.weight") { $0.dtype = "F16"; $0.bytes = Self.halves($0.bytes, bfloat: false) }
        let input = directory.path("in.safetensors")
        try b.data().write(to: URL(fileURLWithPath: input))
        let plain = try runCLI(["import", input, directory.path("a.mtlm")])
        #expect(plain.status == 0 && plain.stdout.contains("inferred: optimizer adagrad") && plain.stdout.contains("stored as they are"), "\(plain.stdout)\(plain.stderr)")
        let wide = try runCLI(["import", input, directory.path("b.mtlm"), "--float32", "--json"])
        let result = try #require(wide.json?["result"] as? [String: Any])
        #expect(wide.status == 0 && (result["notes"] as? [String]) == ["1 half-precision tensors widened to float32"])
        #expect(try ModelFile(path: directory.path("b.mtlm")).entry(named: "embedding.user_id.weight")?.dtype == .float32)
        #expect(try runCLI(["import", input, directory.path("c.mtlm"), "--allow-nonfinite"]).status == 0)
    }
}
