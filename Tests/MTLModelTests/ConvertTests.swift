import Foundation
import Testing
@testable import MTLModel

/// The demo model of ../shared/data/demo imported into `directory` (training and serving
/// forms, and the test set), or nil when the shared data is missing (an error on CI).
func importedDemo(into directory: TemporaryDirectory) throws -> (training: String, serving: String, data: String)? {
    let demo = TestPaths.packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data/demo")
    guard FileManager.default.fileExists(atPath: demo.path) else {
        #expect(ProcessInfo.processInfo.environment["CI"] == nil, "../shared/data/demo is missing")
        return nil
    }
    for form in ["training", "serving"] {
        try SafetensorsImporter().importCheckpoint(demo.appendingPathComponent("\(form).safetensors").path, to: directory.path("demo-\(form).mtlm"))
    }
    let data = directory.path("demo-test.txt")
    #expect(try runProcess("/bin/sh", ["-c", "gzip -dc '\(demo.path)/test.txt.gz' > '\(data)'"]).status == 0)
    return (directory.path("demo-training.mtlm"), directory.path("demo-serving.mtlm"), data)
}

/// `count` random samples over `model`'s fields in the dataset text format: ids in and out of
/// vocabulary (keys of keyed tables among them), bags of 0 to 3 pairs with varied values.
func randomDataset(for model: ModelFile, count: Int, seed: UInt64) throws -> String {
    var random = SplitMix64(seed: seed)
    let architecture = model.architecture
    var keys: [String: [UInt64]] = [:]
    for field in architecture.fields where field.mapping == .keyed {
        keys[field.name] = try model.withElements(of: "embedding.\(field.name).keys", as: UInt64.self) { Array($0) }
    }
    var lines: [String] = []
    for _ in 0..<count {
        var tokens = [architecture.tasks.map { _ in random.next() % 2 == 0 ? "0" : "1" }.joined(separator: ",")]
        for field in architecture.fields {
            for _ in 0..<Int(random.next() % 4) {
                let id: UInt64
                if let fieldKeys = keys[field.name], random.next() % 5 != 0 {
                    id = fieldKeys[Int(random.next() % UInt64(fieldKeys.count))]
                } else if random.next() % 6 == 0 {
                    id = random.next()  // anywhere in 64 bits: out of vocabulary, or wrapped by modulo
                } else {
                    id = random.next() % UInt64(field.vocabSize + 3)
                }
                let value = random.next() % 3 == 0 ? ":\(Float(Int(random.next() % 40) - 10) / 8)" : ""
                tokens.append("\(field.name):\(id)\(value)")
            }
        }
        lines.append(tokens.joined(separator: " "))
    }
    return lines.joined(separator: "\n") + "\n"
}

/// Logits of `model` on `data`, sample by sample.
func logits(_ model: String, _ data: String) throws -> [[Double]] {
    let result = try runCLI(["predict", model, data, "--logits"])
    #expect(result.status == 0, "\(result.stderr)")
    return PredictTests.tsv(result.stdout)
}

/// Checks MODEL.md's "same predictions" between two logit tables (task columns first, fused last).
func expectSamePredictions(_ a: [[Double]], _ b: [[Double]], tasks: Int, _ comment: Comment) {
    #expect(a.count == b.count, comment)
    func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }
    var worst = (logit: 0.0, p: 0.0)
    for (x, y) in zip(a, b) {
        for t in 0..<tasks {
            worst.logit = max(worst.logit, abs(x[t] - y[t]) / max(1, abs(x[t])))
            worst.p = max(worst.p, abs(sigmoid(x[t]) - sigmoid(y[t])))
        }
    }
    #expect(worst.logit <= 1e-4 && worst.p <= 1e-5, "\(comment): worst relative Δlogit \(worst.logit), Δp \(worst.p)")
}

