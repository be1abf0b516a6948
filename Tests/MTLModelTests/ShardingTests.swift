import Foundation
import Testing
@testable import MTLModel

/// Sharded models (format 1.3): `mtl-model shard`, the root and its shards, cross-file checks.
@Suite("sharded models")
struct ShardingTests {
    static let sources = ["v1.0/small-training.mtlm", "v1.0/edge-cases-training-zlib.mtlm", "v1.1/small-int4-training.mtlm", "v1.0/small.mtlm"]

    /// Every tensor's bytes; a keyed field's tensors as (key → row bytes), since a sharded model
    /// holds a keyed table's rows by bucket and so in another order than its source.
    func content(_ model: Model) throws -> [String: [String: [UInt8]]] {
        var result: [String: [String: [UInt8]]] = [:]
        for field in model.architecture.fields {
            for entry in model.tensors where TensorName(entry.name)?.tableField == field.name {
                let source = try RowSource(model.tensor(entry))
                let keys = field.mapping == .keyed ? try RowSource(model.tensor(.keys(field.name))) : nil
                var rows: [String: [UInt8]] = [:]
                for row in 0..<field.vocabSize {
                    let name = keys.map { String($0.row(row).loadUnaligned(as: UInt64.self)) } ?? String(row)
                    rows[name] = Array(source.row(row))
                }
                result[entry.name] = rows
            }
        }
        for entry in model.tensors where TensorName(entry.name)?.tableField == nil {
            result[entry.name] = ["": try model.tensor(entry).withBytes { Array($0) }]
        }
        return result
    }

    /// JSON values equal, numbers within a relative 1e-12.
    func nearlyEqual(_ a: Any, _ b: Any) -> Bool {
        switch (a, b) {
        case let (x as [String: Any], y as [String: Any]):
            return x.keys.sorted() == y.keys.sorted() && x.keys.allSatisfy { nearlyEqual(x[$0]!, y[$0]!) }
        case let (x as [Any], y as [Any]):
            return x.count == y.count && zip(x, y).allSatisfy { nearlyEqual($0, $1) }
        case let (x as String, y as String):
            return x == y
        case let (x as NSNumber, y as NSNumber):
            return x == y || abs(x.doubleValue - y.doubleValue) <= 1e-12 * max(abs(x.doubleValue), abs(y.doubleValue))
        default:
            return (a is NSNull) && (b is NSNull)
        }
    }

    @Test("split into 1, 3 and 7 shards and consolidate: every tensor back, row for row by id in keyed tables; the root and each shard verify", arguments: sources)
    func roundTrip(_ fixture: String) throws {
        let directory = TemporaryDirectory()
        let original = try Model(path: TestPaths.fixture(fixture))
        let expected = try content(original)
        for count in [1, 3, 7] {
            let root = directory.path("m\(count).mtlm")
            try shard(TestPaths.fixture(fixture), root, count, ["--threads", "2"])
            let sharded = try Model(path: root)
            #expect(sharded.isSharded == (count > 1) && sharded.shards.count == (count > 1 ? count : 0))
            #expect(sharded.tensors.map(\.name) == original.tensors.map(\.name))
            #expect(sharded.tensors.map(\.shape) == original.tensors.map(\.shape))
            #expect(ModelVerifier().verify(sharded.file).problems == [])
            for file in sharded.shards {
                #expect(ModelVerifier().verify(file).isValid, "\(file.path)")
                #expect(file.version == FormatVersion(major: 1, minor: 3) && file.requiredFeatures.contains(.sharding))
            }
            #expect(try content(sharded) == expected)
            let back = directory.path("back\(count).mtlm")
            try shard(root, back, 1)
            let consolidated = try ModelFile(path: back)
            #expect(consolidated.manifest.shards == nil && consolidated.version < FormatVersion(major: 1, minor: 3))
            #expect(try content(Model(consolidated)) == expected)
            #expect(consolidated.architecture == original.architecture && consolidated.manifest.metadata == original.manifest.metadata)
            if count == 1 {
                // One file from one file: the same bytes in the same order.
                #expect(try tensorBytes(consolidated) == tensorBytes(original.file))
            }
        }
    }

