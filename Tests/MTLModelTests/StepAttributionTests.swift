import Foundation
import Testing
@testable import MTLModel

/// `convert --eval` and `quantize --eval` score each step of the rewrite alone: on the demo
/// model, the README's first deploy command failed its gate and nothing said why; pruning is
/// the step that does it (ids unseen in training but seen in the test set).
@Suite("each step's cost")
struct StepAttributionTests {
    static func steps(_ result: CommandResult) -> [String: [String: Any]] {
        let steps = result.json?["steps"] as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: steps.map { ($0["name"] as! String, $0) })
    }

    /// ΔAUC of `task` in a comparison's JSON.
    static func deltaAUC(_ comparison: [String: Any], _ task: String) -> Double {
        let tasks = comparison["tasks"] as! [[String: Any]]
        return tasks.first { $0["task"] as! String == task }!["deltaAUC"] as! Double
    }

    @Test("the deploy command that fails its gate names the step that fails it alone; each step is what that step run alone gives")
    func demoDeploy() throws {
        let directory = TemporaryDirectory()
        guard let demo = try importedDemo(into: directory) else { return }
        let out = directory.path("serving.mtlm")
        let command = ["convert", demo.training, out, "--to", "serving", "--fold-batch-norm", "--prune-unseen", "--embeddings", "int8",
                       "--dense", "fp16", "--eval", demo.data, "--max-auc-drop", "0.0005"]
        let failed = try runCLI(command + ["--json"])
        #expect(failed.status == 1, "\(failed.stderr)")
        let steps = Self.steps(failed)
        let fields = try ModelFile(path: demo.training).architecture.fields.map(\.name)
        #expect(Set(steps.keys) == Set(["fold batch norm", "prune unseen rows", "quantize dense layers (fp16)"] + fields.map { "quantize table \($0) (int8)" }))
        #expect((steps["prune unseen rows"]!["failures"] as! [String]).contains { $0.hasPrefix("follow: AUC dropped by") })
        #expect((steps["fold batch norm"]!["failures"] as! [String]).isEmpty)
        // The pruning step alone is what convert --prune-unseen alone gives, number for number.
        let pruned = try runCLI(["convert", demo.training, directory.path("pruned.mtlm"), "--to", "serving", "--prune-unseen",
                                 "--eval", demo.data, "--json"])
        #expect(pruned.status == 0, "\(pruned.stderr)")
        // (The step's comparison read the input's predictions back from the first comparison's;
        // this one computed them: the whole comparison is the same.)
        let alone = steps["prune unseen rows"]!["comparison"] as! [String: Any]
        for task in ["ctr", "follow"] {
            #expect(Self.deltaAUC(alone, task) == Self.deltaAUC(pruned.json!["evaluation"] as! [String: Any], task))
        }
        #expect(NSDictionary(dictionary: alone) == NSDictionary(dictionary: pruned.json!["evaluation"] as! [String: Any]))
        #expect(Self.deltaAUC(alone, "follow") < -0.001)
        // Nothing of the steps, nor the output, is left.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path("")).filter { $0.hasPrefix(".") || $0 == "serving.mtlm" } == [])
    }

    @Test("A comparison reading the input's predictions back is the one computing them; data that changed in between is an error")
    func referenceReadBack() throws {
        let directory = TemporaryDirectory()
        guard let demo = try importedDemo(into: directory) else { return }
        let input = try Model(path: demo.serving)
        let step = directory.path("int8.mtlm")
        #expect(try runCLI(["quantize", demo.serving, step, "--embeddings", "int8"]).status == 0)
        let reference = ReferenceScores(input)
        let first = try QualityComparison.compare(reference, try Model(path: demo.training), data: demo.data)
        #expect(reference.isRecorded && first.sampleCount > 10_000)
        let readBack = try QualityComparison.compare(reference, try Model(path: step), data: demo.data, batchSize: 4096)
        let computed = try QualityComparison.compare(input, try Model(path: step), data: demo.data)
        let lone = ReferenceScores(input, recording: false)  // what a lone comparison uses: nothing written
        _ = try QualityComparison.compare(lone, try Model(path: step), data: demo.data)
        #expect(!lone.isRecorded)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(try encoder.encode(readBack) == encoder.encode(computed))
        // The same data cut short, or read in other batches: the read-back predictions are not its.
        let lines = try String(contentsOfFile: demo.data, encoding: .utf8).split(separator: "\n")
        let shorter = directory.path("shorter.txt")
        try (lines.dropLast(100).joined(separator: "\n") + "\n").write(toFile: shorter, atomically: true, encoding: .utf8)
        for (data, batchSize) in [(shorter, 4096), (demo.data, 1000)] {
            #expect {
                _ = try QualityComparison.compare(reference, try Model(path: step), data: data, batchSize: batchSize)
            } throws: { error in
                let message = (error as? MTLModelError)?.description ?? ""
                return message.contains("the data changed while it was being scored") && message.contains(data)
            }
        }
    }

    @Test("the README's deploy command passes on the demo model")
    func readmeDeploy() throws {
        let directory = TemporaryDirectory()
        guard let demo = try importedDemo(into: directory) else { return }
        let readme = try String(contentsOf: TestPaths.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(readme.contains("--fold-batch-norm --embeddings int8 --dense fp16 --eval test.txt --max-auc-drop 0.0005"))
        let result = try runCLI(["convert", demo.training, directory.path("serving.mtlm"), "--to", "serving", "--fold-batch-norm",
                                 "--embeddings", "int8", "--dense", "fp16", "--eval", demo.data, "--max-auc-drop", "0.0005"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("gate: passed") && result.stdout.contains("each step alone"))
    }

    @Test("quantize --eval: one step per table it changes and one for the dense layers; one step alone is not repeated")
    func quantizeSteps() throws {
        let directory = TemporaryDirectory()
        let model = TestPaths.fixture("v1.0/small.mtlm")
        let data = TestPaths.fixture("predict/small.txt")
        let result = try runCLI(["quantize", model, directory.path("q.mtlm"), "--embeddings", "int4", "--field", "user_id=fp32", "--eval", data, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let fields = try ModelFile(path: model).architecture.fields.map(\.name).filter { $0 != "user_id" }
        #expect(Set(Self.steps(result).keys) == Set(fields.map { "quantize table \($0) (int4)" } + ["quantize dense layers (fp16)"]))
        // A single step: the whole comparison says it all.
        let single = try runCLI(["quantize", model, directory.path("d.mtlm"), "--embeddings", "fp32", "--eval", data, "--json"])
        #expect(single.status == 0, "\(single.stderr)")
        #expect(single.json!["steps"] == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path("")).sorted() == ["d.mtlm", "q.mtlm"])
        // In text, with a gate every step fails (AUC must rise by more than 1): the table, and
        // the verdict naming the steps.
        let failed = try runCLI(["quantize", model, directory.path("f.mtlm"), "--embeddings", "int4", "--eval", data, "--max-auc-drop=-1"])
        #expect(failed.status == 1)
        #expect(failed.stdout.contains("each step alone") && failed.stdout.contains("quantize dense layers (fp16)")
                && failed.stdout.contains("fails the gate alone: quantize table"), "\(failed.stdout)")
        #expect(!FileManager.default.fileExists(atPath: directory.path("f.mtlm")))
    }
}
