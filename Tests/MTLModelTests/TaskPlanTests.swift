import Foundation
import Testing
@testable import MTLModel

/// `plan` / `run-task` / `finish` (docs/SCALE.md): a command on a sharded model run as one
/// task per shard prints what the single process prints and writes the same tensors, file by
/// file; tasks are idempotent; a plan missing a task, finished twice, or over a changed input
/// is refused, naming the task.
@Suite("task plans")
struct TaskPlanTests {
    /// Two directories holding the same sharded model at `in/m.mtlm` (4 shards of the training
    /// fixture) and its int8 quantization at `in/n.mtlm` (split alike): one for the single
    /// process, one for the plan, so that every relative path, and so every line printed, is
    /// the same in both.
    final class Workspace {
        let directory = TemporaryDirectory()
        var single: String { directory.path("single") }
        var planned: String { directory.path("planned") }

        /// - Parameter source: the model to split (default: the training fixture).
        init(source: String = TestPaths.fixture("v1.0/small-training.mtlm"), shards: Int = 4) throws {
            for side in [single, planned] {
                try FileManager.default.createDirectory(atPath: side + "/out", withIntermediateDirectories: true)
            }
            try FileManager.default.createDirectory(atPath: single + "/in", withIntermediateDirectories: true)
            try shard(source, single + "/in/m.mtlm", shards)
            let quantized = try runCLI(["quantize", "in/m.mtlm", "in/n.mtlm", "--embeddings", "int8"], directory: single)
            #expect(quantized.status == 0, "\(quantized.stderr)")
            try FileManager.default.copyItem(atPath: single + "/in", toPath: planned + "/in")
        }

        /// Runs `command` in one process and as a plan; returns both results (the plan's is the finish's).
        func run(_ command: [String]) throws -> (single: CommandResult, planned: CommandResult) {
            let single = try runCLI(command, directory: self.single)
            let planned = try runPlan(command)
            return (single, planned)
        }

        /// Plans `command`, runs its tasks (last first: no task depends on another), finishes.
        func runPlan(_ command: [String]) throws -> CommandResult {
            let made = try runCLI(["plan"] + command + ["--out", "plan.json"], directory: planned)
            #expect(made.status == 0, "\(made.stderr)")
            let count = try TaskPlan.load(planned + "/plan.json").tasks.count
            for index in (0..<count).reversed() {
                let task = try runCLI(["run-task", "plan.json", "--index", String(index)], directory: planned)
                #expect(task.status == 0, "\(task.stderr)")
            }
            return try runCLI(["finish", "plan.json"], directory: planned)
        }

        /// Every file of `out/` in both, their tensors byte for byte, their provenance source.
        func expectSameOutputs() throws {
            let names = try FileManager.default.contentsOfDirectory(atPath: single + "/out").sorted()
            #expect(try FileManager.default.contentsOfDirectory(atPath: planned + "/out").sorted() == names)
            #expect(!names.isEmpty)
            for name in names {
                let a = try ModelFile(path: single + "/out/" + name), b = try ModelFile(path: planned + "/out/" + name)
                #expect(try tensorBytes(a) == tensorBytes(b), "\(name)")
                #expect(a.tensors.map(\.name) == b.tensors.map(\.name))
                #expect(a.manifest.provenance.source == b.manifest.provenance.source)
                #expect(a.manifest.provenance.lineage == b.manifest.provenance.lineage)
                #expect(a.manifest.shards?.files.map(\.parts) == b.manifest.shards?.files.map(\.parts))
                #expect(a.manifest.shards?.tensors == b.manifest.shards?.tensors)
            }
            let root = names.first { !$0.contains("-of-") }!
            #expect(ModelVerifier().verify(try ModelFile(path: planned + "/out/" + root)).problems == [])
        }
    }

