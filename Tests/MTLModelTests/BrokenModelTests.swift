import Foundation
import Testing
@testable import MTLModel

/// Every command on every file of `fixtures/broken/` (checksum-valid, structurally wrong) and
/// `fixtures/corrupt/`: the documented exit code, one line naming the problem, never a crash,
/// a hang or a "success" that writes a derived file.
@Suite("Broken and corrupt models through every command")
struct BrokenModelTests {
    struct Case: Codable, Sendable, CustomTestStringConvertible {
        var file: String
        var message: String
        var inspectStats: Int32?
        var diffSelf: Int32?
        var diffGolden: Int32?
        var predict: Int32?
        var convertServing: Int32?
        var diffData: Int32?
        var exportONNX: Int32?
        var testDescription: String { file }
    }

    static let cases: [Case] = {
        let url = URL(fileURLWithPath: TestPaths.fixture("broken/expected.json"))
        return (try? JSONDecoder().decode([Case].self, from: Data(contentsOf: url))) ?? []
    }()

    static let golden = TestPaths.fixture("v1.0/small-training.mtlm")
    static let data = TestPaths.fixture("predict/small.txt")

    /// The commands, with OUT for a file each writes (which must not appear when it fails), and
    /// the key of the case's verdict when it is not the structural default (exit 2).
    static func commands(_ f: String) -> [(arguments: [String], verdict: KeyPath<Case, Int32?>?, writes: Bool)] {
        [
            (["inspect", f, "--stats"], \.inspectStats, false),
            (["predict", f, data], \.predict, false),
            (["eval", f, data], \.predict, false),
            (["diff", f, f], \.diffSelf, false),
            (["diff", golden, f], \.diffGolden, false),
            (["diff", f, golden, "--data", data], \.diffData, false),
            (["quantize", f, "OUT"], nil, true),
            (["dequantize", f, "OUT"], nil, true),
            (["convert", f, "OUT", "--to", "serving"], \.convertServing, true),
            (["convert", f, "OUT", "--to", "training"], nil, true),
            (["export", f, "OUT.safetensors"], nil, true),
            (["export", f, "OUT.npz"], nil, true),
            (["export", f, "OUT.onnx"], \.exportONNX, true),
            (["delta", golden, f, "OUT"], nil, true),
            (["delta", f, golden, "OUT"], nil, true),
        ]
    }

    @Test("the corpus covers every structural rule", .enabled(if: !cases.isEmpty))
    func corpus() {
        #expect(Self.cases.count >= 17)
    }

    @Test("verify lists the problem (exit 1); inspect still shows the file (exit 0)", arguments: cases)
    func verifyAndInspect(c: Case) throws {
        let path = TestPaths.fixture("broken/\(c.file)")
        let verify = try runCLI(["verify", path])
        #expect(verify.status == 1, "\(verify.stdout)\(verify.stderr)")
        #expect(verify.stdout.localizedCaseInsensitiveContains(c.message), "\(verify.stdout)")
        let json = try runCLI(["verify", path, "--json"])
        #expect(json.status == 1)
        #expect(json.json?["valid"] as? Bool == false)
        #expect(try runCLI(["inspect", path]).status == 0)
        #expect(try runCLI(["inspect", path, "--json", "--tensors"]).json != nil)
    }

    @Test("every command: the documented exit code, one line naming the problem, nothing written", arguments: cases)
    func everyCommand(c: Case) throws {
        let path = TestPaths.fixture("broken/\(c.file)")
        for command in Self.commands(path) {
            let directory = TemporaryDirectory()
            let arguments = command.arguments.map { $0.hasPrefix("OUT") ? directory.path($0) : $0 }
            let result = try runCLI(arguments)
            let expected = command.verdict.flatMap { c[keyPath: $0] } ?? 2
            #expect(result.status == expected, "\(command.arguments): \(result.stderr)")
            if result.status == 2 {
                #expect(result.stderr.split(separator: "\n").count == 1, "\(command.arguments): \(result.stderr)")
                #expect(result.stderr.localizedCaseInsensitiveContains(c.message) || result.stderr.contains("nan"),
                        "\(command.arguments): \(result.stderr)")
            }
            if command.writes && result.status != 0 {
                #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path).isEmpty, "\(command.arguments) left a file")
            }
            if command.writes && result.status == 0 {
                let written = arguments.first { $0.hasPrefix(directory.url.path) }!
                if written.hasSuffix("OUT") { #expect(try runCLI(["verify", written]).status == 0, "\(command.arguments) wrote an invalid model") }
            }
        }
    }