@Suite("convert")
struct ConvertTests {
    @Test("demo: training → serving gives the trainer's own serving tensors, no training state, the loss frozen at log_var")
    func demoToServing() throws {
        let directory = TemporaryDirectory()
        guard let demo = try importedDemo(into: directory) else { return }
        let training = try ModelFile(path: demo.training)
        let report = try ModelConverter().toServing(Model(training), output: directory.path("s.mtlm"), options: .init())
        let converted = try ModelFile(path: directory.path("s.mtlm"))
        let reference = try ModelFile(path: demo.serving)
        #expect(try tensorBytes(converted) == tensorBytes(reference))
        #expect(converted.tensors.map(\.name) == reference.tensors.map(\.name))
        #expect(ModelVerifier().verify(converted).isValid)
        let logVariances = try training.floats("loss.log_var").map(Double.init)
        let loss = try #require(converted.architecture.loss)
        #expect(loss.frozen && loss.weighting == "uncertainty" && loss.convention == "exp(-s)*L+s")
        #expect(loss.values == logVariances)
        #expect(loss.weights == logVariances.map { exp(-$0) })
        #expect(report.removed.count == training.tensors.count - reference.tensors.count)
        #expect(report.removed.allSatisfy { $0.name.hasPrefix("optimizer.") || $0.name.hasPrefix("stats.") || $0.name == "loss.log_var" })
        #expect(report.sections.first { $0.section == "training_state" }?.byteCountAfter == 0)
        // Everything but the loss section is the architecture the trainer wrote.
        var architecture = converted.architecture
        architecture.loss = reference.architecture.loss
        #expect(architecture == reference.architecture)
    }

