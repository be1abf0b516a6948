import ArgumentParser
import Foundation
import MTLModel

struct ShardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shard",
        abstract: "Split a model into N shard files and a root, reshard a sharded one, or (--shards 1) consolidate it into one file.",
        discussion: """
            Writes OUT (the root) and OUT-0000k-of-0000N.mtlm beside it (docs/FORMAT.md, "Sharded \
            models"): direct and modulo tables by row ranges, keyed tables by buckets of a seeded \
            hash of the id; training state goes with its rows. Every tensor is copied byte for byte; \
            the shards are written first, the root last (its rename is the commit); shard files of \
            earlier writes of OUT that no root uses any more are removed.

            Examples:
              mtl-model shard model.mtlm sharded/model.mtlm --shards 16 --threads 2
              mtl-model shard sharded.mtlm one.mtlm --shards 1
            """
    )

    @Argument(help: "The model: one .mtlm file or a sharded model's root.")
    var input: String

    @Argument(help: "The root to write (or, with --shards 1, the one file).")
    var output: String

    @Option(help: "Shards to write; 1 writes one ordinary file.")
    var shards: Int

    @Option(help: "Threads in all: up to that many shards written at once, the rest shared among their writes (default: one shard at a time, written with every core).")
    var threads: Int?

    @Option(help: "Buckets of keyed tables as a power of two (default: the input's when it is sharded, else \(ShardLayout.defaultBucketBits)).")
    var bucketBits: Int?

    @Option(help: "Seed of the bucket hash of keyed tables (default: the input's when it is sharded, else 0).")
    var hashSeed: UInt64?

    @Flag(help: "Print one JSON document instead of text.")
    var json = false

    @OptionGroup(title: "Limits") var limits: ReadLimitOptions

    @OptionGroup(title: "Progress") var progress: ProgressOptions

    func validate() throws {
        guard shards >= 1 else { throw ValidationError("--shards must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let bucketBits, !(1...ShardLayout.maxBucketBits).contains(bucketBits) {
            throw ValidationError("--bucket-bits must be in 1...\(ShardLayout.maxBucketBits)")
        }
    }

    func run() throws {
        let model = try limits.model(input)
        try conclude(progress.run(total: Progress.byteCount(of: [model])) { try ModelSharder().shard(model, to: output, options: options) })
    }

    private var options: ModelSharder.Options {
        var options = ModelSharder.Options(shardCount: shards)
        options.threadCount = threads
        options.bucketBits = bucketBits
        options.hashSeed = hashSeed
        options.source = Invocation.commandLine
        return options
    }

    private func conclude(_ report: ModelSharder.Report) throws {
        if json {
            try Terminal.json(Output(report: report))
            return
        }
        if report.shards.isEmpty {
            Terminal.output("wrote \(TerminalText.escaped(output)): one file, \(Format.bytes(report.byteCount))")
        } else {
            Terminal.output("wrote \(TerminalText.escaped(output)) and \(report.shards.count) shards: \(Format.bytes(report.byteCount)) in all")
            for name in report.removedLeftovers { Terminal.output("removed \(TerminalText.escaped(name)) (a shard of an earlier write no root uses)") }
        }
    }

    struct Output: Encodable {
        var schemaVersion = Terminal.jsonSchemaVersion
        var output: String
        var shardCount: Int
        var byteCount: UInt64
        var shards: [ModelSharder.Report.Shard]
        var removedLeftovers: [String]

        init(report: ModelSharder.Report) {
            output = report.output
            shardCount = report.shardCount
            byteCount = report.byteCount
            shards = report.shards
            removedLeftovers = report.removedLeftovers
        }
    }
}

extension ShardCommand: PlannableCommand {
    func plan(_ arguments: [String], planPath: String) throws -> TaskPlan {
        try TaskPlan.shard(command: arguments, model: limits.model(input), output: output, options: options, planPath: planPath)
    }

    func runTask(_ plan: TaskPlan, index: Int) throws -> TaskResult {
        try plan.runShard(limits.model(input), options: options, index: index)
    }

    func finish(_ plan: TaskPlan) throws {
        try conclude(plan.finishShard(limits.model(input), output: output, options: options))
    }
}