    static let commands: [[String]] = [
        ["quantize", "in/m.mtlm", "out/m.mtlm", "--embeddings", "int4", "--dense", "bf16", "--threads", "1"],
        ["quantize", "in/m.mtlm", "out/m.mtlm", "--json"],
        ["dequantize", "in/m.mtlm", "out/m.mtlm"],
        ["convert", "in/m.mtlm", "out/m.mtlm", "--to", "serving", "--fold-batch-norm", "--embeddings", "int8"],
        ["convert", "in/m.mtlm", "out/m.mtlm", "--to", "serving", "--json"],
        ["convert", "in/m.mtlm", "out/m.mtlm", "--to", "training", "--optimizer", "adam"],
        ["shard", "in/m.mtlm", "out/m.mtlm", "--shards", "3"],
        ["shard", "in/m.mtlm", "out/m.mtlm", "--shards", "7", "--bucket-bits", "5", "--json"],
        ["delta", "in/m.mtlm", "in/n.mtlm", "out/d.mtlmd"],
        ["delta", "in/n.mtlm", "in/m.mtlm", "out/d.mtlmd", "--json"],
        ["diff", "in/m.mtlm", "in/n.mtlm", "--rows", "--top", "3"],
        ["diff", "in/m.mtlm", "in/n.mtlm", "--json", "--rows", "--atol", "0.0001", "--threads", "1"],
        ["diff", "in/n.mtlm", "in/n.mtlm", "--json"],
    ]

    @Test("a planned command prints what the single process prints and writes the same tensors in every file", arguments: commands)
    func sameAsSingleProcess(_ command: [String]) throws {
        let workspace = try Workspace()
        let (single, planned) = try workspace.run(command)
        // diff: 1 when the models differ.
        let expected: Int32 = command.first == "diff" && command[2] != command[1] ? 1 : 0
        #expect(single.status == expected, "\(single.stderr)")
        #expect(planned.status == expected, "\(planned.stderr)")
        if ["shard", "delta"].contains(command.first) && command.contains("--json") {
            // A root records each shard's manifest hash as a varint, and the hashes cover the
            // (random) model id: the root's size, and so the total, can differ by a few bytes.
            var (a, b) = (single.json!, planned.json!)
            func size(_ document: inout [String: Any]) -> Int {
                guard var summary = document["summary"] as? [String: Any] else {
                    defer { document["byteCount"] = 0 }
                    return document["byteCount"] as! Int
                }
                defer { summary["deltaByteCount"] = 0; document["summary"] = summary }
                return summary["deltaByteCount"] as! Int
            }
            #expect(abs(size(&a) - size(&b)) <= 2 * 10 * 4)
            #expect(NSDictionary(dictionary: a) == NSDictionary(dictionary: b))
        } else {
            #expect(planned.stdout == single.stdout)
        }
        if command.first != "diff" { try workspace.expectSameOutputs() }
        // Nothing of the plan is left beside the output.
        #expect(try FileManager.default.contentsOfDirectory(atPath: workspace.planned + "/out").allSatisfy { !$0.contains(".plan-") && !$0.hasPrefix(".") })
    }

    @Test("convert of the demo model (trained, real row counts) folded, pruned and quantized, and a reshard 4 → 3 of it")
    func demo() throws {
        let directory = TemporaryDirectory()
        guard let demo = try importedDemo(into: directory) else { return }
        let workspace = try Workspace(source: demo.training)
        for command in [["convert", "in/m.mtlm", "out/m.mtlm", "--to", "serving", "--fold-batch-norm", "--prune-unseen", "--embeddings", "int8", "--json"],
                        ["shard", "in/m.mtlm", "out/m.mtlm", "--shards", "3"]] {
            let (single, planned) = try workspace.run(command)
            #expect(single.status == 0 && planned.status == 0, "\(planned.stderr)")
            #expect(planned.stdout == single.stdout)
            try workspace.expectSameOutputs()
            for side in [workspace.single, workspace.planned] { try FileManager.default.removeItem(atPath: side + "/out") }
            for side in [workspace.single, workspace.planned] { try FileManager.default.createDirectory(atPath: side + "/out", withIntermediateDirectories: false) }
        }
    }

