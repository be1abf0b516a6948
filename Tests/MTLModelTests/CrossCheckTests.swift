import Foundation
import Testing

@Suite("Cross-check with an independent numpy implementation")
struct CrossCheckTests {
    @Test("Tests/python/crosscheck.py agrees with import, predict, eval and export")
    func numpyReference() throws {
        let directory = TemporaryDirectory()
        guard let result = try runPythonCheck("crosscheck.py", [TestPaths.executable, directory.url.path]) else { return }
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("4 passed, 0 failed"))
    }
}