    @Test("resharding moves whole buckets: 3 → 5 → 3 writes shards with the same tensors as the first split, and every key lies in its shard's buckets")
    func reshardIsStable() throws {
        let directory = TemporaryDirectory()
        let fixture = TestPaths.fixture("v1.0/small-training.mtlm")
        try shard(fixture, directory.path("a.mtlm"), 3)
        try shard(directory.path("a.mtlm"), directory.path("b.mtlm"), 5)
        try shard(directory.path("b.mtlm"), directory.path("c.mtlm"), 3)
        let a = try Model(path: directory.path("a.mtlm")), c = try Model(path: directory.path("c.mtlm"))
        for (x, y) in zip(a.shards, c.shards) {
            #expect(try tensorBytes(x) == tensorBytes(y))
            #expect(x.manifest.shard!.parts == y.manifest.shard!.parts)
        }
        for file in try Model(path: directory.path("b.mtlm")).shards {
            let part = file.manifest.shard!.parts.first { $0.field == "item_id" }!
            #expect(part.bucketBits == UInt32(ShardLayout.defaultBucketBits))
            let keys = try file.withElements(of: "embedding.item_id.keys", as: UInt64.self) { Array($0) }
            #expect(keys.allSatisfy { part.buckets.contains(ShardLayout.bucket($0, seed: 0, bucketBits: 16)) })
            #expect(keys.count == Int(part.rowCount))
        }
    }

    @Test("a shard missing, flipped, of another write, or stale is named by verify (exit 1) and refused by commands (exit 2)")
    func brokenShards() throws {
        let directory = TemporaryDirectory()
        let fixture = TestPaths.fixture("v1.0/small-training.mtlm")
        let root = directory.path("m.mtlm"), second = directory.path("m-00002-of-00003.mtlm")
        try shard(fixture, root, 3)
        let good = try Data(contentsOf: URL(fileURLWithPath: second))
        try shard(fixture, directory.path("other.mtlm"), 3)
        func expectBroken(_ message: String) throws {
            let verify = try runCLI(["verify", root])
            #expect(verify.status == 1 && verify.stdout.contains(message), "\(verify.stdout)")
            let predict = try runCLI(["predict", root, TestPaths.fixture("predict/small.txt")])
            #expect(predict.status == 2 && predict.stderr.contains("m-00002-of-00003.mtlm"), "\(predict.stderr)")
        }
        try FileManager.default.removeItem(atPath: second)
        try expectBroken("shard 2 of 3: cannot open")
        var flipped = good
        flipped[300] ^= 0x10
        try flipped.write(to: URL(fileURLWithPath: second))
        let verify = try runCLI(["verify", root])
        #expect(verify.status == 1 && verify.stdout.contains("in \(second)"), "\(verify.stdout)")
        try FileManager.default.removeItem(atPath: second)
        try FileManager.default.copyItem(atPath: directory.path("other-00002-of-00003.mtlm"), toPath: second)
        try expectBroken("belongs to another model")
        // Stale: the shard of an earlier write of the same target.
        try good.write(to: URL(fileURLWithPath: second))
        try shard(fixture, root, 3)
        try good.write(to: URL(fileURLWithPath: second))
        try expectBroken("belongs to another model")
        // A shard put where another belongs.
        try shard(fixture, root, 3)
        try FileManager.default.removeItem(atPath: second)
        try FileManager.default.copyItem(atPath: directory.path("m-00003-of-00003.mtlm"), toPath: second)
        try expectBroken("is shard 3 of 3, the root expects shard 2 of 3")
    }