    @Test("training → serving → training keeps every weight; serving → training → serving is the identity")
    func roundTrips() throws {
        let directory = TemporaryDirectory()
        guard let demo = try importedDemo(into: directory) else { return }
        let converter = ModelConverter()
        let training = try ModelFile(path: demo.training)
        _ = try converter.toServing(Model(training), output: directory.path("s.mtlm"), options: .init())
        let serving = try ModelFile(path: directory.path("s.mtlm"))
        let report = try converter.toTraining(Model(serving), output: directory.path("t.mtlm"), optimizer: nil)
        let back = try ModelFile(path: directory.path("t.mtlm"))
        #expect(ModelVerifier().verify(back).isValid)
        let before = try tensorBytes(training), after = try tensorBytes(back)
        for spec in training.architecture.servingTensors { #expect(after[spec.name] == before[spec.name], "\(spec.name)") }
        #expect(after["loss.log_var"] == before["loss.log_var"])
        #expect(back.architecture.loss?.frozen == false)
        // Fresh Adagrad slots at the recorded initial accumulator; no row counts to make up.
        #expect(try back.floats("optimizer.embedding.user_id.weight.sum").allSatisfy { $0 == 0.001 })
        #expect(try back.withElements(of: "optimizer.step", as: Int64.self) { Array($0) } == [0])
        #expect(back.entry(named: "stats.user_id.count") == nil)
        #expect(report.added.contains { $0.name == "optimizer.step" } && report.removed.isEmpty)

        _ = try converter.toServing(Model(back), output: directory.path("s2.mtlm"), options: .init())
        let again = try ModelFile(path: directory.path("s2.mtlm"))
        #expect(try tensorBytes(again) == tensorBytes(serving))
        #expect(again.architecture == serving.architecture)

        // A training model converted to training keeps its own state: the identity.
        _ = try converter.toTraining(Model(training), output: directory.path("t2.mtlm"), optimizer: .adagrad)
        #expect(try tensorBytes(ModelFile(path: directory.path("t2.mtlm"))) == before)
    }

    @Test("--fold-batch-norm predicts as before, for both layer orders and norms feeding towers and heads",
          arguments: ["small.json", "edge-cases.json", "act-bn-into-heads"])
    func foldBatchNorm(config: String) throws {
        let directory = TemporaryDirectory()
        let architecture = config.hasSuffix(".json") ? try MTLModelTests.architecture(fromConfig: config) : try MTLModelTests.architecture(json: """
            {"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 9}, {"name": "b", "vocab_size": 5, "combiner": "mean"}],
             "layer_order": "linear_act_bn", "bottom_input": "interaction+fields",
             "shared": [{"units": 7, "batch_norm": true}, {"units": 5, "activation": "tanh", "batch_norm": true}],
             "tasks": [{"name": "x"}, {"name": "y", "tower": [{"units": 3, "batch_norm": true}]}]}
            """)
        try Synthesizer(seed: 3).write(architecture, to: directory.path("identity-bn.mtlm"), source: "test")
        // Synth writes identity norms: give them real statistics.
        var random = SplitMix64(seed: 11)
        try copyModel(directory.path("identity-bn.mtlm"), to: directory.path("m.mtlm")) { name, bytes in
            guard name.contains(".bn.") else { return }
            for i in 0..<(bytes.count / 4) {
                let value: Float = name.hasSuffix("running_var") ? random.nextFloat(0.2, 3) : random.nextFloat(-1.5, 1.5)
                setFloat(&bytes, i, value)
            }
        }
        let model = try ModelFile(path: directory.path("m.mtlm"))
        var options = ModelConverter.ServingOptions()
        options.foldBatchNorm = true
        let report = try ModelConverter().toServing(Model(model), output: directory.path("folded.mtlm"), options: options)
        let folded = try ModelFile(path: directory.path("folded.mtlm"))
        #expect(ModelVerifier().verify(folded).isValid)
        #expect(!folded.tensors.contains { $0.name.contains(".bn.") })
        #expect(report.foldedBatchNorm.count == model.tensors.filter { $0.name.hasSuffix(".bn.weight") }.count)
        #expect(report.foldedBatchNorm.count > 0)
        try randomDataset(for: model, count: 400, seed: 5).write(toFile: directory.path("data.txt"), atomically: true, encoding: .utf8)
        expectSamePredictions(try logits(directory.path("m.mtlm"), directory.path("data.txt")),
                              try logits(directory.path("folded.mtlm"), directory.path("data.txt")),
                              tasks: architecture.tasks.count, "\(config)")
    }

    @Test("--prune-unseen reads the row counts in windows released behind (a 2M-row keyed table: 16 MiB of counts)")
    func pruneUnseenResidentPages() throws {
        let directory = TemporaryDirectory()
        try synthOneLargeTable(directory.path("zero.mtlm"), field: "item_id", mapping: "keyed", rows: 2_097_152, dim: 2)
        // Every third row seen.
        try copyModel(directory.path("zero.mtlm"), to: directory.path("t.mtlm")) { name, bytes in
            guard name == "stats.item_id.count" else { return }
            bytes.withUnsafeMutableBytes { raw in
                for row in stride(from: 0, to: raw.count / 8, by: 3) { raw.storeBytes(of: Int64(row % 7 + 1), toByteOffset: row * 8, as: Int64.self) }
            }
        }
        let training = try Model(path: directory.path("t.mtlm")), output = directory.path("out")
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: false)
        var options = ModelConverter.ServingOptions()
        options.pruneUnseen = true
        let counts = try #require(training.tensors.first { $0.name == "stats.item_id.count" })
        let (report, files, countsPeak) = try peakResident(filesUnder: directory.url.path, tensor: counts, of: training.file) {
            try ModelConverter().toServing(training, output: output + "/p.mtlm", options: options)
        }
        #expect(report.prunedTables.first?.rowsAfter == (2_097_152 + 2) / 3)
        // The counts are scanned in a few milliseconds, which a sample may miss; kept mapped,
        // they would stay resident through the whole rewrite. The files' peak shows the
        // sampler saw the input mapped.
        #expect(files > 0 && countsPeak <= 10 << 20, "peak \(countsPeak >> 10) KiB of the counts resident, \(files >> 10) KiB of the files")
    }