    @Test("verify: a valid model and one with a corrupt shard report the same problems, with the same exit code")
    func verify() throws {
        let workspace = try Workspace()
        var (single, planned) = try workspace.run(["verify", "in/m.mtlm", "--json"])
        #expect(single.status == 0 && planned.status == 0, "\(planned.stderr)")
        #expect(planned.stdout == single.stdout)
        // A flipped payload byte in shard 2 (both copies), and shard 4 missing.
        for side in [workspace.single, workspace.planned] {
            let path = side + "/in/m-00002-of-00004.mtlm"
            let file = try ModelFile(path: path)
            let offset = Int(file.tensors.first { $0.byteCount > 0 }!.offset)
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            bytes[offset] ^= 0x40
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            try FileManager.default.removeItem(atPath: side + "/in/m-00004-of-00004.mtlm")
        }
        (single, planned) = try workspace.run(["verify", "in/m.mtlm"])
        #expect(single.status == 1)
        #expect(planned.status == 1, "\(planned.stderr)")
        #expect(planned.stdout == single.stdout)
        #expect(single.stdout.contains("checksum") && single.stdout.contains("shard 4 of 4"))
    }

    @Test("a task rerun writes the same bytes and the same result")
    func idempotent() throws {
        let workspace = try Workspace()
        let dir = workspace.planned
        #expect(try runCLI(["plan", "quantize", "in/m.mtlm", "out/m.mtlm", "--out", "plan.json"], directory: dir).status == 0)
        let plan = try TaskPlan.load(dir + "/plan.json")
        func snapshot() throws -> [Data] {
            try [plan.tasks[1].writes!, plan.tasks[1].result].map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        }
        #expect(try runCLI(["run-task", "plan.json", "--index", "1"], directory: dir).status == 0)
        let first = try snapshot()
        #expect(try runCLI(["run-task", "plan.json"], environment: ["SLURM_ARRAY_TASK_ID": "1"], directory: dir).status == 0)
        #expect(try snapshot() == first)
        #expect(try runCLI(["run-task", "plan.json"], environment: ["JOB_COMPLETION_INDEX": "1"], directory: dir).status == 0)
        #expect(try snapshot() == first)
    }

