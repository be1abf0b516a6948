import Foundation
import Testing
@testable import MTLModel

/// `delta` and `apply` of sharded models (format 1.4): a delta root and one delta per shard,
/// each bound to its base file.
@Suite("delta and apply of sharded models")
struct ShardedDeltaTests {
    /// `v1.0/small-training` with rows changed in a table and its optimizer slot, an item key
    /// replaced (its row moves to another bucket, maybe another shard) and a dense layer changed.
    static func edited(to path: String, seed: Float = 9) throws {
        try copyModel(TestPaths.fixture("v1.0/small-training.mtlm"), to: path) { name, bytes in
            switch name {
            case "embedding.user_id.weight": setFloat(&bytes, 5 * 4, seed)
            case "optimizer.embedding.user_id.weight.sum": setFloat(&bytes, 5 * 4 + 1, seed)
            case "embedding.item_id.keys": bytes.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(424_242), toByteOffset: 16, as: UInt64.self) }
            case "shared.1.weight": for i in 0..<48 { setFloat(&bytes, i, Float(i) + seed) }
            default: break
            }
        }
    }

    /// A base and a new model, both split into `count` shards, in `directory`.
    static func pair(_ directory: TemporaryDirectory, count: Int, newSeed: Float = 9) throws -> (base: String, new: String) {
        try edited(to: directory.path("edited.mtlm"), seed: newSeed)
        let base = directory.path("base.mtlm"), new = directory.path("new.mtlm")
        try shard(TestPaths.fixture("v1.0/small-training.mtlm"), base, count)
        try shard(directory.path("edited.mtlm"), new, count)
        return (base, new)
    }

    /// Every tensor's bytes of a model, one file or sharded, by name (a sharded one's parts
    /// concatenated through its consolidation).
    static func consolidatedBytes(_ path: String, _ directory: TemporaryDirectory) throws -> [String: [UInt8]] {
        let one = directory.path("one-\(UInt32.random(in: 0...UInt32.max)).mtlm")
        try shard(path, one, 1)
        return try tensorBytes(ModelFile(path: one))
    }

    @Test("apply(base, delta(base, new)) is new: every file's tensors byte for byte, its provenance and metadata", arguments: [3, 7])
    func roundTrip(_ count: Int) throws {
        let directory = TemporaryDirectory()
        let (base, new) = try Self.pair(directory, count: count)
        let made = try runCLI(["delta", base, new, directory.path("d.mtlmd"), "--json"])
        #expect(made.status == 0, "\(made.stderr)")
        let summary = try #require(made.json?["summary"] as? [String: Any])
        // (Seven shards of 20 rows are so small that a changed row's tensor is cheaper stored whole.)
        #expect((summary["patchedTensors"] as? Int ?? 0) >= 2 && (count > 3 || (summary["storedRowCount"] as? Int ?? 0) >= 2), "\(summary)")
        let delta = try ModelFile(path: directory.path("d.mtlmd"))
        #expect(delta.version == FormatVersion(major: 1, minor: 4) && delta.requiredFeatures == [.delta, .sharding])
        let names = (1...count).map { ShardNaming.fileName(root: "d.mtlmd", index: $0, count: count, suffix: ".mtlmd") }
        #expect(delta.manifest.shards?.files.map(\.fileName) == names)
        #expect(summary["deltaByteCount"] as? Int == ([delta.fileByteCount] + names.map { try! ModelFile(path: directory.path($0)).fileByteCount }).reduce(0, +).asInt)
        // The delta verifies as a whole, and each delta shard alone.
        #expect(try runCLI(["verify", directory.path("d.mtlmd")]).status == 0)
        for name in names { #expect(try runCLI(["verify", directory.path(name)]).status == 0, "\(name)") }

        let applied = try runCLI(["apply", base, directory.path("d.mtlmd"), directory.path("r.mtlm")])
        #expect(applied.status == 0, "\(applied.stderr)")
        let rebuilt = try Model(path: directory.path("r.mtlm")), expected = try Model(path: new)
        #expect(ModelVerifier().verify(rebuilt.file).isValid)
        #expect(rebuilt.shards.count == count && rebuilt.file.manifest.shards?.files.map(\.parts) == expected.file.manifest.shards?.files.map(\.parts))
        for (r, e) in zip(rebuilt.files, expected.files) {
            #expect(try tensorBytes(r) == tensorBytes(e), "\(e.path)")
            #expect(r.manifest.provenance == e.manifest.provenance && r.manifest.metadata == e.manifest.metadata && r.architecture == e.architecture)
        }
        #expect(try runCLI(["diff", new, directory.path("r.mtlm")]).status == 0)
        #expect(try Self.consolidatedBytes(directory.path("r.mtlm"), directory) == Self.consolidatedBytes(new, directory))
    }

    @Test("models split differently, or one file against shards: refused with the way round (exit 2), nothing written")
    func layoutRefused() throws {
        let directory = TemporaryDirectory()
        let (base, new) = try Self.pair(directory, count: 3)
        try shard(new, directory.path("new4.mtlm"), 4)
        try shard(new, directory.path("new-bits.mtlm"), 3, ["--bucket-bits", "8"])
        for (arguments, expected) in [([base, directory.path("new4.mtlm")], "the base is 3 shards, the new model 4 shards"),
                                      ([TestPaths.fixture("v1.0/small-training.mtlm"), new], "the base is one file, the new model 3 shards"),
                                      ([base, directory.path("edited.mtlm")], "the base is 3 shards, the new model one file"),
                                      ([base, directory.path("new-bits.mtlm")], "holds other buckets of field \"item_id\"")] {
            let result = try runCLI(["delta"] + arguments + [directory.path("out/d.mtlmd")])
            #expect(result.status == 2 && result.stderr.contains(expected) && result.stderr.contains("--shards"), "\(arguments): \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: directory.path("out")))
        // The advice reproduces the base's split: then the delta is made.
        try shard(directory.path("new4.mtlm"), directory.path("again.mtlm"), 3)
        #expect(try runCLI(["delta", base, directory.path("again.mtlm"), directory.path("d.mtlmd")]).status == 0)
    }

    @Test("apply refuses a delta for another base, shard or layout, and a delta shard, naming the file; nothing is written")
    func applyRefused() throws {
        let directory = TemporaryDirectory()
        let (base, new) = try Self.pair(directory, count: 3)
        let delta = directory.path("d.mtlmd")
        #expect(try runCLI(["delta", base, new, delta]).status == 0)
        try FileManager.default.createDirectory(atPath: directory.path("out"), withIntermediateDirectories: true)
        let other = TemporaryDirectory()
        let (_, otherNew) = try Self.pair(other, count: 3, newSeed: 4)
        try shard(base, directory.path("base4.mtlm"), 4)
        // A base whose dense layers are the base's but whose shard 1 differs: only that shard's binding fails.
        try copyModel(TestPaths.fixture("v1.0/small-training.mtlm"), to: directory.path("rows-source.mtlm")) { name, bytes in
            if name == "embedding.user_id.weight" { setFloat(&bytes, 0, 42) }
        }
        try shard(directory.path("rows-source.mtlm"), directory.path("rows.mtlm"), 3)
        let cases: [([String], String, String)] = [
            ([otherNew, delta], "was made for another base", delta),
            ([directory.path("rows.mtlm"), delta], "its base shard \(directory.path("rows-00001-of-00003.mtlm"))", directory.path("d-00001-of-00003.mtlmd")),
            ([directory.path("base4.mtlm"), delta], "was made for a base of 3 shards; the base \(directory.path("base4.mtlm")) has 4 shards", delta),
            ([TestPaths.fixture("v1.0/small-training.mtlm"), delta], "is one file", delta),
            ([base, directory.path("d-00002-of-00003.mtlmd")], "is shard 2 of 3 of the sharded delta d.mtlmd: apply its root", "d-00002-of-00003.mtlmd"),
            ([base, TestPaths.fixture("v1.2/small-edited.mtlmd")], "is a delta of a one-file model", "small-edited.mtlmd"),
        ]
        for (arguments, message, file) in cases {
            let result = try runCLI(["apply"] + arguments + [directory.path("out/r.mtlm")])
            #expect(result.status == 2 && result.stderr.contains(message) && result.stderr.contains(file), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path("out")).isEmpty)
    }

    @Test("a delta shard missing, stale (of another delta) or swapped is named; verify lists it (exit 1), apply refuses it (exit 2)")
    func brokenDeltaShards() throws {
        let directory = TemporaryDirectory()
        let (base, new) = try Self.pair(directory, count: 3)
        let first = TemporaryDirectory(), second = TemporaryDirectory()
        #expect(try runCLI(["delta", base, new, first.path("d.mtlmd")]).status == 0)
        #expect(try runCLI(["delta", base, new, second.path("d.mtlmd")]).status == 0)
        func shardPath(_ directory: TemporaryDirectory, _ index: Int) -> String { directory.path("d-0000\(index)-of-00003.mtlmd") }
        let breakages: [(String, () throws -> Void, String)] = [
            ("missing", { try FileManager.default.removeItem(atPath: shardPath(first, 2)) }, "shard 2 of 3"),
            ("stale", { try Data(contentsOf: URL(fileURLWithPath: shardPath(second, 2))).write(to: URL(fileURLWithPath: shardPath(first, 2))) }, "belongs to another model"),
            ("swapped", {
                try FileManager.default.removeItem(atPath: shardPath(first, 1))
                try FileManager.default.copyItem(atPath: shardPath(first, 3), toPath: shardPath(first, 1))
            }, "is shard 3 of 3"),
        ]
        for (name, breakIt, message) in breakages {
            try? FileManager.default.removeItem(atPath: first.path("d.mtlmd"))
            for index in 1...3 { try? FileManager.default.removeItem(atPath: shardPath(first, index)) }
            #expect(try runCLI(["delta", base, new, first.path("d.mtlmd")]).status == 0)
            try breakIt()
            let verify = try runCLI(["verify", first.path("d.mtlmd")])
            #expect(verify.status == 1 && verify.stdout.contains(message), "\(name): \(verify.stdout)")
            let apply = try runCLI(["apply", base, first.path("d.mtlmd"), directory.path("r.mtlm")])
            #expect(apply.status == 2 && apply.stderr.contains(message), "\(name): \(apply.stderr)")
            #expect(!FileManager.default.fileExists(atPath: directory.path("r.mtlm")))
        }
    }

    @Test("a delta written over another leaves exactly its own files: shards of another count or a one-file delta's target")
    func overwrite() throws {
        let directory = TemporaryDirectory()
        let (base, new) = try Self.pair(directory, count: 3)
        try shard(base, directory.path("base2.mtlm"), 2)
        try shard(new, directory.path("new2.mtlm"), 2)
        let out = TemporaryDirectory()
        func listing() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: out.url.path).sorted() }
        #expect(try runCLI(["delta", base, new, out.path("d.mtlmd")]).status == 0)
        #expect(try listing() == ["d-00001-of-00003.mtlmd", "d-00002-of-00003.mtlmd", "d-00003-of-00003.mtlmd", "d.mtlmd"])
        #expect(try runCLI(["delta", directory.path("base2.mtlm"), directory.path("new2.mtlm"), out.path("d.mtlmd")]).status == 0)
        #expect(try listing() == ["d-00001-of-00002.mtlmd", "d-00002-of-00002.mtlmd", "d.mtlmd"])
        try Self.edited(to: directory.path("edited2.mtlm"), seed: 3)
        #expect(try runCLI(["delta", TestPaths.fixture("v1.0/small-training.mtlm"), directory.path("edited2.mtlm"), out.path("d.mtlmd")]).status == 0)
        #expect(try listing() == ["d.mtlmd"])
    }
}

private extension UInt64 {
    var asInt: Int { Int(self) }
}
