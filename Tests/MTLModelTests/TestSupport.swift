import Foundation
import Testing
@testable import MTLModel
import Synchronization

/// Paths and helpers shared by the test suites.
enum TestPaths {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = packageRoot.appendingPathComponent("fixtures")
    static let configs = fixtures.appendingPathComponent("configs")

    /// The Python of the project's virtual environment (`scripts/install-deps.sh` makes it:
    /// the test dependencies and the mtl_model package are there), else python3 on the PATH.
    static var python: [String] {
        let venv = packageRoot.appendingPathComponent(".venv/bin/python3").path
        return FileManager.default.isExecutableFile(atPath: venv) ? [venv] : ["/usr/bin/env", "python3"]
    }

    /// Runs Python (`python`) with `arguments`.
    static func runPython(_ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        try runProcess(python[0], Array(python.dropFirst()) + arguments, environment: environment)
    }

    static func fixture(_ relative: String) -> String { fixtures.appendingPathComponent(relative).path }
    static func config(_ name: String) -> String { configs.appendingPathComponent(name).path }

    /// The `mtl-model` executable built beside the test bundle.
    static var executable: String {
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = testBinary.deletingLastPathComponent()
        // On Linux the tests run from `<bin>/mtl-modelPackageTests.xctest`; elsewhere from a bundle.
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("mtl-model").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return packageRoot.appendingPathComponent(".build/debug/mtl-model").path
    }
}

/// A temporary directory removed when the value is dropped.
final class TemporaryDirectory {
    let url: URL

    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("mtlm-test-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

/// The result of running the CLI as a separate process.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String

    var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(stdout.utf8))) as? [String: Any]
    }
}

/// - Parameter directory: the working directory (this process's when nil).
func runCLI(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:], directory: String? = nil) throws -> CommandResult {
    try runProcess(TestPaths.executable, arguments, stdin: stdin, environment: environment, directory: directory)
}

/// - Parameter environment: variables added to this process's environment.
func runProcess(_ executable: String, _ arguments: [String], stdin: String? = nil,
                environment: [String: String] = [:], directory: String? = nil) throws -> CommandResult {
    // Files rather than pipes: no side can block on a full pipe, whatever the output size.
    let scratch = TemporaryDirectory()
    let paths = (in: scratch.path("stdin"), out: scratch.path("stdout"), err: scratch.path("stderr"))
    try Data((stdin ?? "").utf8).write(to: URL(fileURLWithPath: paths.in))
    _ = FileManager.default.createFile(atPath: paths.out, contents: nil)
    _ = FileManager.default.createFile(atPath: paths.err, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    process.standardInput = FileHandle(forReadingAtPath: paths.in)
    process.standardOutput = FileHandle(forWritingAtPath: paths.out)
    process.standardError = FileHandle(forWritingAtPath: paths.err)
    try process.run()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus,
                         stdout: try String(contentsOfFile: paths.out, encoding: .utf8),
                         stderr: try String(contentsOfFile: paths.err, encoding: .utf8))
}

func architecture(fromConfig name: String) throws -> Architecture {
    try Architecture(configJSON: Data(contentsOf: URL(fileURLWithPath: TestPaths.config(name))))
}

func architecture(json: String) throws -> Architecture {
    try Architecture(configJSON: Data(json.utf8))
}

/// Every tensor's logical bytes, by name.
func tensorBytes(_ model: ModelFile) throws -> [String: [UInt8]] {
    var result: [String: [UInt8]] = [:]
    for entry in model.tensors {
        result[entry.name] = try model.withTensorBytes(entry.name) { Array($0) }
    }
    return result
}

/// Opens and verifies `path`: nil when valid, else the first error or problem as text.
func firstProblem(_ path: String) -> String? {
    do {
        let model = try ModelFile(path: path)
        let report = ModelVerifier().verify(model)
        return report.problems.first.map { "\($0.kind): \($0.message)" }
    } catch {
        return error.description
    }
}

/// A copy of `source` at `path` with some tensors' bytes changed by `edit` (which may also
/// change their shape through `shapes`).
func copyModel(_ source: String, to path: String, architecture: Architecture? = nil, shapes: [String: [UInt64]] = [:],
               edit: (String, inout [UInt8]) -> Void = { _, _ in }) throws {
    let model = try ModelFile(path: source)
    let writer = try ModelWriter(path: path)
    for entry in model.tensors {
        var bytes = try model.withTensorBytes(entry.name) { Array($0) }
        edit(entry.name, &bytes)
        try bytes.withUnsafeBytes { try writer.writeTensor(entry.name, dtype: entry.dtype, shape: shapes[entry.name] ?? entry.shape, role: entry.role, bytes: $0) }
    }
    try writer.finish(architecture: architecture ?? model.architecture, provenance: model.manifest.provenance, metadata: model.manifest.metadata)
}

func setFloat(_ bytes: inout [UInt8], _ index: Int, _ value: Float) {
    bytes.withUnsafeMutableBytes { $0.storeBytes(of: value, toByteOffset: index * 4, as: Float.self) }
}

