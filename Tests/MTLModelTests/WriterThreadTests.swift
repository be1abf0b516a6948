import Foundation
import Testing
@testable import MTLModel

/// A command's `--threads` bounds its writers too (`ModelWriter.Options.threadCount`): a task
/// given one thread of a cluster's worker must not spin a second core on its file's lock.
@Suite("Writer threads")
struct WriterThreadTests {
    /// A model whose direct table (600k rows of 4 floats, 9.6 MB) is written in pieces of many
    /// chunks, the writer's concurrent path, plus a keyed table.
    func model(in directory: TemporaryDirectory) throws -> Model {
        let config = directory.path("large.json")
        try #"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 600000}, {"name": "b", "vocab_size": 70000, "mapping": "keyed"}], "tasks": [{"name": "t"}]}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        #expect(try runCLI(["synth", config, directory.path("large.mtlm"), "--seed", "5"]).status == 0)
        return try Model(path: directory.path("large.mtlm"))
    }

    @Test("Options limited to T threads keep at most T (at least 1)")
    func limited() {
        var options = ModelWriter.Options()
        options.threadCount = 3
        #expect(options.limited(to: 1).threadCount == 1)
        #expect(options.limited(to: 2).threadCount == 2)
        #expect(options.limited(to: 8).threadCount == 3)
        #expect(options.limited(to: 0).threadCount == 1)
    }

    @Test("shard --threads T writes min(T, N) shards at once with T / that many writer threads each (a task's one shard: T); none given, one shard at a time written with every core")
    func shardWriterThreads() throws {
        let directory = TemporaryDirectory()
        let model = try model(in: directory)
        func writerThreads(_ threads: Int?, shards: Int, concurrentShards: Int? = nil) throws -> Int {
            var options = ModelSharder.Options(shardCount: shards)
            options.threadCount = threads
            return try ShardPlan(model, options: options, output: directory.path("p.mtlm"), concurrentShards: concurrentShards)
                .writerOptions.threadCount
        }
        #expect(try writerThreads(nil, shards: 8) == ProcessInfo.processInfo.activeProcessorCount)
        #expect(try writerThreads(1, shards: 8) == 1)
        #expect(try writerThreads(4, shards: 8) == 1)
        #expect(try writerThreads(4, shards: 2) == 2)
        #expect(try writerThreads(5, shards: 2) == 2)
        #expect(try writerThreads(3, shards: 8, concurrentShards: 1) == 3)
        #expect(try writerThreads(3, shards: 1) == 3)
        var options = ModelSharder.Options(shardCount: 2)
        options.threadCount = 0
        #expect(throws: MTLModelError.self) { try ModelSharder().shard(model, to: directory.path("zero.mtlm"), options: options) }
        #expect(try runCLI(["shard", directory.path("large.mtlm"), directory.path("zero.mtlm"), "--shards", "2", "--threads", "0"]).status == 2)
    }

    @Test("shard writes the same root and shards at every thread count, and none given")
    func shardSameBytes() throws {
        let directory = TemporaryDirectory()
        let model = try model(in: directory)
        func files(_ threads: Int?) throws -> [[UInt8]] {
            var options = ModelSharder.Options(shardCount: 2)
            options.threadCount = threads
            options.synchronize = false
            options.modelID = Array(repeating: 9, count: ShardNaming.modelIDByteCount)
            options.createdUnixSeconds = 0
            let folder = directory.path("t\(threads ?? 0)")
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            _ = try ModelSharder().shard(model, to: folder + "/m.mtlm", options: options)
            return try ([folder + "/m.mtlm"] + (1...2).map { ShardNaming.path(root: folder + "/m.mtlm", index: $0, count: 2) })
                .map { Array(try Data(contentsOf: URL(fileURLWithPath: $0))) }
        }
        let reference = try files(nil)
        #expect(reference[1].count > 4 << 20)  // a shard's table: pieces of many chunks
        for threads in [1, 2, 3] { #expect(try files(threads) == reference, "--threads \(threads)") }
    }

    @Test("quantize, dequantize and convert hand their threads to their writers")
    func rewriteWriterThreads() throws {
        let directory = TemporaryDirectory()
        let model = try model(in: directory)
        let training = try Model(path: TestPaths.fixture("v1.0/small-training.mtlm"))
        for threads in [1, 2] {
            #expect(try ModelQuantizer(plan: .float32, threadCount: threads).job(model, source: "t").rewrite.options.threadCount == threads)
            let converter = ModelConverter(threadCount: threads)
            #expect(try converter.servingJob(training, options: .init()).rewrite.options.threadCount == threads)
            #expect(try converter.trainingJob(model, optimizer: .adagrad).rewrite.options.threadCount == threads)
        }
    }

    @Test("dequantize --threads 1 and 2 write the same bytes; --threads 0 is refused (exit 2)")
    func dequantizeThreads() throws {
        let directory = TemporaryDirectory()
        _ = try model(in: directory)
        #expect(try runCLI(["quantize", directory.path("large.mtlm"), directory.path("q.mtlm"), "--quiet"]).status == 0)
        for threads in [1, 2] {
            #expect(try runCLI(["dequantize", directory.path("q.mtlm"), directory.path("d\(threads).mtlm"), "--threads", "\(threads)"]).status == 0)
        }
        let one = try ModelFile(path: directory.path("d1.mtlm")), two = try ModelFile(path: directory.path("d2.mtlm"))
        #expect(try tensorBytes(one) == tensorBytes(two))
        #expect(try runCLI(["dequantize", directory.path("q.mtlm"), directory.path("d0.mtlm"), "--threads", "0"]).status == 2)
        #expect(!FileManager.default.fileExists(atPath: directory.path("d0.mtlm")))
    }
}