    @Test("a root whose shard table holds rows twice or leaves buckets out is refused, naming the field and the shard")
    func overlappingParts() throws {
        let directory = TemporaryDirectory()
        try shard(TestPaths.fixture("v1.0/small-training.mtlm"), directory.path("m.mtlm"), 3)
        let root = try ModelFile(path: directory.path("m.mtlm"))
        for (field, edit) in [("user_id", { (part: inout TablePart) in part.firstRow -= 1 }),
                              ("item_id", { (part: inout TablePart) in part.firstBucket -= 1 })] {
            var table = root.manifest.shards!
            let index = table.files[1].parts.firstIndex { $0.field == field }!
            edit(&table.files[1].parts[index])
            let path = directory.path("bad-\(field).mtlm")
            let writer = try ModelWriter(path: path)
            for entry in root.tensors {
                try root.withTensorBytes(entry.name) { try writer.writeTensor(entry.name, dtype: entry.dtype, shape: entry.shape, role: entry.role, bytes: $0) }
            }
            try writer.finish(architecture: root.architecture, provenance: root.manifest.provenance, shards: table)
            let report = ModelVerifier().verify(try ModelFile(path: path))
            #expect(report.problems.contains { $0.kind == .shards && $0.message.contains("field \"\(field)\"") && $0.message.contains("held twice") },
                    "\(report.problems)")
            #expect(throws: MTLModelError.self) { try Model(path: path) }
        }
    }

    @Test("predict and eval of a sharded model (3 and 7 shards) print exactly what the one file prints: the small fixture on random samples (unseen ids and keys among them), the PyTorch demo model on its test set")
    func predictAcrossShards() throws {
        let directory = TemporaryDirectory()
        var cases = [(TestPaths.fixture("v1.0/small-training.mtlm"), directory.path("random.txt"))]
        try randomDataset(for: ModelFile(path: cases[0].0), count: 400, seed: 11).write(toFile: cases[0].1, atomically: true, encoding: .utf8)
        if let demo = try importedDemo(into: directory) { cases.append((demo.serving, demo.data)) }
        for (model, data) in cases {
            let expected = try runCLI(["predict", model, data, "--logits"]), expectedEval = try runCLI(["eval", model, data, "--json"])
            #expect(expected.status == 0 && expectedEval.status == 0, "\(expected.stderr)")
            for count in [3, 7] {
                let root = directory.path("\(count)-" + (model as NSString).lastPathComponent)
                try shard(model, root, count)
                let predicted = try runCLI(["predict", root, data, "--logits", "--threads", "2"])
                #expect(predicted.status == 0 && predicted.stdout == expected.stdout, "\(predicted.stderr)")
                let evaluated = try runCLI(["eval", root, data, "--json"])
                #expect(evaluated.status == 0 && evaluated.stdout == expectedEval.stdout.replacingOccurrences(of: model, with: root))
            }
        }
    }

    @Test("quantize and dequantize of a sharded model write a sharded model of the same rows: by id the tensors the one file gives, the same report; a failed gate leaves nothing", arguments: [["--embeddings", "int8"], ["--embeddings", "int4", "--dense", "bf16"]])
    func quantizeAcrossShards(_ types: [String]) throws {
        let directory = TemporaryDirectory()
        let fixture = TestPaths.fixture("v1.0/small-training.mtlm"), root = directory.path("m.mtlm")
        try shard(fixture, root, 3)
        let one = try runCLI(["quantize", fixture, directory.path("one.mtlm"), "--json"] + types)
        let sharded = try runCLI(["quantize", root, directory.path("q.mtlm"), "--json", "--threads", "2"] + types)
        #expect(one.status == 0 && sharded.status == 0, "\(sharded.stderr)")
        let q = try Model(path: directory.path("q.mtlm"))
        #expect(q.shards.count == 3 && ModelVerifier().verify(q.file).isValid)
        let source = try Model(path: root)
        #expect(q.shards.map { $0.manifest.shard!.parts } == source.shards.map { $0.manifest.shard!.parts })
        #expect(try content(q) == content(Model(path: directory.path("one.mtlm"))))
        let reportOne = one.json!["report"] as! [String: Any], reportSharded = sharded.json!["report"] as! [String: Any]
        #expect(NSDictionary(dictionary: reportOne["total"] as! [String: Any]) == NSDictionary(dictionary: reportSharded["total"] as! [String: Any]))
        let changesOne = reportOne["tensors"] as! [[String: Any]], changesSharded = reportSharded["tensors"] as! [[String: Any]]
        #expect(changesOne.map { $0["name"] as! String } == changesSharded.map { $0["name"] as! String })
        for (x, y) in zip(changesOne, changesSharded) {
            for key in ["dtypeAfter", "byteCountBefore", "byteCountAfter", "rowCount", "maxRelativeError"] {
                #expect("\(x[key]!)" == "\(y[key]!)", "\(x["name"]!) \(key)")
            }
            #expect(abs((x["meanRelativeError"] as! Double) - (y["meanRelativeError"] as! Double)) <= 1e-12)
        }
        // Back to float32, sharded the same way; a gate that fails writes nothing at all.
        #expect(try runCLI(["dequantize", directory.path("q.mtlm"), directory.path("d.mtlm")]).status == 0)
        #expect(try Model(path: directory.path("d.mtlm")).shards.count == 3)
        let data = directory.path("random.txt")
        try randomDataset(for: ModelFile(path: fixture), count: 300, seed: 5).write(toFile: data, atomically: true, encoding: .utf8)
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: directory.url.path))
        let failed = try runCLI(["quantize", root, directory.path("gated.mtlm"), "--eval", data, "--max-logloss-increase=-1"] + types)
        #expect(failed.status == 1, "\(failed.stderr)")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: directory.url.path)) == before)
        let passed = try runCLI(["quantize", root, directory.path("gated.mtlm"), "--eval", data, "--max-auc-drop", "1"] + types)
        #expect(passed.status == 0, "\(passed.stderr)")
        #expect(try Model(path: directory.path("gated.mtlm")).shards.count == 3)
    }

    /// The report of a command's `--json` without what differs between a sharded run and a
    /// one-file run by construction (paths; a mean error summed in another order).
    func comparable(_ json: [String: Any]) -> String {
        var report = json["report"] as! [String: Any]
        report["quantized"] = (report["quantized"] as? [[String: Any]])?.map { change in
            var change = change
            change["meanRelativeError"] = String(format: "%.9g", change["meanRelativeError"] as! Double)
            return change
        }
        let data = try! JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    @Test("convert of a sharded model, to serving (folded, pruned, quantized) and back to training, writes sharded models holding by id what the one file's conversion holds, with the same report", arguments: [3, 7])
    func convertAcrossShards(_ count: Int) throws {
        let directory = TemporaryDirectory()
        var sources = [TestPaths.fixture("v1.0/small-training.mtlm")]
        if let demo = try importedDemo(into: directory) { sources.append(demo.training) }
        for (index, fixture) in sources.enumerated() {
            let root = directory.path("m\(index).mtlm")
            try shard(fixture, root, count)
            // The fixture's row counts are all zero (nothing to keep); the demo's are real.
            let prune = index == 0 ? [] : ["--prune-unseen"]
            for (name, arguments) in [("serving", ["--to", "serving", "--fold-batch-norm", "--embeddings", "int8"] + prune),
                                      ("plain", ["--to", "serving"])] {
                let one = try runCLI(["convert", fixture, directory.path("\(index)-\(name)-one.mtlm"), "--json"] + arguments)
                let sharded = try runCLI(["convert", root, directory.path("\(index)-\(name).mtlm"), "--json", "--threads", "2"] + arguments)
                #expect(one.status == 0 && sharded.status == 0, "\(sharded.stderr)")
                let model = try Model(path: directory.path("\(index)-\(name).mtlm")), expected = try Model(path: directory.path("\(index)-\(name)-one.mtlm"))
                #expect(model.shards.count == count && ModelVerifier().verify(model.file).isValid)
                #expect(model.architecture == expected.architecture)
                #expect(try content(model) == content(expected))
                #expect(comparable(sharded.json!) == comparable(one.json!))
                for optimizer in ["adam", "adagrad"] {
                    let back = try runCLI(["convert", directory.path("\(index)-\(name).mtlm"), directory.path("t.mtlm"), "--to", "training", "--optimizer", optimizer, "--json"])
                    let backOne = try runCLI(["convert", directory.path("\(index)-\(name)-one.mtlm"), directory.path("t-one.mtlm"), "--to", "training", "--optimizer", optimizer, "--json"])
                    #expect(back.status == 0 && backOne.status == 0, "\(back.stderr)")
                    #expect(try content(Model(path: directory.path("t.mtlm"))) == content(Model(path: directory.path("t-one.mtlm"))))
                    #expect(comparable(back.json!) == comparable(backOne.json!))
                }
            }
        }
    }

    @Test("diff matches rows by id across any sharding: a model equals its 3- and 7-shard splits and their consolidation (exit 0); an edited model differs from each the way it differs from the one file")
    func diffAcrossShards() throws {
        let directory = TemporaryDirectory()
        let fixture = TestPaths.fixture("v1.0/small-training.mtlm")
        let edited = directory.path("edited.mtlm")
        try copyModel(fixture, to: edited) { name, bytes in
            switch name {
            case "embedding.item_id.weight", "linear.item_id.weight", "embedding.user_id.weight": setFloat(&bytes, 2, 7)
            case "optimizer.embedding.item_id.weight.sum": setFloat(&bytes, 5, 3)
            case "stats.item_id.count": bytes.withUnsafeMutableBytes { $0.storeBytes(of: Int64(99), toByteOffset: 8, as: Int64.self) }
            default: break
            }
        }
        for count in [3, 7] { try shard(fixture, directory.path("s\(count).mtlm"), count) }
        try shard(directory.path("s3.mtlm"), directory.path("back.mtlm"), 1)
        let forms = [fixture, directory.path("s3.mtlm"), directory.path("s7.mtlm"), directory.path("back.mtlm")]
        for x in forms {
            for y in forms {
                let result = try runCLI(["diff", x, y])
                #expect(result.status == 0 && result.stdout.contains("models are equal"), "\(x) \(y): \(result.stdout)")
            }
        }
        let expected = try runCLI(["diff", fixture, edited, "--json", "--rows"])
        #expect(expected.status == 1)
        for x in forms.dropFirst() {
            let result = try runCLI(["diff", x, edited, "--json", "--rows"])
            #expect(result.status == 1)
            let report = result.json!["report"] as? [String: Any] ?? result.json!, reference = expected.json!["report"] as? [String: Any] ?? expected.json!
            for key in ["tensors", "tables", "onlyInA", "onlyInB", "architecture"] {
                let got = report[key] as? [Any] ?? [], want = reference[key] as? [Any] ?? []
                #expect(got.count == want.count, "\(x) \(key)")
                for (g, w) in zip(got, want) {
                    // Sums taken in another row order (by bucket) may differ in the last digit.
                    #expect(nearlyEqual(g, w), "\(x) \(key): \(g) vs \(w)")
                }
            }
        }
    }

    @Test("export .npz and .onnx of a sharded model write the bytes the export of its consolidation writes", arguments: [3, 7])
    func exportAcrossShards(_ count: Int) throws {
        let directory = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory.path("sharded"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory.path("one"), withIntermediateDirectories: true)
        var sources = ["v1.0/small-training.mtlm", "v1.1/small-int4-training.mtlm", "v1.1/small-int8.mtlm"].map(TestPaths.fixture)
        if let demo = try importedDemo(into: directory) { sources.append(demo.serving) }  // tables large enough for external data
        for fixture in sources {
            let root = directory.path("sharded/m.mtlm"), one = directory.path("one/m.mtlm")
            try shard(fixture, root, count)
            try shard(root, one, 1)
            for format in ["npz", "onnx"] {
                #expect(try runCLI(["export", root, directory.path("sharded/out.\(format)")]).status == 0)
                #expect(try runCLI(["export", one, directory.path("one/out.\(format)")]).status == 0)
                for suffix in format == "onnx" ? ["", ".data"] : [""] {
                    let a = FileManager.default.contents(atPath: directory.path("sharded/out.\(format)\(suffix)"))
                    let b = FileManager.default.contents(atPath: directory.path("one/out.\(format)\(suffix)"))
                    // (Small models keep every initializer inline: no .data file on either side.)
                    #expect((a != nil || suffix == ".data") && a == b, "\(fixture) \(format)\(suffix)")
                }
            }
        }
    }

    @Test("a shard is not a model: commands refuse it naming its root (exit 2); verify checks it alone")
    func shardIsNotAModel() throws {
        let directory = TemporaryDirectory()
        let root = directory.path("m.mtlm")
        try shard(TestPaths.fixture("v1.0/small-training.mtlm"), root, 3)
        let alone = try runCLI(["inspect", "--stats", directory.path("m-00001-of-00003.mtlm")])
        #expect(alone.status == 2 && alone.stderr.contains("is shard 1 of 3 of the sharded model m.mtlm: open the root"), "\(alone.stderr)")
        #expect(try runCLI(["verify", directory.path("m-00001-of-00003.mtlm")]).status == 0)
    }

    @Test("export .safetensors of a sharded model: NAME-0000k-of-0000N.safetensors and the index; parts concatenated are the consolidation's tensors",
          arguments: [3, 7])
    func exportSafetensorsAcrossShards(_ count: Int) throws {
        let directory = TemporaryDirectory()
        for fixture in ["v1.0/small-training.mtlm", "v1.1/small-int8.mtlm"].map(TestPaths.fixture) {
            let root = directory.path("m.mtlm"), one = directory.path("one.mtlm")
            try shard(fixture, root, count)
            try shard(root, one, 1)
            let result = try runCLI(["export", root, directory.path("out.safetensors")])
            #expect(result.status == 0 && result.stderr.contains("out.safetensors.index.json"), "\(result.stderr)")
            #expect(try runCLI(["export", one, directory.path("one.safetensors")]).status == 0)
            #expect(!FileManager.default.fileExists(atPath: directory.path("out.safetensors")))
            let reference = try SafetensorsFile(path: directory.path("one.safetensors"))
            let index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory.path("out.safetensors.index.json")))) as! [String: Any]
            let weightMap = index["weight_map"] as! [String: String], metadata = index["metadata"] as! [String: Any]
            let parts = metadata["mtl_model.parts"] as! [String: [String: Any]]
            #expect(metadata["mtl_model.config"] as? String == reference.metadata["mtl_model.config"])
            let files = (1...count).map { try! SafetensorsFile(path: directory.path(ShardNaming.fileName(root: "out.safetensors", index: $0, count: count, suffix: ".safetensors"))) }
            // Every name of the index is in the file it names, and every tensor of the files is in the index.
            #expect(Set(weightMap.keys) == Set(files.flatMap { $0.tensors.map(\.name) }))
            for (name, file) in weightMap { #expect(files.first { $0.path.hasSuffix("/" + file) }?.tensor(named: name) != nil, "\(name)") }
            var total = 0
            for tensor in reference.tensors {
                var bytes: [UInt8] = []
                if let record = parts[tensor.name] {
                    // Parts in order, each starting where the previous ended, together the whole tensor.
                    var next = 0
                    for part in record["parts"] as! [[String: Any]] {
                        #expect(part["first_row"] as! Int == next)
                        let file = files.first { $0.path.hasSuffix("/" + (part["file"] as! String)) }!
                        let stored = file.tensor(named: part["tensor"] as! String)!
                        #expect(stored.shape.first.map(Int.init) == part["rows"] as? Int && stored.dtype == tensor.dtype)
                        bytes += Array(file.bytes(of: stored))
                        next += part["rows"] as! Int
                    }
                    #expect(next == Int(tensor.shape[0]) && (record["shape"] as! [Int]).map(UInt64.init) == tensor.shape)
                    total += 1
                } else {
                    #expect(weightMap[tensor.name] == ShardNaming.fileName(root: "out.safetensors", index: 1, count: count, suffix: ".safetensors"))
                    bytes = Array(files[0].bytes(of: files[0].tensor(named: tensor.name)!))
                }
                #expect(bytes == Array(reference.bytes(of: tensor)), "\(fixture) \(tensor.name)")
            }
            #expect(total > 0)
        }
        // A target that cannot be written (the index's name is a directory) is refused before
        // anything is written: no shard file, no temporary file.
        try FileManager.default.createDirectory(atPath: directory.path("bad.safetensors.index.json"), withIntermediateDirectories: true)
        let refused = try runCLI(["export", directory.path("m.mtlm"), directory.path("bad.safetensors")])
        #expect(refused.status == 2 && refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path).filter { $0.contains("bad") } == ["bad.safetensors.index.json"])
    }

    @Test("import reads a sharded safetensors checkpoint through its index: mtl-model's parts, and whole tensors spread over files as Hugging Face writes them")
    func importShardedSafetensors() throws {
        let directory = TemporaryDirectory()
        let fixture = TestPaths.fixture("v1.0/small-training.mtlm")
        let root = directory.path("m.mtlm"), one = directory.path("one.mtlm")
        try shard(fixture, root, 3)
        try shard(root, one, 1)
        #expect(try runCLI(["export", root, directory.path("out.safetensors")]).status == 0)
        let imported = try runCLI(["import", directory.path("out.safetensors.index.json"), directory.path("back.mtlm")])
        #expect(imported.status == 0, "\(imported.stderr)")
        // The same tensors as the consolidated model (rows in the same order: parts concatenated).
        let diff = try runCLI(["diff", one, directory.path("back.mtlm")])
        #expect(diff.status == 0 && diff.stdout.contains("models are equal"), "\(diff.stdout)")
        #expect(try runCLI(["verify", directory.path("back.mtlm")]).status == 0)
        // --shards N writes a sharded model: the one shard writes of the same model, and no
        // staging file is left beside it; an impossible count is refused before anything is written.
        try FileManager.default.createDirectory(atPath: directory.path("s"), withIntermediateDirectories: true)
        let sharded = try runCLI(["import", directory.path("out.safetensors.index.json"), directory.path("s/back.mtlm"), "--shards", "4", "--json"])
        #expect(sharded.status == 0 && sharded.json != nil, "\(sharded.stderr)")
        #expect(try Model(path: directory.path("s/back.mtlm")).shards.count == 4)
        try shard(directory.path("back.mtlm"), directory.path("s/ref.mtlm"), 4)
        #expect(try tensorBytes(ModelFile(path: directory.path("s/back-00002-of-00004.mtlm"))) == tensorBytes(ModelFile(path: directory.path("s/ref-00002-of-00004.mtlm"))))
        #expect(try runCLI(["diff", one, directory.path("s/back.mtlm")]).stdout.contains("models are equal"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path("s")).sorted()
                == ["back", "ref"].flatMap { name in ["\(name)-00001-of-00004.mtlm", "\(name)-00002-of-00004.mtlm", "\(name)-00003-of-00004.mtlm", "\(name)-00004-of-00004.mtlm", "\(name).mtlm"] }.sorted())
        let zero = try runCLI(["import", directory.path("out.safetensors.index.json"), directory.path("z.mtlm"), "--shards", "0"])
        #expect(zero.status == 2 && zero.stderr.contains("--shards must be in") && !FileManager.default.fileExists(atPath: directory.path("z.mtlm")))
        // One file of it alone is named as such.
        let alone = try runCLI(["import", directory.path("out-00002-of-00003.safetensors"), directory.path("x.mtlm")])
        #expect(alone.status == 2 && alone.stderr.contains("import its index out.safetensors.index.json"), "\(alone.stderr)")
        let stem = try runCLI(["import", directory.path("out.safetensors"), directory.path("x.mtlm")])
        #expect(stem.status == 2 && stem.stderr.contains("import \(directory.path("out.safetensors")).index.json"), "\(stem.stderr)")

        // Hugging Face's layout: whole tensors in two files, an index with only total_size and
        // weight_map, the config in the files' metadata.
        let all = try SafetensorsBuilder(model: fixture)
        var first = all, second = all
        first.tensors = Array(all.tensors.prefix(all.tensors.count / 2))
        second.tensors = Array(all.tensors.dropFirst(all.tensors.count / 2))
        try first.data().write(to: URL(fileURLWithPath: directory.path("hf-00001-of-00002.safetensors")))
        try second.data().write(to: URL(fileURLWithPath: directory.path("hf-00002-of-00002.safetensors")))
        func writeIndex(_ map: [String: String]) throws {
            let index: [String: Any] = ["metadata": ["total_size": 1], "weight_map": map]
            try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: directory.path("hf.safetensors.index.json")))
        }
        var map: [String: String] = [:]
        for t in first.tensors { map[t.name] = "hf-00001-of-00002.safetensors" }
        for t in second.tensors { map[t.name] = "hf-00002-of-00002.safetensors" }
        try writeIndex(map)
        let hf = try runCLI(["import", directory.path("hf.safetensors.index.json"), directory.path("hf.mtlm")])
        #expect(hf.status == 0, "\(hf.stderr)")
        #expect(try runCLI(["diff", fixture, directory.path("hf.mtlm")]).stdout.contains("models are equal"))
        // The index and the files disagree: a tensor the index puts in a file that lacks it
        // (huggingface_hub #4725), a tensor of a file the index does not list, a file outside
        // the directory. Each refused naming the tensor or file; nothing written.
        let name = first.tensors[0].name
        var wrong = map
        wrong[name] = "hf-00002-of-00002.safetensors"
        var unlisted = map
        unlisted[name] = nil
        var outside = map
        outside[name] = "../hf-00001-of-00002.safetensors"
        for (broken, message) in [(wrong, "hf-00001-of-00002.safetensors holds tensor \"\(name)\", and the index lists it in hf-00002-of-00002.safetensors"),
                                  (unlisted, "holds tensor \"\(name)\", and the index does not list it"),
                                  (outside, "a file beside the index is expected")] {
            try writeIndex(broken)
            let result = try runCLI(["import", directory.path("hf.safetensors.index.json"), directory.path("bad.mtlm")])
            #expect(result.status == 2 && result.stderr.contains(message) && result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: directory.path("bad.mtlm")))
        }
        // Parts that do not add up.
        var index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory.path("out.safetensors.index.json")))) as! [String: Any]
        var metadata = index["metadata"] as! [String: Any]
        var parts = metadata["mtl_model.parts"] as! [String: [String: Any]]
        var record = parts["embedding.user_id.weight"]!
        var list = record["parts"] as! [[String: Any]]
        list.removeLast()
        record["parts"] = list
        parts["embedding.user_id.weight"] = record
        metadata["mtl_model.parts"] = parts
        index["metadata"] = metadata
        try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: directory.path("out.safetensors.index.json")))
        let short = try runCLI(["import", directory.path("out.safetensors.index.json"), directory.path("bad.mtlm")])
        #expect(short.status == 2 && short.stderr.contains("mtl_model.parts of \"embedding.user_id.weight\""), "\(short.stderr)")
    }

    @Test("inspect reads the root alone: the whole model's tensors and sections, the shards with --shards and in --json")
    func inspectRoot() throws {
        let directory = TemporaryDirectory()
        let fixture = TestPaths.fixture("v1.0/small-training.mtlm"), root = directory.path("m.mtlm")
        try shard(fixture, root, 3)
        let whole = try runCLI(["inspect", "--json", fixture]).json!, sharded = try runCLI(["inspect", "--json", root]).json!
        #expect(sharded["tensorCount"] as? Int == whole["tensorCount"] as? Int)
        #expect(sharded["parameterCount"] as? Int == whole["parameterCount"] as? Int)
        let shards = try #require(sharded["shards"] as? [[String: Any]])
        #expect(shards.map { $0["file"] as? String } == (1...3).map { "m-0000\($0)-of-00003.mtlm" })
        #expect(shards.map { ($0["rows"] as? [Int])?.first } == [6, 7, 7])  // user_id: 20 rows in 3
        let text = try runCLI(["inspect", "--shards", root])
        #expect(text.status == 0 && text.stdout.contains("3 shards beside the root") && text.stdout.contains("m-00002-of-00003.mtlm"))
        // --stats reads the tables from the shards: the one file's figures (up to summation order).
        let statsOne = try runCLI(["inspect", "--json", "--stats", fixture]).json!, statsSharded = try runCLI(["inspect", "--json", "--stats", root]).json!
        func figures(_ json: [String: Any]) -> [Any] { (json["tensors"] as! [[String: Any]]).map { [$0["name"]!, $0["statistics"]!] } }
        #expect(figures(statsOne).count == 57 && nearlyEqual(figures(statsSharded), figures(statsOne)))
        // A root alone (its shards gone) is still inspected; verify names what is missing.
        for index in 1...3 { try FileManager.default.removeItem(atPath: directory.path("m-0000\(index)-of-00003.mtlm")) }
        #expect(try runCLI(["inspect", root]).status == 0)
    }

    @Test("a rewrite of the target removes the shards no root uses any more, keeps those a copied root still uses, and a refused write leaves no shard")
    func leftovers() throws {
        let directory = TemporaryDirectory()
        let fixture = TestPaths.fixture("v1.0/small-training.mtlm")
        let root = directory.path("m.mtlm")
        try shard(fixture, root, 4)
        try shard(fixture, root, 3)
        var names = try FileManager.default.contentsOfDirectory(atPath: directory.url.path).sorted()
        #expect(names == ["m-00001-of-00003.mtlm", "m-00002-of-00003.mtlm", "m-00003-of-00003.mtlm", "m.mtlm"])
        try FileManager.default.copyItem(atPath: root, toPath: directory.path("keep.mtlm"))
        try shard(fixture, root, 2)
        #expect(try Model(path: directory.path("keep.mtlm")).shards.count == 3)
        let refused = try runCLI(["shard", root, root, "--shards", "5"])
        #expect(refused.status == 2 && refused.stderr.contains("same file as the input"))
        names = try FileManager.default.contentsOfDirectory(atPath: directory.url.path)
        #expect(!names.contains { $0.contains("of-00005") }, "\(names)")
        #expect(try Model(path: root).shards.count == 2)
    }
}

