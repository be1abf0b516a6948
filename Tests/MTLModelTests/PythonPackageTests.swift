import Foundation
import Testing

/// The Python package (python/, docs/PYTHON.md) is a second implementation of the format: its
/// pytest suite reads every fixture and compares with this CLI, so it runs as part of
/// `swift test`, against the `mtl-model` just built.
@Suite("The mtl_model Python package")
struct PythonPackageTests {
    @Test("python/tests pass (pytest, against the mtl-model just built)")
    func pytestSuite() throws {
        let probe = try TestPaths.runPython(["-c", "import numpy, google.protobuf, pytest"])
        guard probe.status == 0 else {
            // scripts/install-deps.sh makes .venv with them: in CI the suite must run.
            #expect(ProcessInfo.processInfo.environment["CI"] == nil, "python3 with numpy, protobuf and pytest is needed: \(probe.stderr)")
            return
        }
        let tests = TestPaths.packageRoot.appendingPathComponent("python/tests").path
        let result = try TestPaths.runPython(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", tests],
                                             environment: ["MTL_MODEL_CLI": TestPaths.executable,
                                                           "PYTHONPATH": TestPaths.packageRoot.appendingPathComponent("python").path])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        // The count, for .ci/run's summary (Swift Testing shows no output of passing tests).
        if let summary = result.stdout.split(separator: "\n").last(where: { $0.contains(" passed") }) {
            print("pytest: \(summary)")
        }
    }
}