    @Test("refused, naming the task: a missing task, a finished plan, a changed input, a replaced output, an index out of range")
    func refusals() throws {
        let workspace = try Workspace()
        let dir = workspace.planned
        #expect(try runCLI(["plan", "dequantize", "in/m.mtlm", "out/m.mtlm", "--out", "plan.json"], directory: dir).status == 0)
        for index in [0, 1, 3] { #expect(try runCLI(["run-task", "plan.json", "--index", String(index)], directory: dir).status == 0) }
        var result = try runCLI(["finish", "plan.json"], directory: dir)
        #expect(result.status == 2 && result.stderr.contains("task 2 (shard 3 of 4) has no result"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/out/m.mtlm"))

        result = try runCLI(["run-task", "plan.json", "--index", "4"], directory: dir)
        #expect(result.status == 2 && result.stderr.contains("task 4 is not in the plan: its tasks are 0…3"), "\(result.stderr)")
        result = try runCLI(["run-task", "plan.json"], directory: dir)
        #expect(result.status == 2 && result.stderr.contains("SLURM_ARRAY_TASK_ID"), "\(result.stderr)")

        // Task 2's output replaced by task 3's: the finish sees it is not what task 2 wrote.
        #expect(try runCLI(["run-task", "plan.json", "--index", "2"], directory: dir).status == 0)
        let plan = try TaskPlan.load(dir + "/plan.json")
        let saved = try Data(contentsOf: URL(fileURLWithPath: plan.tasks[2].writes!))
        try FileManager.default.removeItem(atPath: plan.tasks[2].writes!)
        try FileManager.default.copyItem(atPath: plan.tasks[3].writes!, toPath: plan.tasks[2].writes!)
        result = try runCLI(["finish", "plan.json"], directory: dir)
        #expect(result.status == 2 && result.stderr.contains("task 2 (shard 3 of 4): the output is not the file the task wrote"), "\(result.stderr)")
        try saved.write(to: URL(fileURLWithPath: plan.tasks[2].writes!))

        result = try runCLI(["finish", "plan.json"], directory: dir)
        #expect(result.status == 0, "\(result.stderr)")
        result = try runCLI(["finish", "plan.json"], directory: dir)
        #expect(result.status == 2 && result.stderr.contains("the plan was finished already"), "\(result.stderr)")
        result = try runCLI(["run-task", "plan.json", "--index", "0"], directory: dir)
        #expect(result.status == 2 && result.stderr.contains("the plan was finished already"), "\(result.stderr)")

        // The input changed after planning.
        #expect(try runCLI(["plan", "dequantize", "in/m.mtlm", "out/n.mtlm", "--out", "plan.json"], directory: dir).status == 0)
        try shard(TestPaths.fixture("v1.0/small-training.mtlm"), dir + "/in/m.mtlm", 4)
        result = try runCLI(["run-task", "plan.json", "--index", "0"], directory: dir)
        #expect(result.status == 2 && result.stderr.contains("it changed since `plan` ran"), "\(result.stderr)")
    }

    @Test("plan refuses what it cannot split, and a plan this machine cannot see")
    func planRefusals() throws {
        let workspace = try Workspace()
        let dir = workspace.planned
        var result = try runCLI(["plan", "quantize", TestPaths.fixture("v1.0/small.mtlm"), "out/q.mtlm", "--out", "plan.json"], directory: dir)
        #expect(result.status == 2 && result.stderr.contains("is one file: a plan splits a sharded model's work by shard"), "\(result.stderr)")
        result = try runCLI(["plan", "eval", "in/m.mtlm", "data.txt", "--out", "plan.json"], directory: dir)
        #expect(result.status == 2 && result.stderr.contains("eval cannot be planned"), "\(result.stderr)")
        // diff and delta compare shard k with shard k: of two models split alike only.
        try shard(dir + "/in/m.mtlm", dir + "/in/three.mtlm", 3)
        for command in [["diff", "in/m.mtlm", "in/three.mtlm"], ["delta", "in/m.mtlm", "in/three.mtlm", "out/d.mtlmd"]] {
            result = try runCLI(["plan"] + command + ["--out", "plan.json"], directory: dir)
            #expect(result.status == 2 && result.stderr.contains("4 shards") && result.stderr.contains("3 shards")
                    && result.stderr.contains("mtl-model shard in/three.mtlm OUT.mtlm --shards 4"), "\(result.stderr)")
        }
        result = try runCLI(["plan", "diff", "in/m.mtlm", TestPaths.fixture("v1.0/small-training.mtlm"), "--out", "plan.json"], directory: dir)
        #expect(result.status == 2 && result.stderr.contains("small-training.mtlm one file"), "\(result.stderr)")
        result = try runCLI(["plan", "shard", "in/m.mtlm", "out/one.mtlm", "--shards", "1", "--out", "plan.json"], directory: dir)
        #expect(result.status == 2 && result.stderr.contains("--shards 1 writes one file"), "\(result.stderr)")
        result = try runCLI(["plan", "quantize", "in/m.mtlm", "in/m.mtlm", "--out", "plan.json"], directory: dir)
        #expect(result.status == 2, "an input is never an output")
        result = try runCLI(["plan", "quantize", "in/m.mtlm", "-", "--out", "plan.json"], directory: dir)
        #expect(result.status == 2 && result.stderr.contains("not a device or standard output"), "\(result.stderr)")

        #expect(try runCLI(["plan", "verify", "in/m.mtlm", "--out", "plan.json"], directory: dir).status == 0)
        var text = try String(contentsOfFile: dir + "/plan.json", encoding: .utf8)
        text = text.replacingOccurrences(of: "\"directory\" : \"\(dir)\"", with: "\"directory\" : \"/nonexistent/elsewhere\"")
        try text.write(toFile: dir + "/plan.json", atomically: true, encoding: .utf8)
        result = try runCLI(["run-task", "plan.json", "--index", "0"], directory: dir)
        #expect(result.status == 2 && result.stderr.contains("the directory the plan was made in is not visible on this machine"), "\(result.stderr)")
        // The directory is there, the input is not (another machine's mount).
        #expect(try runCLI(["plan", "quantize", "in/m.mtlm", "out/q.mtlm", "--out", "plan.json"], directory: dir).status == 0)
        text = try String(contentsOfFile: dir + "/plan.json", encoding: .utf8)
        text = text.replacingOccurrences(of: "\"path\" : \"\(dir)/in/m.mtlm\"", with: "\"path\" : \"/mnt/elsewhere/m.mtlm\"")
        try text.write(toFile: dir + "/plan.json", atomically: true, encoding: .utf8)
        result = try runCLI(["run-task", "plan.json", "--index", "0"], directory: dir)
        #expect(result.status == 2 && result.stderr.contains("/mnt/elsewhere/m.mtlm: the model the plan reads is not visible on this machine"), "\(result.stderr)")
        try "{\"format\": \"something else\"}".write(toFile: dir + "/plan.json", atomically: true, encoding: .utf8)
        result = try runCLI(["finish", "plan.json"], directory: dir)
        #expect(result.status == 2 && result.stderr.contains("not a plan of mtl-model"), "\(result.stderr)")
    }

