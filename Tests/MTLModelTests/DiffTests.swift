import Foundation
import Testing
import CKernels
@testable import MTLModel

@Suite("diff")
struct DiffTests {
    @Test("Identical models: equal, exit 0, in both forms")
    func identical() throws {
        let directory = TemporaryDirectory()
        try copyModel(TestPaths.fixture("v1.0/small.mtlm"), to: directory.path("b.mtlm"))
        let report = try ModelDiff().compare(Model(path: TestPaths.fixture("v1.0/small.mtlm")), Model(path: directory.path("b.mtlm")))
        #expect(report.equal && report.architecture.isEmpty && report.tensors.count == 27)
        let text = try runCLI(["diff", TestPaths.fixture("v1.0/small.mtlm"), directory.path("b.mtlm")])
        #expect(text.status == 0 && text.stdout.contains("models are equal within tolerance"))
        let json = try runCLI(["diff", TestPaths.fixture("v1.0/small.mtlm"), directory.path("b.mtlm"), "--json"])
        #expect(json.status == 0 && json.json?["equal"] as? Bool == true && json.json?["schemaVersion"] as? Int == 2)
    }

    @Test("Changed rows are found by id, with their size of change; tolerances apply")
    func changedRows() throws {
        let directory = TemporaryDirectory()
        let a = TestPaths.fixture("v1.0/small.mtlm"), b = directory.path("b.mtlm")
        try copyModel(a, to: b) { name, bytes in
            guard name == "embedding.user_id.weight" else { return }
            setFloat(&bytes, 3 * 4 + 1, 0.5)      // row 3: a large change
            setFloat(&bytes, 7 * 4 + 2, bytes.withUnsafeBytes { $0.load(fromByteOffset: (7 * 4 + 2) * 4, as: Float.self) } + 1e-4)  // row 7: small
        }
        let report = try ModelDiff(topRowCount: 5).compare(Model(path: a), Model(path: b))
        let table = try #require(report.tables.first { $0.field == "user_id" })
        #expect(table.changed == 2 && table.unchanged == 18 && table.added == 0 && table.removed == 0)
        #expect(table.topChanged?.map(\.id) == [3, 7])
        let tensor = try #require(report.tensors.first { $0.name == "embedding.user_id.weight" })
        #expect(tensor.fractionBeyondTolerance == 2.0 / 80 && !tensor.equal && !tensor.quantizationError)
        #expect(report.tensors.filter { !$0.equal }.count == 1)
        // Within tolerance, the small change no longer counts.
        let tolerant = try ModelDiff(tolerance: .init(absolute: 1e-3)).compare(Model(path: a), Model(path: b))
        #expect(tolerant.tables.first { $0.field == "user_id" }?.changed == 1)
        let cli = try runCLI(["diff", a, b, "--rows", "--top", "1", "--json"])
        #expect(cli.status == 1)
        let tables = try #require((cli.json?["report"] as? [String: Any])?["tables"] as? [[String: Any]])
        let top = try #require(tables.first { $0["field"] as? String == "user_id" }?["topChanged"] as? [[String: Any]])
        #expect(top.count == 1 && top[0]["id"] as? String == "3", "ids are strings in JSON (schema 2)")
        #expect(try runCLI(["diff", a, b, "--atol", "1"]).status == 0)
    }

    @Test("Keys added to and removed from a keyed table are counted by key")
    func keyedTable() throws {
        let directory = TemporaryDirectory()
        let a = TestPaths.fixture("v1.0/small.mtlm"), b = directory.path("b.mtlm")
        try copyModel(a, to: b) { name, bytes in
            guard name == "embedding.item_id.keys" else { return }
            // Two rows get new ids; the other ten move nowhere.
            bytes.withUnsafeMutableBytes { raw in
                raw.storeBytes(of: UInt64(111), toByteOffset: 0, as: UInt64.self)
                raw.storeBytes(of: UInt64(222), toByteOffset: 8, as: UInt64.self)
            }
        }
        let report = try ModelDiff().compare(Model(path: a), Model(path: b))
        let table = try #require(report.tables.first { $0.field == "item_id" })
        #expect(table.keyed && table.added == 2 && table.removed == 2 && table.changed == 0 && table.unchanged == 10)
        #expect(!report.equal)
    }