/// Writes `input` split into `count` shards at `output` (`--shards 1`: one file), with the CLI.
func shard(_ input: String, _ output: String, _ count: Int, _ extra: [String] = []) throws {
    let result = try runCLI(["shard", input, output, "--shards", String(count)] + extra)
    #expect(result.status == 0, "\(result.stderr)")
}

/// Kilobytes of this process's resident pages in the mappings of files under `directory`
/// (`/proc/self/smaps`): what a command holds of its inputs, whatever other threads map.
func residentKilobytes(ofMappingsUnder directory: String) -> Int {
    // Read to its end: /proc files have no size for a reader that trusts stat.
    guard let data = FileHandle(forReadingAtPath: "/proc/self/smaps")?.readDataToEndOfFile() else { return 0 }
    let smaps = String(decoding: data, as: UTF8.self)
    var total = 0, inside = false
    for line in smaps.split(separator: "\n") {
        // A mapping's header line ("start-end perms offset dev inode path"); then its fields ("Rss: n kB").
        if let key = line.split(separator: " ").first, !key.hasSuffix(":") {
            inside = line.hasSuffix(".mtlm") && line.contains(directory)
        } else if inside && line.hasPrefix("Rss:") {
            total += Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
    }
    return total
}

/// Bytes of `count` from `address` (mapped by this process) that are resident in its page
/// tables: the present bit of each page in `/proc/self/pagemap`.
func residentBytes(address: Int, count: Int) -> Int {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    guard count > 0 else { return 0 }
    let first = address / page, last = (address + count - 1) / page
    let fd = open("/proc/self/pagemap", O_RDONLY)
    guard fd >= 0 else { return 0 }
    defer { close(fd) }
    var entries = [UInt64](repeating: 0, count: last - first + 1)
    let read = entries.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(first * 8)) }
    guard read == entries.count * 8 else { return 0 }
    return entries.reduce(0) { $0 + ($1 >> 63 == 1 ? page : 0) }
}

/// What `body` kept resident of its inputs, sampled on another thread while it runs: the
/// largest resident bytes seen of the mappings of `.mtlm` files under `folder`, and of
/// `tensor`'s stored bytes in `file`. The files' figure is > 0 once a sample saw them mapped.
func peakResident<R>(filesUnder folder: String, tensor: TensorEntry, of file: ModelFile,
                     while body: () throws -> R) rethrows -> (result: R, files: Int, tensor: Int) {
    let start = Int(bitPattern: file.file.bytes(tensor.offset, tensor.storedByteCount).baseAddress), count = Int(tensor.storedByteCount)
    let done = Atomic<Bool>(false), peakFiles = Atomic<Int>(0), peakTensor = Atomic<Int>(0)
    let sampler = DispatchGroup(), sampled = DispatchSemaphore(value: 0)
    DispatchQueue.global().async(group: sampler) {
        var first = true
        repeat {
            let files = residentKilobytes(ofMappingsUnder: folder) << 10, tensor = residentBytes(address: start, count: count)
            if files > peakFiles.load(ordering: .relaxed) { peakFiles.store(files, ordering: .relaxed) }
            if tensor > peakTensor.load(ordering: .relaxed) { peakTensor.store(tensor, ordering: .relaxed) }
            if first { sampled.signal() }
            first = false
        } while !done.load(ordering: .acquiring)
    }
    // A first sample before `body` starts (the files are mapped: their manifests were read), so
    // that a loaded machine cannot run `body` to its end before the sampler looks at all.
    sampled.wait()
    func stop() {
        done.store(true, ordering: .releasing)
        sampler.wait()
    }
    let result: R
    do { result = try body() } catch { stop(); throw error }
    stop()
    return (result, peakFiles.load(ordering: .relaxed), peakTensor.load(ordering: .relaxed))
}

/// A model (training or serving) of one large table (`field`: `rows` rows of `dim`, keyed or modulo) and a
/// small direct one, synthesized with `seed` at `path`: what the tests of resident pages read.
func synthOneLargeTable(_ path: String, field: String, mapping: String, rows: Int, dim: Int, seed: Int = 1, training: Bool = true) throws {
    let config = path + ".json"
    try Data("""
        {"embedding_dim": \(dim), "groups": ["big", "context"],
         "fields": [{"name": "\(field)", "vocab_size": \(rows), "mapping": "\(mapping)", "group": "big"},
                    {"name": "hour", "vocab_size": 24, "mapping": "direct", "group": "context"}],
         "interaction": {"intra": true}, "linear": true, "bottom_input": "interaction+groups",
         "shared": [{"units": 8}], "tasks": [{"name": "ctr", "tower": []}, {"name": "follow", "tower": []}],
         "optimizer": {"type": "adagrad", "lr": 0.04, "initial_accumulator": 0.001}}
        """.utf8).write(to: URL(fileURLWithPath: config))
    let synth = try runCLI(["synth", config, path, "--seed", "\(seed)"] + (training ? ["--training"] : []))
    try #require(synth.status == 0, "synth: \(synth.stderr)")
}