    @Test("NaN and Inf: diff never says equal, whatever the tolerance, and every --json document parses")
    func nonFinite() throws {
        for name in ["nan-in-embedding", "inf-in-dense-weight"] {
            let path = TestPaths.fixture("broken/\(name).mtlm")
            for tolerance in [["--atol", "0"], ["--rtol", "0.5"], ["--atol", "1e30", "--rtol", "1e30"]] {
                let result = try runCLI(["diff", path, Self.golden, "--json"] + tolerance)
                #expect(result.status == 1, "\(name) \(tolerance)")
                let document = try #require(result.json, "\(result.stdout)")
                #expect(document["equal"] as? Bool == false)
            }
            #expect(try runCLI(["diff", path, path, "--json", "--rows"]).json?["equal"] as? Bool == false)
            #expect(try runCLI(["inspect", path, "--stats", "--json"]).json != nil)
            #expect(try runCLI(["verify", path, "--json"]).json != nil)
        }
    }

    @Test("Writers check large tensors in stretches on every core: the first NaN's row and a bad chunk are named")
    func stretchesOfChunks() throws {
        let directory = TemporaryDirectory()
        let arch = try architecture(json: """
            {"embedding_dim": 4, "fields": [{"name": "only", "vocab_size": 200}], "tasks": [{"name": "ctr"}]}
            """)
        var options = ModelWriter.Options()
        options.chunkByteCount = 64  // 50 chunks of the table: more than one stretch
        func write(_ path: String, nanAt: Int?) throws {
            let writer = try ModelWriter(path: path, options: options)
            for spec in arch.servingTensors {
                var values = [Float](repeating: 0.25, count: Int(spec.elementCount))
                if spec.name == "embedding.only.weight", let nanAt { values[nanAt] = .nan; values[nanAt + 40] = .infinity }
                try values.withUnsafeBytes { try writer.writeTensor(spec.name, dtype: spec.dtype, shape: spec.shape, role: spec.role, bytes: $0) }
            }
            try writer.finish(architecture: arch, provenance: Provenance(createdUnixSeconds: 0, source: "t"))
        }
        let nan = directory.path("nan.mtlm"), flipped = directory.path("flip.mtlm")
        try write(nan, nanAt: 150 * 4 + 2)
        let result = try runCLI(["convert", nan, directory.path("o.mtlm"), "--to", "serving"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("1 NaN and 1 Inf values (the first at row 150, column 2)"), "\(result.stderr)")
        try write(flipped, nanAt: nil)
        let offset = try #require(ModelFile(path: flipped).entry(named: "embedding.only.weight")).offset
        var bytes = try Data(contentsOf: URL(fileURLWithPath: flipped))
        bytes[Int(offset) + 30 * 64 + 1] ^= 0x10
        try bytes.write(to: URL(fileURLWithPath: flipped))
        let bad = try runCLI(["convert", flipped, directory.path("o.mtlm"), "--to", "serving"])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("chunk 30 checksum mismatch"), "\(bad.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.path("o.mtlm")))
    }

    struct CorruptCase: Codable, Sendable, CustomTestStringConvertible {
        var file: String
        var message: String
        var verifyExit: Int32
        var testDescription: String { file }
    }

    static let corruptCases: [CorruptCase] = {
        let url = URL(fileURLWithPath: TestPaths.fixture("corrupt/expected.json"))
        return (try? JSONDecoder().decode([CorruptCase].self, from: Data(contentsOf: url))) ?? []
    }()

    @Test("every command on every corrupt file: exit 2 with one line, or (payload damage a command never reads) a valid result", arguments: corruptCases)
    func corrupt(c: CorruptCase) throws {
        let path = TestPaths.fixture("corrupt/\(c.file)")
        for command in [(["inspect", path], false)] + Self.commands(path).map({ ($0.arguments, $0.writes) }) {
            let directory = TemporaryDirectory()
            let arguments = command.0.map { $0.hasPrefix("OUT") ? directory.path($0) : $0 }
            let result = try runCLI(arguments)
            // Unreadable files fail every command; damage inside the payload fails the commands that read it.
            if c.verifyExit == 2 {
                #expect(result.status == 2, "\(command.0)")
                #expect(result.stderr.contains(c.message), "\(command.0): \(result.stderr)")
            } else {
                #expect([0, 1, 2].contains(result.status), "\(command.0): \(result.status)")
            }
            if result.status == 2 {
                #expect(result.stderr.split(separator: "\n").count == 1, "\(command.0): \(result.stderr)")
                if command.1 { #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path).isEmpty, "\(command.0) left a file") }
            }
        }
    }
}