    @Test("Architecture changes are described in words; a resized layer is a shape change")
    func architectureChanges() throws {
        let directory = TemporaryDirectory()
        var arch = try architecture(fromConfig: "small.json")
        arch.shared[0].units = 10
        arch.interaction.fieldBias = false
        arch.fields[2].vocabSize = 9
        try Synthesizer(seed: 7).write(arch, to: directory.path("b.mtlm"), source: "t")
        let report = try ModelDiff().compare(Model(path: TestPaths.fixture("v1.0/small.mtlm")), Model(path: directory.path("b.mtlm")))
        #expect(report.architecture.contains("shared[0].units: 8 → 10"))
        #expect(report.architecture.contains("interaction.field_bias: true → false"))
        #expect(report.architecture.contains("fields.tags.vocab_size: 8 → 9"))
        #expect(report.onlyInA == ["interaction.field_bias"])
        let resized = try #require(report.tensors.first { $0.name == "shared.0.weight" })
        #expect(!resized.sameShape && resized.shapeB == [10, 16])
        let tags = try #require(report.tables.first { $0.field == "tags" })
        #expect(tags.added == 1 && tags.rowsB == 9)
        let text = try runCLI(["diff", TestPaths.fixture("v1.0/small.mtlm"), directory.path("b.mtlm")])
        #expect(text.status == 1 && text.stdout.contains("shape [8, 16] → [10, 16]") && text.stdout.contains("only in"))
    }

    @Test("A quantized copy is reported as quantization error")
    func quantized() throws {
        let report = try ModelDiff().compare(Model(path: TestPaths.fixture("v1.0/small.mtlm")), Model(path: TestPaths.fixture("v1.1/small-int8.mtlm")))
        let table = try #require(report.tensors.first { $0.name == "embedding.user_id.weight" })
        #expect(table.quantizationError && table.dtypeB == .int8Rowwise && (table.cosineSimilarity ?? 0) > 0.9999)
        #expect(report.architecture.isEmpty && !report.equal)
        #expect(try runCLI(["diff", TestPaths.fixture("v1.0/small.mtlm"), TestPaths.fixture("v1.1/small-int8.mtlm"), "--atol", "0.001"]).status == 0)
    }

    @Test("--data compares predictions: |Δp| quantiles, rank correlation, top-k overlap, ΔAUC")
    func predictions() throws {
        let directory = TemporaryDirectory()
        let a = TestPaths.fixture("v1.0/small.mtlm"), data = TestPaths.fixture("predict/small.txt")
        let same = try runCLI(["diff", a, a, "--data", data, "--json"])
        #expect(same.status == 0)
        let sameTasks = try #require(((same.json?["report"] as? [String: Any])?["predictions"] as? [String: Any])?["tasks"] as? [[String: Any]])
        for task in sameTasks {
            #expect(task["maxAbsoluteDeltaP"] as? Double == 0 && task["rankCorrelation"] as? Double == 1)
            #expect(task["topKOverlap"] as? Double == 1 && task["topK"] as? Int == 1 && task["deltaAUC"] as? Double == 0)
        }
        try copyModel(a, to: directory.path("b.mtlm")) { name, bytes in
            if name == "head.ctr.bias" { setFloat(&bytes, 0, 0.7) }
        }
        let report = try ModelDiff().compare(Model(path: a), Model(path: directory.path("b.mtlm")))
        #expect(report.tensors.filter { !$0.equal }.map(\.name) == ["head.ctr.bias"])
        let moved = try QualityComparison.compare(Model(path: a), Model(path: directory.path("b.mtlm")), data: data)
        #expect(moved.sampleCount == 48)
        #expect((moved.tasks[0].meanAbsoluteDeltaP ?? 0) > 0.01 && moved.tasks[1].maxAbsoluteDeltaP == 0)
        // A shifted bias moves every score alike: the ranking is unchanged.
        #expect(moved.tasks[0].rankCorrelation! > 0.999 && moved.tasks[0].deltaAUC == 0)
        let text = try runCLI(["diff", a, directory.path("b.mtlm"), "--data", data])
        #expect(text.status == 1 && text.stdout.contains("predictions on 48 samples"))
        let other = try runCLI(["diff", a, TestPaths.fixture("v1.0/edge-cases-training-zlib.mtlm"), "--data", data])
        #expect(other.status == 2 && other.stderr.contains("same fields and tasks"))
    }