@Suite("keyed shards spilled in runs")
struct KeyedRunsTests {
    /// Each shard written with its keyed rows in runs of `capacity` holds the bytes of the one
    /// written from an in-memory list.
    func compare(_ source: String, count: Int, capacity: Int, bucketBits: Int? = nil) throws {
        let directory = TemporaryDirectory()
        let model = try Model(path: source)
        var options = ModelSharder.Options(shardCount: count)
        options.synchronize = false
        options.bucketBits = bucketBits
        options.modelID = Array(repeating: 7, count: ShardNaming.modelIDByteCount)
        _ = try ModelSharder().shard(model, to: directory.path("list.mtlm"), options: options)
        options.rowListCapacity = capacity
        _ = try ModelSharder().shard(model, to: directory.path("runs.mtlm"), options: options)
        for index in 1...count {
            let a = try ModelFile(path: ShardNaming.path(root: directory.path("list.mtlm"), index: index, count: count))
            let b = try ModelFile(path: ShardNaming.path(root: directory.path("runs.mtlm"), index: index, count: count))
            #expect(try tensorBytes(a) == tensorBytes(b), "shard \(index)")
            #expect(a.manifest.shard!.parts == b.manifest.shard!.parts)
        }
        #expect(try runCLI(["verify", directory.path("runs.mtlm")]).status == 0)
    }

    @Test("runs of a few rows, buckets larger than a run, and runs past the write buffer give the list's bytes")
    func sameBytes() throws {
        try compare(TestPaths.fixture("v1.0/small-training.mtlm"), count: 3, capacity: 2)
        try compare(TestPaths.fixture("v1.0/small-training.mtlm"), count: 2, capacity: 1, bucketBits: 1)
        let directory = TemporaryDirectory()
        let config = directory.path("keyed.json")
        try #"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 60000, "mapping": "keyed"}], "tasks": [{"name": "t"}], "optimizer": {"type": "adagrad", "lr": 0.1}}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        #expect(try runCLI(["synth", config, directory.path("k.mtlm"), "--training"]).status == 0)
        try compare(directory.path("k.mtlm"), count: 3, capacity: 5000)
        try compare(directory.path("k.mtlm"), count: 2, capacity: 7000, bucketBits: 2)
    }
}
