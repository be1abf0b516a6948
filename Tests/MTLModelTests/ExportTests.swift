import Foundation
import Testing
@testable import MTLModel

/// Runs a script of Tests/python with `arguments`; nil when python3 lacks `modules` (which
/// .ci/run installs: on CI that is a failure).
func runPythonCheck(_ script: String, _ arguments: [String], modules: String = "numpy, safetensors") throws -> CommandResult? {
    let probe = try TestPaths.runPython(["-c", "import \(modules)"])
    guard probe.status == 0 else {
        #expect(ProcessInfo.processInfo.environment["CI"] == nil, "python3 with \(modules) is needed: \(probe.stderr)")
        return nil
    }
    let path = TestPaths.packageRoot.appendingPathComponent("Tests/python/\(script)").path
    return try TestPaths.runPython([path] + arguments)
}

@Suite("export .npz")
struct NumpyExportTests {
    @Test("numpy reads every tensor, the config and the metadata; quantized and bfloat16 tensors as their float32 values",
          arguments: ["v1.0/edge-cases-training-zlib.mtlm", "v1.1/small-int4-training.mtlm", "v1.1/small-int8.mtlm", "v1.0/small.mtlm"])
    func numpyReads(fixture: String) throws {
        let directory = TemporaryDirectory()
        let model = TestPaths.fixture(fixture)
        #expect(try runCLI(["export", model, directory.path("m.safetensors")]).status == 0)
        let export = try runCLI(["export", model, directory.path("m.npz")])
        #expect(export.status == 0, "\(export.stderr)")
        guard let check = try runPythonCheck("check_npz.py", [directory.path("m.safetensors"), directory.path("m.npz")]) else { return }
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        // The same archive with ZIP64 records everywhere (as a model over 4 GiB gets them).
        var exporter = NumpyArchiveExporter()
        exporter.zip64Threshold = 0
        try exporter.export(try Model(path: model), to: directory.path("zip64.npz"))
        let zip64 = try runPythonCheck("check_npz.py", [directory.path("m.safetensors"), directory.path("zip64.npz")])
        #expect(zip64?.status == 0, "\(zip64?.stdout ?? "")\(zip64?.stderr ?? "")")
    }

    @Test("The .npy headers are the ones numpy writes: 64-byte aligned data, shapes of any rank")
    func npyHeader() {
        for (shape, text) in [([3, 4], "(3, 4)"), ([7], "(7,)"), ([], "()")] as [([UInt64], String)] {
            let header = NumpyArchiveExporter.npyHeader(dtype: .float32, shape: shape)
            #expect(header.count % 64 == 0 && header.last == 0x0A)
            #expect(String(decoding: header[10...], as: UTF8.self).hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': \(text), }"))
        }
    }

    @Test("export refuses an unknown extension (exit 2) and a delta")
    func refusals() throws {
        let directory = TemporaryDirectory()
        #expect(try runCLI(["export", TestPaths.fixture("v1.0/small.mtlm"), directory.path("m.pt")]).status == 2)
        let delta = try runCLI(["export", TestPaths.fixture("v1.2/small-edited.mtlmd"), directory.path("d.npz")])
        #expect(delta.status == 2 && delta.stderr.contains("is a delta"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path).isEmpty)
    }
}

@Suite("export .onnx")
struct ONNXExportTests {
    /// Models covering every flag of MODEL.md and every stored type a table or layer can have.
    static let cases: [(name: String, config: String, quantize: [String])] = [
        ("small", "small.json", []),                                  // modulo / keyed / direct, mean, sqrtn, intra, field bias, groups, batch norm
        ("edge-cases", "edge-cases.json", []),                        // linear_act_bn, interaction+fields, weighted product, half factor, 3 tasks
        ("one-field", "one-field.json", []),                          // no pairs, no intra: h = 0
        ("model-md-small", "model-md-small.json", []),                // lexicographic fusion
        ("int8", "small.json", ["--embeddings", "int8", "--dense", "int8"]),
        ("int4", "edge-cases.json", ["--embeddings", "int4", "--dense", "fp16"]),
        ("bf16", "model-md-small.json", ["--embeddings", "bf16", "--dense", "bf16"]),
        ("mixed", "small.json", ["--embeddings", "fp16", "--field", "item_id=int4", "--field", "user_id=int8", "--dense", "fp32"]),
    ]

    @Test("onnxruntime computes what predict computes (MODEL.md tolerance), through the documented example",
          arguments: cases.map(\.name))
    func matchesPredict(name: String) throws {
        let c = Self.cases.first { $0.name == name }!
        let directory = TemporaryDirectory()
        var model = directory.path("\(name).mtlm")
        #expect(try runCLI(["synth", TestPaths.config(c.config), model, "--seed", "9"]).status == 0)
        if !c.quantize.isEmpty {
            let quantized = directory.path("\(name)-q.mtlm")
            #expect(try runCLI(["quantize", model, quantized] + c.quantize).status == 0)
            model = quantized
        }
        let data = directory.path("data.txt")
        try randomDataset(for: try ModelFile(path: model), count: 500, seed: 21).write(toFile: data, atomically: true, encoding: .utf8)
        guard let check = try runPythonCheck("check_onnx.py", [TestPaths.executable, model, data, directory.url.path],
                                             modules: "numpy, onnx, onnxruntime") else { return }
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
    }

    @Test("The demo model, trained by PyTorch, exports with its large tables as external data and predicts as PyTorch did")
    func demo() throws {
        let directory = TemporaryDirectory()
        guard let demo = try importedDemo(into: directory) else { return }
        // Converted with every serving option: folded, pruned, quantized.
        let serving = directory.path("serving.mtlm")
        #expect(try runCLI(["convert", demo.training, serving, "--to", "serving", "--fold-batch-norm", "--prune-unseen", "--embeddings", "int8"]).status == 0)
        for model in [demo.serving, serving] {
            guard let check = try runPythonCheck("check_onnx.py", [TestPaths.executable, model, demo.data, directory.url.path],
                                                 modules: "numpy, onnx, onnxruntime") else { return }
            #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        }
        let report = try ONNXExporter().export(try Model(path: demo.serving), to: directory.path("m.onnx"))
        #expect(report.externalData == directory.path("m.onnx.data") && report.externalByteCount > 1 << 20)
        #expect(report.inputs.count == 8 && report.outputs == ["logits", "probabilities", "fused"])
    }

    @Test("A model whose tensors all fit inline is one file; a training model exports its serving graph")
    func layout() throws {
        let directory = TemporaryDirectory()
        let report = try ONNXExporter().export(try Model(path: TestPaths.fixture("v1.0/small-training.mtlm")), to: directory.path("m.onnx"))
        #expect(report.externalData == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path) == ["m.onnx"])
        #expect(report.initializerCount > 0 && report.nodeCount > 0)
    }
}
