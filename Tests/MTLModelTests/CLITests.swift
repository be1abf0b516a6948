import Foundation
import Testing
@testable import MTLModel

@Suite("Command line: exit codes and --json shapes")
struct CLITests {
    @Test("--version names the tool and the format versions")
    func version() throws {
        let result = try runCLI(["--version"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("mtl-model 0.1.0"))
        #expect(result.stdout.contains("reads .mtlm format 1.0 through 1.4"))
        #expect(result.stdout.contains("writes 1.0 through 1.4: the lowest a model needs"))
        // The kernels' paths, each one of those its C function can name.
        let kernels = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("kernels on this CPU: ") })
        let names = kernels.dropFirst("kernels on this CPU: ".count).split(separator: ", ").map { $0.split(separator: " ") }
        #expect(names.map { String($0[0]) } == ["CRC-32", "dense", "int8", "int4"])
        #expect(["vpclmulqdq-avx512", "vpclmulqdq-avx2", "pclmul", "zlib"].contains(String(names[0][1])))
        #expect(["avx512f", "avx2-fma", "portable"].contains(String(names[1][1])))
        #expect(["avx512", "avx2", "portable"].contains(String(names[2][1])) && ["avx512", "avx2", "portable"].contains(String(names[3][1])))
    }

    @Test("Usage errors exit 2 with a message on stderr", arguments: [["synth"], ["inspect"], ["frobnicate"], ["inspect", "a", "--bogus"], ["synth", "c", "o", "--compression", "lzma"]])
    func usage(arguments: [String]) throws {
        let result = try runCLI(arguments)
        #expect(result.status == 2)
        #expect(!result.stderr.isEmpty)
        #expect(result.stdout.isEmpty)
    }

    @Test("synth writes a valid model; --json reports it")
    func synth() throws {
        let directory = TemporaryDirectory()
        let out = directory.path("m.mtlm")
        let result = try runCLI(["synth", TestPaths.config("small.json"), out, "--seed", "3", "--training", "--metadata", "k=v=w", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(result.json)
        #expect(json["schemaVersion"] as? Int == 2)
        #expect(json["tensorCount"] as? Int == 57)
        #expect(json["parameterCount"] as? Int == 613)
        #expect(json["output"] as? String == out)
        let model = try ModelFile(path: out)
        #expect(model.manifest.metadata == [.init(key: "k", value: "v=w")])
        #expect(ModelVerifier().verify(model).isValid)
        #expect(try runCLI(["synth", TestPaths.config("small.json"), directory.path("z.mtlm"), "--compression", "zlib"]).status == 0)
        #expect(try ModelFile(path: directory.path("z.mtlm")).requiredFeatures == [.zlibChunks])
    }

    @Test("synth: a bad config exits 2 naming the file and key, and writes nothing")
    func synthBadConfig() throws {
        let directory = TemporaryDirectory()
        let config = directory.path("bad.json")
        try #"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 3, "mapping": "hash"}], "tasks": [{"name": "t"}]}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let result = try runCLI(["synth", config, directory.path("m.mtlm")])
        #expect(result.status == 2)
        #expect(result.stderr.contains(config))
        #expect(result.stderr.contains("key \"fields[0].mapping\""))
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path) == ["bad.json"])
        let missing = try runCLI(["synth", directory.path("nope.json"), directory.path("m.mtlm")])
        #expect(missing.status == 2 && missing.stderr.contains("cannot read"))
        let badMetadata = try runCLI(["synth", TestPaths.config("small.json"), directory.path("m.mtlm"), "--metadata", "novalue"])
        #expect(badMetadata.status == 2)
    }

    @Test("inspect prints the architecture in words and the sections")
    func inspectText() throws {
        let result = try runCLI(["inspect", TestPaths.fixture("v1.0/small-training.mtlm")])
        #expect(result.status == 0)
        for text in ["format        1.0", "form          training", "field item_id: vocab 12, keyed, sum, group item",
                     "shared: 8 relu+bn → 6 tanh", "task follow: tower (none) → head logit offset -1.6",
                     "fusion: lexicographic, bucket 0.01", "optimizer: adagrad", "training_state", "embeddings"] {
            #expect(result.stdout.contains(text), "missing: \(text)")
        }
        let tensors = try runCLI(["inspect", TestPaths.fixture("v1.0/small.mtlm"), "--tensors"])
        #expect(tensors.stdout.contains("embedding.item_id.keys    int64    [12]     keys       96     576     none"))
    }

    @Test("inspect --stats --json adds per-tensor statistics")
    func inspectStats() throws {
        let result = try runCLI(["inspect", TestPaths.fixture("v1.0/small-training.mtlm"), "--stats", "--json"])
        #expect(result.status == 0)
        let json = try #require(result.json)
        let tensors = try #require(json["tensors"] as? [[String: Any]])
        #expect(tensors.count == 57)
        let bnVar = try #require(tensors.first { $0["name"] as? String == "shared.0.bn.running_var" })
        let stats = try #require(bnVar["statistics"] as? [String: Any])
        #expect(stats["min"] as? Double == 1 && stats["max"] as? Double == 1 && stats["std"] as? Double == 0)
        #expect(stats["nanCount"] as? Int == 0 && stats["zeroFraction"] as? Double == 0)
        let counts = try #require(tensors.first { $0["name"] as? String == "stats.hour.count" }?["statistics"] as? [String: Any])
        #expect(counts["zeroFraction"] as? Double == 1)
        let text = try runCLI(["inspect", TestPaths.fixture("v1.0/small.mtlm"), "--stats"])
        #expect(text.stdout.contains("shared.0.bn.running_var   float32  1"))
    }

    @Test("inspect and verify of a missing or corrupt file exit 2 with one line")
    func unreadable() throws {
        for command in ["inspect", "verify"] {
            let missing = try runCLI([command, "/nonexistent/m.mtlm"])
            #expect(missing.status == 2)
            #expect(missing.stderr == "mtl-model: error: /nonexistent/m.mtlm: cannot open: No such file or directory\n")
        }
        let json = try runCLI(["verify", TestPaths.fixture("corrupt/wrong-magic.mtlm"), "--json"])
        #expect(json.status == 2)
        let document = try #require(json.json)
        #expect(document["valid"] as? Bool == false && document["readable"] as? Bool == false)
        #expect((document["error"] as? String)?.contains("is a ZIP archive (an .npz?), not an .mtlm model") == true)
    }

    @Test("verify: 0 valid, 1 invalid with every problem listed, in both output forms")
    func verify() throws {
        let valid = try runCLI(["verify", TestPaths.fixture("v1.0/small.mtlm"), "--json"])
        #expect(valid.status == 0)
        let validJSON = try #require(valid.json)
        #expect(validJSON["schemaVersion"] as? Int == 2)
        #expect(validJSON["valid"] as? Bool == true)
        #expect((validJSON["problems"] as? [Any])?.isEmpty == true)
        #expect(validJSON["checkedByteCount"] as? Int == 2500)

        let directory = TemporaryDirectory()
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("v1.0/small.mtlm"))))
        bytes[64 + 7] ^= 0xFF    // first tensor, chunk 0
        bytes[1664 + 13] ^= 0x01 // padding after interaction.pair_weight (12 bytes at 1664)
        try Data(bytes).write(to: URL(fileURLWithPath: directory.path("bad.mtlm")))
        let invalid = try runCLI(["verify", directory.path("bad.mtlm"), "--json"])
        #expect(invalid.status == 1)
        let problems = try #require(invalid.json?["problems"] as? [[String: Any]])
        #expect(problems.map { $0["kind"] as? String } == ["checksum", "padding"])
        #expect(problems[0]["tensor"] as? String == "embedding.user_id.weight")
        #expect(problems[1]["byteOffset"] as? Int == 1677)
        let text = try runCLI(["verify", directory.path("bad.mtlm")])
        #expect(text.status == 1)
        #expect(text.stdout.contains("INVALID: 2 problems"))
    }

    @Test("Read limits are command options with documented defaults", arguments: [
        (["--max-tensors", "10"], "manifest lists 27 tensors, more than the limit of 10"),
        (["--max-manifest-bytes", "100"], "exceeds the limit of 100"),
        (["--max-name-bytes", "10"], "exceeds the limit of 10"),
        (["--max-rank", "1"], "rank 2 exceeds the limit of 1"),
    ])
    func readLimits(_ c: ([String], String)) throws {
        for command in ["inspect", "verify"] {
            let result = try runCLI([command, TestPaths.fixture("v1.0/small.mtlm")] + c.0)
            #expect(result.status == 2)
            #expect(result.stderr.contains(c.1), "\(result.stderr)")
        }
        let predict = try runCLI(["predict", TestPaths.fixture("v1.0/small.mtlm"), "-"] + c.0, stdin: "")
        #expect(predict.status == 2 && predict.stderr.contains(c.1))
        let help = try runCLI(["inspect", "--help"])
        #expect(help.stdout.contains("--max-manifest-bytes") && help.stdout.contains("67108864"))
    }

    @Test("Hostile names are escaped in human output")
    func escaping() throws {
        let result = try runCLI(["verify", TestPaths.fixture("corrupt/control-characters-in-name.mtlm")])
        #expect(result.status == 2)
        #expect(!result.stderr.contains("\u{1B}"))
        #expect(result.stderr.contains("\\u{1b}[31mred"))
    }

    @Test("every command's --help has an example and says each default once", arguments: [
        "synth", "inspect", "verify", "import", "export", "predict", "eval", "quantize", "dequantize", "convert", "diff", "delta",
        "apply", "shard", "plan", "run-task", "finish"])
    func help(_ command: String) throws {
        let result = try runCLI([command, "--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("Example"), "\(command)")
        #expect(result.stdout.contains("mtl-model \(command) "), "\(command)'s example runs it")
        for paragraph in result.stdout.components(separatedBy: "\n  -") {
            #expect(paragraph.components(separatedBy: "(default").count <= 2, "\(command): \(paragraph)")
        }
    }

    @Test("argument errors and other errors share one style: one line `mtl-model: error: …` first", arguments: [
        ["quantize"], ["quantize", "a", "b", "--threads", "0"], ["quantize", "/nonexistent.mtlm", "b.mtlm"], ["nosuchcommand"]])
    func errorStyle(_ arguments: [String]) throws {
        let result = try runCLI(arguments)
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix("mtl-model: error: "), "\(result.stderr)")
    }

    @Test("long commands draw a progress bar on a terminal; none with --quiet, none when stderr is not a terminal")
    func progress() throws {
        let directory = TemporaryDirectory()
        let small = TestPaths.fixture("v1.0/small.mtlm"), data = TestPaths.fixture("predict/small.txt")
        let q = directory.path("q.mtlm")
        #expect(try runCLI(["quantize", small, q]).status == 0)
        let commands: [[String]] = [
            ["verify", small], ["quantize", small, directory.path("q2.mtlm")], ["diff", small, q], ["eval", small, data],
            ["predict", small, data, "-o", directory.path("p.tsv")], ["export", small, directory.path("m.safetensors")],
            ["delta", small, q, directory.path("d.mtlmd")], ["convert", small, directory.path("c.mtlm"), "--to", "serving"],
            ["shard", small, directory.path("s.mtlm"), "--shards", "3"],
        ]
        let executable = TestPaths.executable
        for command in commands {
            // `script` gives the command a terminal; the bar is drawn from the start (MTLM_PROGRESS_AFTER=0).
            let line = ([executable] + command).joined(separator: " ")
            let shown = try runProcess("/usr/bin/script", ["-qefc", line, "/dev/null"], environment: ["MTLM_PROGRESS_AFTER": "0"])
            #expect(shown.stdout.contains("[") && shown.stdout.contains("%") && shown.stdout.contains("/s\u{1B}[K"), "\(command): \(shown.stdout)")
            let quiet = try runProcess("/usr/bin/script", ["-qefc", line + " --quiet", "/dev/null"], environment: ["MTLM_PROGRESS_AFTER": "0"])
            #expect(!quiet.stdout.contains("\u{1B}[K"), "\(command)")
            let piped = try runProcess(executable, command, environment: ["MTLM_PROGRESS_AFTER": "0"])
            #expect(!piped.stderr.contains("\u{1B}[K") && !piped.stdout.contains("\u{1B}[K"), "\(command)")
        }
    }

    @Test("a written model records the whole command and its lineage: each input's content hash and source, nearest first")
    func lineage() throws {
        let directory = TemporaryDirectory()
        let small = TestPaths.fixture("v1.0/small-training.mtlm")
        let serving = directory.path("serving model.mtlm"), quantized = directory.path("q.mtlm")
        #expect(try runCLI(["convert", small, serving, "--to", "serving", "--fold-batch-norm"]).status == 0)
        #expect(try runCLI(["quantize", serving, quantized, "--embeddings", "int4", "--field", "user_id=int8"]).status == 0)
        let file = try ModelFile(path: quantized)
        #expect(file.manifest.provenance.source == "mtl-model quantize '\(serving)' \(quantized) --embeddings int4 --field user_id=int8")
        let lineage = file.manifest.provenance.lineage
        #expect(lineage.count == 2)
        let servingFile = try ModelFile(path: serving)
        #expect(lineage.first?.contentHash == hex64(ModelDelta.contentHash(servingFile)))
        #expect(lineage.first?.source == "mtl-model convert \(small) '\(serving)' --to serving --fold-batch-norm")
        #expect(lineage.first?.createdUnixSeconds == servingFile.manifest.provenance.createdUnixSeconds)
        #expect(lineage.last?.contentHash == hex64(ModelDelta.contentHash(try ModelFile(path: small))))
        let inspect = try runCLI(["inspect", quantized])
        #expect(inspect.stdout.contains("derived from ← mtl-model convert"), "\(inspect.stdout)")
        let json = try runCLI(["inspect", quantized, "--json"]).json!
        #expect((json["lineage"] as? [[String: Any]])?.count == 2)
        // The Python package reads such a file (an older reader ignores the field).
        let python = try TestPaths.runPython(["-c", "import sys, mtl_model; print(mtl_model.load(sys.argv[1]).verify().problems)", quantized])
        #expect(python.stdout.contains("[]"), "\(python.stderr)")
    }
}