    @Test("Quickselect gives the same quantiles as sorting")
    func quickselect() {
        var random = SplitMix64(seed: 5)
        for count in [1, 2, 3, 10, 101, 1000] {
            let values = (0..<count).map { _ in Float(random.next() % 50) / 7 }  // many ties
            let sorted = values.sorted()
            for rank in Set([0, count / 2, (count - 1) / 2, count - 1, Int(Double(count - 1) * 0.99)]) {
                var scratch = values
                #expect(ModelDiff.select(&scratch, rank: rank) == sorted[rank], "count \(count) rank \(rank)")
            }
        }
    }

    @Test("diff errors exit 2")
    func errors() throws {
        #expect(try runCLI(["diff", TestPaths.fixture("v1.0/small.mtlm"), "/nonexistent.mtlm"]).status == 2)
        #expect(try runCLI(["diff", TestPaths.fixture("v1.0/small.mtlm"), TestPaths.fixture("corrupt/wrong-magic.mtlm")]).status == 2)
        #expect(try runCLI(["diff", TestPaths.fixture("v1.0/small.mtlm"), TestPaths.fixture("v1.0/small.mtlm"), "--atol", "-1"]).status == 2)
    }

    @Test("The quantile sketch is exact while small and within 2^-12 below the exact quantile once it switches to its histogram")
    func quantileSketch() {
        var random = SplitMix64(seed: 5)
        let values = (0..<20_000).map { i in i % 97 == 0 ? 0 : random.nextFloat(0, 1) * random.nextFloat(0, 3) }
        var small = QuantileSketch(exactLimit: 1 << 20), big = QuantileSketch(exactLimit: 1000)
        for value in values { small.add(value); big.add(value) }
        let sorted = values.sorted()
        for rank in [0, 1, 9_999, 19_800, 19_999] {
            #expect(small.value(atRank: rank) == sorted[rank])
            let estimate = big.value(atRank: rank)
            #expect(estimate <= sorted[rank] && Double(sorted[rank] - estimate) <= Double(sorted[rank]) / 4096, "rank \(rank)")
            #expect(values.contains(estimate))
        }
        #expect(big.maximum == sorted.last && big.count == values.count)

        var top = TopValues(limit: 3)
        for (id, value) in [(1, 0.5), (2, 0), (3, 0.9), (4, 0.1), (5, 0.7), (6, 0.2)] as [(UInt64, Float)] { top.add(id: id, value) }
        #expect(top.entries.map(\.id) == [3, 5, 1])
    }

    @Test("Keys are matched exactly whatever the partitions, in memory or through a temporary file",
          arguments: [(1 << 30, 1 << 30), (600, 1 << 30), (600, 0)])
    func keyJoin(indexBudget: Int, memoryBudget: Int) throws {
        var random = SplitMix64(seed: 8)
        let keysB = (0..<3000).map { _ in random.next() }
        // A: some of B's keys (shuffled), and keys B does not have.
        var keysA = keysB.enumerated().filter { $0.offset % 3 != 0 }.map(\.element) + (0..<2000).map { _ in random.next() }
        keysA.shuffle(using: &random)
        var released = 0
        let join = try keysA.withUnsafeBufferPointer { a in
            try keysB.withUnsafeBufferPointer { b in
                try KeyJoin(keysA: KeyColumn(a), keysB: KeyColumn(b), tensorB: "k", indexBudget: indexBudget, memoryBudget: memoryBudget) { _, rows in released += rows.count }
            }
        }
        let rowOfB = Dictionary(uniqueKeysWithValues: keysB.enumerated().map { ($0.element, Int32($0.offset)) })
        for (row, key) in keysA.enumerated() { #expect(join[row] == rowOfB[key] ?? -1) }
        join.release(0..<keysA.count)
        #expect(released >= keysA.count + keysB.count)
        let duplicated = keysB + [keysB[17]]
        #expect(throws: MTLModelError.self) {
            try keysA.withUnsafeBufferPointer { a in
                try duplicated.withUnsafeBufferPointer { b in _ = try KeyJoin(keysA: KeyColumn(a), keysB: KeyColumn(b), tensorB: "k", indexBudget: 600) { _, _ in } }
            }
        }
    }

