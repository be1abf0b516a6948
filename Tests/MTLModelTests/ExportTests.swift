import Foundation
import Testing
@testable import MTLModel

/// Runs a script of Tests/python with `arguments`; nil when python3 lacks `modules` (which
/// .ci/run installs: on CI that is a failure).
func runPythonCheck(_ script: String, _ arguments: [String], modules: String = "numpy, safetensors") throws -> CommandResult? {
    let probe = try runProcess("/usr/bin/env", ["python3", "-c", "import \(modules)"])
    guard probe.status == 0 else {
        #expect(ProcessInfo.processInfo.environment["CI"] == nil, "python3 with \(modules) is needed: \(probe.stderr)")
        return nil
    }
    let path = TestPaths.packageRoot.appendingPathComponent("Tests/python/\(script)").path
    return try runProcess("/usr/bin/env", ["python3", path] + arguments)
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
        try exporter.export(try ModelFile(path: model), to: directory.path("zip64.npz"))
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