    @Test("--prune-unseen keeps exactly the keyed rows with a count, in order; other tables are untouched")
    func pruneUnseen() throws {
        let directory = TemporaryDirectory()
        guard let demo = try importedDemo(into: directory) else { return }
        let training = try ModelFile(path: demo.training)
        var options = ModelConverter.ServingOptions()
        options.pruneUnseen = true
        let report = try ModelConverter().toServing(Model(training), output: directory.path("p.mtlm"), options: options)
        let pruned = try ModelFile(path: directory.path("p.mtlm"))
        #expect(ModelVerifier().verify(pruned).isValid)
        let counts = try training.withElements(of: "stats.item_id.count", as: Int64.self) { Array($0) }
        let seen = counts.indices.filter { counts[$0] > 0 }
        #expect(seen.count < counts.count)
        #expect(report.prunedTables.map(\.field) == ["item_id"] && report.prunedTables[0].rowsAfter == seen.count)
        #expect(pruned.architecture.fields[1].vocabSize == seen.count)
        let keys = try training.withElements(of: "embedding.item_id.keys", as: UInt64.self) { Array($0) }
        #expect(try pruned.withElements(of: "embedding.item_id.keys", as: UInt64.self) { Array($0) } == seen.map { keys[$0] })
        let rows = try training.floats("embedding.item_id.weight"), k = training.architecture.embeddingDim
        #expect(try pruned.floats("embedding.item_id.weight") == seen.flatMap { rows[($0 * k)..<($0 * k + k)] })
        let linear = try training.floats("linear.item_id.weight")
        #expect(try pruned.floats("linear.item_id.weight") == seen.map { linear[$0] })
        #expect(try pruned.floats("embedding.user_id.weight") == training.floats("embedding.user_id.weight"))

        // Pruning and quantizing in one pass gives what quantizing the pruned model gives.
        for plan in [QuantizationPlan(embeddings: .int8Rowwise, dense: nil), QuantizationPlan(embeddings: .int4Rowwise, dense: .int8Symmetric)] {
            var both = options
            both.quantization = plan
            _ = try ModelConverter().toServing(Model(training), output: directory.path("pq.mtlm"), options: both)
            _ = try ModelQuantizer(plan: plan).quantize(Model(pruned), to: directory.path("p-then-q.mtlm"), source: "t")
            #expect(try tensorBytes(ModelFile(path: directory.path("pq.mtlm"))) == tensorBytes(ModelFile(path: directory.path("p-then-q.mtlm"))))
        }

        // Without row counts, or with none seen, pruning is refused.
        let serving = try ModelFile(path: demo.serving)
        #expect { try ModelConverter().toServing(Model(serving), output: directory.path("x.mtlm"), options: options) } throws: { error in
            "\(error)".contains("needs row counts (stats.item_id.count)")
        }
        try Synthesizer(training: true).write(try MTLModelTests.architecture(fromConfig: "small.json"), to: directory.path("zero.mtlm"), source: "t")
        #expect { try ModelConverter().toServing(try Model(path: directory.path("zero.mtlm")), output: directory.path("x.mtlm"), options: options) } throws: { error in
            "\(error)".contains("no row of keyed field \"item_id\" was seen")
        }
        #expect(!FileManager.default.fileExists(atPath: directory.path("x.mtlm")))
    }

    @Test("A quantized serving model becomes float32 training state for another optimizer", arguments: ["adam", "ftrl", "sgd"])
    func quantizedToTraining(optimizer: String) throws {
        let directory = TemporaryDirectory()
        guard let demo = try importedDemo(into: directory) else { return }
        var options = ModelConverter.ServingOptions()
        options.quantization = QuantizationPlan(embeddings: .int4Rowwise, dense: .int8Symmetric)
        let report = try ModelConverter().toServing(try Model(path: demo.training), output: directory.path("q.mtlm"), options: options)
        #expect(report.quantized.contains { $0.name == "embedding.user_id.weight" && $0.dtypeAfter == .int4Rowwise })
        let quantized = try ModelFile(path: directory.path("q.mtlm"))
        let type = try #require(Architecture.OptimizerType(named: optimizer))
        _ = try ModelConverter().toTraining(Model(quantized), output: directory.path("t.mtlm"), optimizer: type)
        let training = try ModelFile(path: directory.path("t.mtlm"))
        #expect(ModelVerifier().verify(training).isValid)
        for spec in training.architecture.servingTensors where spec.dtype == .float32 {
            #expect(training.entry(named: spec.name)?.dtype == .float32)
            #expect(try training.floats(spec.name) == quantized.floats(spec.name), "\(spec.name)")
        }
        #expect(training.architecture.optimizer?.type == type)
        // Hyperparameters the optimizers share carry over (Adagrad's lr = 0.04).
        #expect(training.architecture.optimizer?.parameter("lr") == 0.04)
        let slots = training.tensors.filter { $0.role == .optimizerSlot }
        #expect(slots.count == training.architecture.servingTensors.filter { $0.role == .parameter }.count * type.slots.count)
        if type == .ftrl {
            // FTRL's n starts at initial_accumulator (carried over from Adagrad's 0.001), z at 0.
            #expect(try training.floats("optimizer.linear.bias.n") == [0.001] && training.floats("optimizer.linear.bias.z") == [0])
        }
    }

    @Test("CLI: text and JSON reports, exit codes of misuse, and a failed gate writes nothing")
    func commandLine() throws {
        let directory = TemporaryDirectory()
        let model = TestPaths.fixture("v1.0/small-training.mtlm")
        let output = directory.path("out.mtlm")
        let text = try runCLI(["convert", model, output, "--to", "serving", "--fold-batch-norm", "--dense", "fp16"])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("folded the batch norm of shared.0 into shared.0"))
        #expect(text.stdout.contains("training_state"))
        #expect(try ModelFile(path: output).entry(named: "shared.1.weight")?.dtype == .float16)

        let json = try runCLI(["convert", output, directory.path("t.mtlm"), "--to", "training", "--optimizer", "adam", "--json"])
        #expect(json.status == 0, "\(json.stderr)")
        let report = try #require(json.json?["report"] as? [String: Any])
        #expect(report["form"] as? String == "training" && report["optimizer"] as? String == "adam")
        #expect((report["added"] as? [[String: Any]])?.contains { $0["name"] as? String == "optimizer.head.ctr.bias.exp_avg_sq" } == true)
        #expect(json.json?["written"] as? Bool == true)

        for arguments in [["--to", "training", "--fold-batch-norm"], ["--to", "training", "--embeddings", "int8"],
                          ["--to", "serving", "--optimizer", "adam"], ["--to", "training", "--optimizer", "rmsprop"],
                          ["--to", "inference"], ["--to", "serving", "--max-auc-drop", "0.1"], []] {
            let result = try runCLI(["convert", model, directory.path("bad.mtlm")] + arguments)
            #expect(result.status == 2, "\(arguments)")
            #expect(!FileManager.default.fileExists(atPath: directory.path("bad.mtlm")))
        }
        let data = directory.path("data.txt")
        try randomDataset(for: try ModelFile(path: model), count: 300, seed: 2).write(toFile: data, atomically: true, encoding: .utf8)
        // No AUC can drop by more than -1: the gate fails, nothing is written, exit 1.
        let gated = try runCLI(["convert", model, directory.path("gated.mtlm"), "--to", "serving", "--embeddings", "int4",
                                "--eval", data, "--max-auc-drop=-1", "--json"])
        #expect(gated.status == 1)
        #expect(gated.json?["written"] as? Bool == false)
        #expect((gated.json?["evaluation"] as? [String: Any])?["sampleCount"] as? Int == 300)
        #expect(!FileManager.default.fileExists(atPath: directory.path("gated.mtlm")))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path).filter { $0.contains("mtlm-tmp") } == [])
    }

    @Test("Fixed loss weights stay as configured: only uncertainty weighting freezes log_var")
    func fixedLossWeights() throws {
        let directory = TemporaryDirectory()
        let architecture = try MTLModelTests.architecture(fromConfig: "edge-cases.json")
        try Synthesizer(training: true).write(architecture, to: directory.path("t.mtlm"), source: "t")
        _ = try ModelConverter().toServing(try Model(path: directory.path("t.mtlm")), output: directory.path("s.mtlm"), options: .init())
        let loss = try #require(try ModelFile(path: directory.path("s.mtlm")).architecture.loss)
        #expect(loss.weighting == "fixed" && loss.weights == [1, 0.5, 0.25] && loss.values.isEmpty && loss.frozen)
    }
}