    @Test("The duplicate-key check on several threads (keys kept mapped, a million or more) gives the one-thread answer: none, a copy at either end; of two keys stored twice, one",
          arguments: [40 << 20, 4 << 20])
    func duplicateKeysOnThreads(budget: Int) {
        var random = SplitMix64(seed: 5)
        let count = 1_100_000
        let keys = (0..<count).map { _ in random.next() }
        var twoPairs = keys
        twoPairs[count - 1] = twoPairs[0]
        twoPairs[500_000] = twoPairs[10]
        var atEnds = keys
        atEnds[0] = atEnds[count - 1]
        for case_ in [keys, atEnds, twoPairs] {
            let serial = case_.withUnsafeBufferPointer { KeyJoin.duplicateKey(in: KeyColumn($0), budget: budget) { _ in } }
            for threads in [2, 3] {
                var releases: [Range<Int>] = []
                let parallel = case_.withUnsafeBufferPointer {
                    KeyJoin.duplicateKey(in: KeyColumn($0), budget: budget, keptMapped: .max, threadCount: threads) { releases.append($0) }
                }
                // Two keys stored twice: either may be reported (the lowest partition's, and the
                // partitions depend on the threads).
                let allowed = case_ == twoPairs ? [twoPairs[0], twoPairs[10]] : [serial]
                #expect(allowed.contains(parallel) && releases == [0..<count], "threads \(threads)")
            }
        }
        #expect(keys.withUnsafeBufferPointer { KeyJoin.duplicateKey(in: KeyColumn($0), budget: budget) { _ in } } == nil)
        #expect(atEnds.withUnsafeBufferPointer { KeyJoin.duplicateKey(in: KeyColumn($0), budget: budget) { _ in } } == keys[count - 1])
    }

