import Foundation
import Testing
@testable import MTLModel

/// Sharded models whose files do not fit together, made from `v1.0/small-training.mtlm` (the
/// cases of docs/FORMAT.md "Opening a root"), through every command of `BrokenModelTests`:
/// verify names the shard and the problem (exit 1); every other command exits 2 with one line
/// naming the shard file, and writes nothing.
@Suite("Broken sharded models through every command")
struct BrokenShardedModelTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        /// What verify says, and the file every error names.
        var message: String
        var file = "m-00002-of-00003.mtlm"
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "shard-missing", message: "shard 2 of 3: cannot open"),
        Case(name: "byte-flipped-in-shard", message: "checksum mismatch"),
        Case(name: "shard-of-another-model", message: "belongs to another model"),
        Case(name: "stale-shard-after-reshard", message: "belongs to another model"),
        Case(name: "shards-swapped", message: "is shard 3 of 3, the root expects shard 2 of 3"),
        Case(name: "shard-changed-after-root", message: "was changed since the root was written"),
        Case(name: "overlapping-buckets", message: "buckets would be held twice", file: "m.mtlm"),
        Case(name: "shard-missing-a-tensor", message: "lacks its part of the tensor"),
    ]

    /// Writes case `name` into `directory`: its root is `m.mtlm`.
    static func make(_ name: String, in directory: TemporaryDirectory) throws {
        let source = TestPaths.fixture("v1.0/small-training.mtlm")
        func shard(_ input: String, _ output: String, _ count: Int) throws {
            let result = try runCLI(["shard", input, directory.path(output), "--shards", String(count)])
            #expect(result.status == 0, "\(result.stderr)")
        }
        let second = directory.path("m-00002-of-00003.mtlm")
        func replaceSecond(with path: String) throws {
            try FileManager.default.removeItem(atPath: second)
            try FileManager.default.copyItem(atPath: path, toPath: second)
        }
        try shard(source, "m.mtlm", 3)
        switch name {
        case "shard-missing":
            try FileManager.default.removeItem(atPath: second)
        case "byte-flipped-in-shard":
            let offset = try #require(ModelFile(path: second).entry(named: "embedding.user_id.weight")).offset
            var bytes = try Data(contentsOf: URL(fileURLWithPath: second))
            bytes[Int(offset) + 5] ^= 0x04
            try bytes.write(to: URL(fileURLWithPath: second))
        case "shard-of-another-model":
            try shard(source, "other.mtlm", 3)
            try replaceSecond(with: directory.path("other-00002-of-00003.mtlm"))
        case "stale-shard-after-reshard":
            try FileManager.default.copyItem(atPath: second, toPath: directory.path("old"))
            try shard(source, "m.mtlm", 3)
            try replaceSecond(with: directory.path("old"))
            try FileManager.default.removeItem(atPath: directory.path("old"))
        case "shards-swapped":
            try replaceSecond(with: directory.path("m-00003-of-00003.mtlm"))
        case "shard-changed-after-root", "shard-missing-a-tensor":
            // A shard rewritten (same id and parts) with one tensor changed or left out.
            let old = try ModelFile(path: second)
            let path = directory.path("rewritten.mtlm")
            let writer = try ModelWriter(path: path)
            for entry in old.tensors where !(name == "shard-missing-a-tensor" && entry.name == "linear.user_id.weight") {
                var bytes = try old.withTensorBytes(entry.name) { Array($0) }
                if entry.name == "embedding.user_id.weight" { setFloat(&bytes, 0, 42) }
                try bytes.withUnsafeBytes { try writer.writeTensor(entry.name, dtype: entry.dtype, shape: entry.shape, role: entry.role, bytes: $0) }
            }
            try writer.finish(architecture: old.architecture, provenance: old.manifest.provenance, shard: old.manifest.shard)
            try replaceSecond(with: path)
            if name == "shard-missing-a-tensor" {
                // The root re-recorded so that only the missing tensor is wrong.
                try rewriteRoot(directory) { table in
                    let file = try ModelFile(path: second)
                    table.files[1].byteCount = file.fileByteCount
                    table.files[1].manifestHash = file.manifestHash
                }
            }
            try FileManager.default.removeItem(atPath: path)
        case "overlapping-buckets":
            try rewriteRoot(directory) { table in table.files[1].parts[1].firstBucket -= 1 }
        default:
            Issue.record("no case \(name)")
        }
    }

    /// Rewrites the root `m.mtlm` with its shard table edited.
    static func rewriteRoot(_ directory: TemporaryDirectory, _ edit: (inout ShardTable) throws -> Void) throws {
        let root = try ModelFile(path: directory.path("m.mtlm"))
        var table = root.manifest.shards!
        try edit(&table)
        let writer = try ModelWriter(path: directory.path("edited-root"))
        for entry in root.tensors {
            try root.withTensorBytes(entry.name) { try writer.writeTensor(entry.name, dtype: entry.dtype, shape: entry.shape, role: entry.role, bytes: $0) }
        }
        try writer.finish(architecture: root.architecture, provenance: root.manifest.provenance, metadata: root.manifest.metadata, shards: table)
        #expect(rename(directory.path("edited-root"), directory.path("m.mtlm")) == 0)
    }

    @Test("verify names the problem and the file (exit 1, in text and --json); inspect still shows the root", arguments: cases)
    func verify(c: Case) throws {
        let directory = TemporaryDirectory()
        try Self.make(c.name, in: directory)
        let root = directory.path("m.mtlm")
        let verify = try runCLI(["verify", root])
        #expect(verify.status == 1 && verify.stdout.contains(c.message), "\(verify.stdout)\(verify.stderr)")
        if c.file != "m.mtlm" { #expect(verify.stdout.contains("in \(directory.path(c.file))"), "\(verify.stdout)") }
        let json = try runCLI(["verify", root, "--json"])
        #expect(json.status == 1 && json.json?["valid"] as? Bool == false)
        #expect(try runCLI(["inspect", root]).status == 0)
    }

    @Test("every command: exit 2, one line naming the file, nothing written", arguments: cases)
    func everyCommand(c: Case) throws {
        let directory = TemporaryDirectory()
        try Self.make(c.name, in: directory)
        let root = directory.path("m.mtlm")
        // Deltas are made between models split the same way: against the golden 3-shard model.
        let golden = TestPaths.fixture("v1.3/small-training.mtlm")
        let commands = BrokenModelTests.commands(root).filter { $0.arguments[0] != "delta" }
            + [(["shard", root, "OUT", "--shards", "2"], nil, true), (["shard", root, "OUT", "--shards", "1"], nil, true),
               (["delta", golden, root, "OUT"], nil, true), (["delta", root, golden, "OUT"], nil, true),
               (["apply", root, TestPaths.fixture("v1.4/small-training-edited.mtlmd"), "OUT"], nil, true)]
        for command in commands {
            let output = TemporaryDirectory()
            let arguments = command.arguments.map { $0.hasPrefix("OUT") ? output.path($0) : $0 }
            let result = try runCLI(arguments)
            #expect(result.status == 2, "\(command.arguments): \(result.stdout) \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(command.arguments): \(result.stderr)")
            #expect(result.stderr.contains(c.file), "\(command.arguments): \(result.stderr)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: output.url.path).isEmpty, "\(command.arguments) left a file")
        }
    }
}