    @Test("a planned delta applies to the base and rebuilds the new model; its tasks write the same delta shards again")
    func deltaApplies() throws {
        let workspace = try Workspace()
        let dir = workspace.planned
        let planned = try workspace.runPlan(["delta", "in/m.mtlm", "in/n.mtlm", "out/d.mtlmd"])
        #expect(planned.status == 0, "\(planned.stderr)")
        let applied = try runCLI(["apply", "in/m.mtlm", "out/d.mtlmd", "out/rebuilt.mtlm"], directory: dir)
        #expect(applied.status == 0, "\(applied.stderr)")
        let diff = try runCLI(["diff", "in/n.mtlm", "out/rebuilt.mtlm"], directory: dir)
        #expect(diff.status == 0, "\(diff.stdout)\(diff.stderr)")
    }

    @Test("diff of two sharded models split alike (shard by shard, merged) gives the figures the diff of their consolidations gives")
    func shardedDiffMatchesOneFile() throws {
        let directory = TemporaryDirectory()
        guard let demo = try importedDemo(into: directory) else { return }
        // The demo's training model against its pruned serving form: keyed rows removed, every
        // value of the quantized tables changed; 5 shards each, split alike.
        let pruned = directory.path("pruned.mtlm")
        let converted = try runCLI(["convert", demo.training, pruned, "--to", "serving", "--prune-unseen", "--embeddings", "int8"])
        #expect(converted.status == 0, "\(converted.stderr)")
        try shard(demo.training, directory.path("a.mtlm"), 5)
        try shard(pruned, directory.path("b.mtlm"), 5, ["--bucket-bits", "10"])
        try shard(demo.training, directory.path("a10.mtlm"), 5, ["--bucket-bits", "10"])
        func tables(_ a: String, _ b: String) throws -> (tables: [[String: Any]], tensors: [String: Bool]) {
            let result = try runCLI(["diff", a, b, "--json", "--rows", "--top", "1"])
            #expect(result.status == 1, "\(result.stderr)")
            let report = result.json!["report"] as! [String: Any]
            // The most changed rows (ties), the first rows added or removed: in row order, which sharding changes.
            let tables = (report["tables"] as! [[String: Any]]).map { $0.filter { !["topChanged", "addedIDs", "removedIDs"].contains($0.key) } }
            let tensors = Dictionary(uniqueKeysWithValues: (report["tensors"] as! [[String: Any]]).map { ($0["name"] as! String, $0["equal"] as! Bool) })
            return (tables, tensors)
        }
        let whole = try tables(demo.training, pruned), sharded = try tables(directory.path("a10.mtlm"), directory.path("b.mtlm"))
        #expect(sharded.tables.map { NSDictionary(dictionary: $0) } == whole.tables.map { NSDictionary(dictionary: $0) })
        #expect(sharded.tensors == whole.tensors)
        #expect(whole.tables.contains { ($0["removed"] as! Int) > 0 })
        // Split otherwise (other bucket bits): compared as a whole, the same figures.
        let other = try tables(directory.path("a.mtlm"), directory.path("b.mtlm"))
        #expect(other.tables.map { NSDictionary(dictionary: $0) } == whole.tables.map { NSDictionary(dictionary: $0) })
    }

    @Test("a gate that fails at the finish writes nothing and removes the tasks' shards")
    func failedGate() throws {
        let workspace = try Workspace(source: TestPaths.fixture("v1.0/small.mtlm"))
        let command = ["quantize", "in/m.mtlm", "out/m.mtlm", "--embeddings", "int4", "--eval", TestPaths.fixture("predict/small.txt"),
                       "--max-logloss-increase", "0", "--max-auc-drop=-1"]
        let (single, planned) = try workspace.run(command)
        #expect(single.status == 1 && planned.status == 1, "\(planned.stderr)")
        #expect(planned.stdout == single.stdout)
        #expect(try FileManager.default.contentsOfDirectory(atPath: workspace.planned + "/out") == [])
    }
}