    @Test("The duplicate-key check finds a key twice wherever it is, and nothing in distinct keys, whatever the partitions and buckets",
          arguments: [40 << 20, 20_000])
    func duplicateKeys(budget: Int) {
        var random = SplitMix64(seed: 21)
        for count in [0, 1, 2, 3, 100, 1023, 1024, 1025, 5000, 70_000] {
            var keys = (0..<count).map { _ in random.next() }
            if count > 10 { keys[3] = 0; keys[4] = .max }   // the kernel's free-slot marker, and its neighbour
            let check = { (keys: [UInt64]) -> UInt64? in
                var released = 0, releasedOnce: [Range<Int>] = []
                let found = keys.withUnsafeBufferPointer { KeyJoin.duplicateKey(in: KeyColumn($0), budget: budget) { released += $0.count } }
                #expect(released >= (budget < count * 16 ? count : 0), "count \(count)")
                // Kept mapped through the passes (verify): the same answer, all released at the end.
                let kept = keys.withUnsafeBufferPointer { KeyJoin.duplicateKey(in: KeyColumn($0), budget: budget, keptMapped: .max) { releasedOnce.append($0) } }
                #expect(kept == found && releasedOnce == [0..<count], "count \(count)")
                return found
            }
            #expect(check(keys) == nil, "count \(count)")
            guard count >= 2 else { continue }
            // A copy of a key placed anywhere, 0 and all-equal keys among them.
            for (from, to) in [(0, count - 1), (count - 1, 0), (count / 2, count / 2 + 1), (3, count - 2)] where from != to && max(from, to) < count {
                var twice = keys
                twice[to] = twice[from]
                #expect(check(twice) == twice[from], "count \(count) from \(from) to \(to)")
            }
            #expect(check([UInt64](repeating: 7, count: count)) == 7)
        }
        // The kernel alone, against a set, on keys drawn from a small range (many duplicates).
        for count in [2, 50, 3000, 40_000] {
            let keys = (0..<count).map { _ in random.next() % UInt64(count * 2) }
            var scratch = [UInt64](repeating: 0, count: count), duplicate: UInt64 = 0, overwritten = keys
            let found = mtlm_find_duplicate_u64(&overwritten, count, &scratch, &duplicate)
            let counts = Dictionary(keys.map { ($0, 1) }, uniquingKeysWith: +)
            #expect(found == (counts.count < count ? 1 : 0))
            if found == 1 { #expect(counts[duplicate, default: 0] > 1) }
        }
    }

    @Test("The key kernels' AVX2 and AVX-512 paths give the portable ones' results: counts, gathered partitions, hashes, the duplicate found, at every tail length", arguments: [1, 2] as [Int32])
    func keyKernelPaths(path: Int32) {
        var random = SplitMix64(seed: 5)
        for count in Array(0...40) + [1000, 8191, 8193, 70_001] {
            for range in [UInt64.max, UInt64(max(count, 1) * 2)] {  // distinct, then many repeats
                let keys = (0..<count).map { _ in range == .max ? random.next() : random.next() % range }
                for partitions in [1, 2, 3, 4, 8, 9] {
                    var portable = [Int](repeating: 0, count: partitions), vector = portable
                    mtlm_count_partitions_using(0, keys, count, partitions, &portable)
                    mtlm_count_partitions_using(path, keys, count, partitions, &vector)
                    #expect(portable == vector, "count \(count) partitions \(partitions)")
                    for partition in 0..<partitions {
                        var a = [UInt64](repeating: 0, count: count + 8), b = a
                        let n = mtlm_gather_partition_using(0, keys, count, partitions, partition, &a)
                        let m = mtlm_gather_partition_using(path, keys, count, partitions, partition, &b)
                        #expect(n == portable[partition] && m == n && a[..<n] == b[..<m], "count \(count) partition \(partition) of \(partitions)")
                    }
                }
                var a = keys, b = keys, scratch = [UInt64](repeating: 0, count: count)
                var first: UInt64 = 0, second: UInt64 = 0
                let found = mtlm_find_duplicate_u64_using(0, &a, count, &scratch, &first)
                #expect(mtlm_find_duplicate_u64_using(path, &b, count, &scratch, &second) == found, "count \(count)")
                #expect(a == b && (found == 0 || first == second), "count \(count)")
                #expect(found == (Set(keys).count < count ? 1 : 0), "count \(count)")
            }
        }
    }

    @Test("One thread or several: the same report")
    func threadsAgree() throws {
        let a = try ModelFile(path: TestPaths.fixture("v1.0/small.mtlm")), b = try ModelFile(path: TestPaths.fixture("v1.2/small-edited.mtlm"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let one = try encoder.encode(ModelDiff(topRowCount: 3, threadCount: 1).compare(Model(a), Model(b)))
        let three = try encoder.encode(ModelDiff(topRowCount: 3, threadCount: 3).compare(Model(a), Model(b)))
        #expect(one == three)
        #expect(try !ModelDiff(threadCount: 2).compare(Model(a), Model(b)).equal)
    }

    @Test("text that does not mislead: integer tensors by element, folded layers not called quantization, tensors of one model by kind, rows added and removed")
    func words() throws {
        let directory = TemporaryDirectory()
        guard let demo = try importedDemo(into: directory) else { return }
        let folded = directory.path("folded.mtlm"), fresh = directory.path("fresh.mtlm")
        #expect(try runCLI(["convert", demo.training, folded, "--to", "serving", "--fold-batch-norm", "--prune-unseen", "--dense", "fp16"]).status == 0)
        #expect(try runCLI(["convert", demo.training, fresh, "--to", "training", "--optimizer", "adam"]).status == 0)
        var result = try runCLI(["diff", demo.training, folded, "--rows", "--top", "3"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("shared.1.weight") && result.stdout.contains("(batch norm folded, quantized)"))
        #expect(!result.stdout.contains("(quantization)"))
        #expect(result.stdout.contains("optimizer tensors") && result.stdout.contains("(--tensors lists them)"))
        #expect(!result.stdout.contains("tensor optimizer.step"))
        #expect(result.stdout.contains("item_id ids removed: ") && result.stdout.contains("(4694 in all)"), "\(result.stdout)")
        result = try runCLI(["diff", folded, demo.training, "--rows", "--top", "3", "--tensors", "--json"])
        let tables = (result.json!["report"] as! [String: Any])["tables"] as! [[String: Any]]
        let item = tables.first { $0["field"] as! String == "item_id" }!
        #expect((item["addedIDs"] as! [String]).count == 3 && (item["removedIDs"] as! [String]).isEmpty)
        result = try runCLI(["diff", folded, demo.training, "--tensors"])
        #expect(result.stdout.contains("tensor optimizer.step"))
        // The step of a trained model against fresh Adam state: a scalar, old → new.
        result = try runCLI(["diff", demo.training, fresh])
        let step = try ModelFile(path: demo.training).withElements(of: "optimizer.step", as: Int64.self) { $0[0] }
        #expect(step > 0 && result.stdout.contains("optimizer.step: \(step) → 0"), "\(result.stdout)")
        #expect(result.stdout.contains("1 of 1 elements"), "\(result.stdout)")
        // A non-keyed table's rows are rows.
        let small = TestPaths.fixture("v1.0/small.mtlm"), q = directory.path("q.mtlm")
        #expect(try runCLI(["quantize", small, q]).status == 0)
        result = try runCLI(["diff", small, q, "--rows", "--top", "2"])
        #expect(result.stdout.contains("most changed user_id rows: ") && result.stdout.contains("most changed item_id ids: "), "\(result.stdout)")
    }

    @Test("the change of rows by training count: bins of counts 0, 1, 2–3, …, each mean what the rows' own changes give")
    func changeByFrequency() throws {
        let directory = TemporaryDirectory()
        guard let demo = try importedDemo(into: directory) else { return }
        let quantized = directory.path("q.mtlm")
        #expect(try runCLI(["quantize", demo.training, quantized, "--embeddings", "int4", "--dense", "fp32"]).status == 0)
        let result = try runCLI(["diff", demo.training, quantized, "--json"])
        let tables = (result.json!["report"] as! [String: Any])["tables"] as! [[String: Any]]
        let user = tables.first { $0["field"] as! String == "user_id" }!
        let bins = user["changeByFrequency"] as! [[String: Any]]
        #expect(bins.reduce(0) { $0 + ($1["rows"] as! Int) } == user["rowsA"] as! Int)
        // Independently: each row's ‖b − a‖ / ‖a‖ from the decoded tables, binned by its count.
        let a = try ModelFile(path: demo.training), b = try ModelFile(path: quantized)
        let x = try a.floats("embedding.user_id.weight"), y = try b.floats("embedding.user_id.weight")
        let counts = try a.withElements(of: "stats.user_id.count", as: Int64.self) { Array($0) }
        let k = a.architecture.embeddingDim
        var sums: [Int64: (Double, Int)] = [:]
        for row in counts.indices {
            var d2 = 0.0, n2 = 0.0
            for j in 0..<k { let p = Double(x[row * k + j]), q = Double(y[row * k + j]); d2 += (q - p) * (q - p); n2 += p * p }
            let low: Int64 = counts[row] <= 0 ? 0 : 1 << (63 - counts[row].leadingZeroBitCount)
            sums[low, default: (0, 0)].0 += (d2 / n2).squareRoot()
            sums[low, default: (0, 0)].1 += 1
        }
        for bin in bins {
            let (sum, rows) = sums[Int64(bin["minCount"] as! Int)]!
            #expect(rows == bin["rows"] as! Int)
            #expect(abs(sum / Double(rows) - (bin["meanRelativeChange"] as! Double)) < 1e-5 * (sum / Double(rows)), "\(bin)")
        }
    }

    @Test("diff keeps few of the models' pages resident: a table's training counts are released with its rows (a 2M-row table: 16 MiB of counts)")
    func residentPagesBounded() throws {
        let directory = TemporaryDirectory()
        let a = directory.path("a.mtlm"), b = directory.path("b.mtlm")
        try synthOneLargeTable(a, field: "user_id", mapping: "modulo", rows: 2_097_152, dim: 4)
        try synthOneLargeTable(b, field: "user_id", mapping: "modulo", rows: 2_097_152, dim: 4, seed: 2)
        let modelA = try Model(path: a), modelB = try Model(path: b)
        // Sampled while diff runs: the resident pages of the two files' mappings (other tests of
        // this process map other files), and of A's counts alone.
        let counts = try #require(modelA.tensors.first { $0.name == "stats.user_id.count" })
        let (report, files, countsPeak) = try peakResident(filesUnder: directory.url.path, tensor: counts, of: modelA.file) {
            try ModelDiff(threadCount: 2).compare(modelA, modelB)
        }
        #expect(report.tables.first { $0.field == "user_id" }?.changed == 2_097_152)
        // The table is 32 MiB a model, its counts 16 MiB, its training state 48 MiB more. The
        // sampler saw the files mapped (it can fail; a loaded machine may let it miss a moment,
        // but kept pages stay). A's counts are released every 65,536 rows (512 KiB); each tensor
        // compared whole is released every 16 MiB read of A and B.
        #expect(countsPeak <= 4 << 20, "peak \(countsPeak >> 10) KiB of A's counts resident")
        #expect(files > 0 && files <= 48 << 20, "peak \(files >> 20) MiB of the models resident")
    }
}
