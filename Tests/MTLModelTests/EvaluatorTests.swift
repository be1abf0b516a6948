import Foundation
import Testing
import CKernels
@testable import MTLModel

/// The evaluator sorts in bounded memory (`ExternalSorter`): the same metrics and curves
/// whether its scores fit in memory or were spilled in runs, and the same as sorting every
/// sample in memory (`EvaluationReference`, the evaluator as it was before).
@Suite("eval in bounded memory")
struct EvaluatorTests {
    @Test("ExternalSorter: sorted runs merged give every value in order, any number of times; nothing spilled while it fits; moved to disk, the same")
    func externalSorter() throws {
        var generator = SeededGenerator(seed: 7)
        let values = (0..<50_000).map { _ in UInt64.random(in: 0..<3_000, using: &generator) }
        let spilling = ExternalSorter<UInt64>(name: "test", for: "test values", memoryBudget: 0)
        let fitting = ExternalSorter<UInt64>(name: "test", for: "test values", memoryBudget: 1 << 20)
        for value in values {
            try spilling.append(value)
            try fitting.append(value)
        }
        // Runs of 4096 values (the least a run holds): 12 full ones, the rest spilled when read.
        #expect(spilling.runCount == 12 && fitting.runCount == 0)
        for sorter in [spilling, fitting] {
            for _ in 0..<2 {
                var read: [UInt64] = []
                try sorter.forEachSorted { read.append($0) }
                #expect(read == values.sorted())
            }
        }
        #expect(spilling.runCount == 13 && fitting.runCount == 0)
        // Moved to disk (kept for later reads without holding memory): the same values, one run.
        try fitting.moveToDisk()
        try spilling.moveToDisk()
        #expect(fitting.runCount == 1 && spilling.runCount == 13)
        for sorter in [spilling, fitting] {
            var read: [UInt64] = []
            try sorter.forEachSorted { read.append($0) }
            #expect(read == values.sorted())
        }
        // Not read yet, fitting or spilled (with a partial run in memory): moved, then appended to.
        for (budget, runs) in [(1 << 20, 2), (0, 14)] {
            let unread = ExternalSorter<UInt64>(name: "test", for: "test values", memoryBudget: budget)
            for value in values { try unread.append(value) }
            try unread.moveToDisk()
            for value in values.prefix(100) { try unread.append(value) }
            var sortedOnce: [UInt64] = []
            try unread.forEachSorted { sortedOnce.append($0) }
            #expect(unread.runCount == runs && sortedOnce == (values + values.prefix(100)).sorted(), "budget \(budget)")
        }
        let pairs = ExternalSorter<KeyPair>(name: "test", for: "test pairs", memoryBudget: 0)
        let pairValues = (0..<10_000).map { _ in KeyPair(high: .random(in: 0..<10, using: &generator), low: .random(in: 0..<5, using: &generator)) }
        for pair in pairValues { try pairs.append(pair) }
        var read: [KeyPair] = []
        try pairs.forEachSorted { read.append($0) }
        #expect(pairs.runCount == 3 && read.map(\.high) == pairValues.sorted().map(\.high) && read.map(\.low) == pairValues.sorted().map(\.low))
        var none = 0
        try ExternalSorter<UInt64>(name: "test", for: "test values", memoryBudget: 0).forEachSorted { _ in none += 1 }
        #expect(none == 0)
    }

    /// A 12-byte record (the scatter's size of no special case) keyed by two of its fields, the
    /// third its place in the input: sorted by all three, the order a stable sort gives.
    struct Twelve: RadixSortable, Comparable {
        var low: UInt32, high: UInt32, place: UInt32
        static let radixKeyBytes = keyBytes(at: 0, size: 8)
        static func < (a: Twelve, b: Twelve) -> Bool { (a.high, a.low, a.place) < (b.high, b.low, b.place) }
    }

    @Test("The radix sort of a run gives the comparison sort's order: 4-, 8-, 12-, 16- and 24-byte records, empty, one, all equal, keys differing in one byte only, scratch given or not")
    func radixSort() throws {
        var generator = SeededGenerator(seed: 3)
        func check<T: RadixSortable & Comparable>(_ values: [T]) {
            for given in [false, true] {
                var sorted = values
                var scratch = values
                let keys = T.radixKeyBytes, count = sorted.count
                let status = sorted.withUnsafeMutableBytes { records in
                    scratch.withUnsafeMutableBytes { mtlm_radix_sort(records.baseAddress, count, MemoryLayout<T>.stride, keys, keys.count, given ? $0.baseAddress : nil) }
                }
                #expect(status == 0 && sorted == values.sorted(), "\(T.self), \(count) records, scratch given: \(given)")
            }
        }
        for count in [0, 1, 2, 255, 4099] {
            check((0..<count).map { _ in UInt32.random(in: 0...UInt32.max, using: &generator) })
            check((0..<count).map { _ in UInt64.random(in: 0...UInt64.max, using: &generator) })
            check((0..<count).map { _ in UInt64.random(in: 0..<4, using: &generator) << 56 })  // the top byte only
            check((0..<count).map { _ in KeyPair(high: .random(in: 0..<3, using: &generator), low: .random(in: 0...UInt64.max, using: &generator)) })
            check([KeyPair](repeating: KeyPair(high: 7, low: 9), count: count))
            let values = (0..<count).map { _ in
                RankedValues.Value(index: .random(in: 0..<(1 << 40), using: &generator), value: 0, score: 0, flag: false)
            }
            check(values)
            check((0..<count).map { Twelve(low: .random(in: 0..<3, using: &generator), high: .random(in: 0..<50, using: &generator), place: UInt32($0)) })
        }
    }

    @Test("Scores as ordered keys: the order of the floats, −0 as +0, a logit's key read back")
    func scoreKeys() {
        let floats: [Float] = [-.infinity, -3e38, -1, -1e-30, -.leastNonzeroMagnitude, 0, .leastNonzeroMagnitude, 1e-30, 1, 3e38, .infinity]
        #expect(floats.map(ScoreKey.ordered) == floats.map(ScoreKey.ordered).sorted() && Set(floats.map(ScoreKey.ordered)).count == floats.count)
        #expect(ScoreKey.ordered(Float(-0.0)) == ScoreKey.ordered(Float(0)) && ScoreKey.ordered(-0.0) == ScoreKey.ordered(0.0))
        let doubles = floats.map(Double.init)
        #expect(doubles.map(ScoreKey.ordered) == doubles.map(ScoreKey.ordered).sorted())
        for x in floats { #expect(ScoreKey.logit(ScoreKey.labelled(x, positive: true)) == x) }
    }

    @Test("Spilled or not, the evaluator's metrics, ROC curves and reliability bins are the in-memory reference's, ties and groups included",
          arguments: [0, 64 << 20])
    func spilledEqualsReference(budget: Int) throws {
        let (batches, predictions) = Self.dataset(samples: 30_000, seed: 11)
        let evaluator = Evaluator(taskNames: ["ctr", "follow"], groupField: 0, memoryBudget: budget)
        var reference = EvaluationReference(taskCount: 2, grouped: true)
        for (batch, prediction) in zip(batches, predictions) {
            try evaluator.add(batch, prediction)
            reference.add(batch, prediction)
        }
        #expect(budget == 0 ? evaluator.spilledRunCount > 20 : evaluator.spilledRunCount == 0)
        let evaluation = try evaluator.finish()
        for t in 0..<2 {
            let got = evaluation.metrics[t], want = reference.metrics(task: t, name: ["ctr", "follow"][t])
            #expect(got == want, "task \(t)")
            #expect(got.auc != nil && got.groupAUC != nil && (got.groupAUCGroups ?? 0) > 100)
            let roc = try #require(evaluation.roc[t])
            #expect(roc.falsePositiveRates == reference.roc(task: t).0 && roc.truePositiveRates == reference.roc(task: t).1)
            #expect(roc.falsePositiveRates.count <= ROCCurve.maxPoints && roc.falsePositiveRates.count > 400)
            #expect(evaluation.reliability[t].bins == reference.reliability(task: t))
        }
        // Read again (without the ROC curves, as a comparison asks) the same.
        let again = try evaluator.finish(roc: false)
        #expect(again.metrics == evaluation.metrics && again.reliability == evaluation.reliability && again.roc.allSatisfy { $0 == nil })
    }

    @Test("Spilled or not, DeLong's interval and the prediction shift (|Δp| quantiles, rank correlation, top-k overlap, joint bins) are the in-memory reference's",
          arguments: [0, 64 << 20])
    func pairedStatisticsEqualReference(budget: Int) throws {
        var generator = SeededGenerator(seed: 5)
        let count = 20_000
        // Probabilities on a grid of 500 (ties), B a noisy copy of A; logits on a grid with a
        // signal; about 5% unlabelled.
        let a = (0..<count).map { _ in Float(Int.random(in: 1..<500, using: &generator)) / 1000 }
        let b = a.map { max(0, $0 + Float(Int.random(in: -20...20, using: &generator)) / 1000) }
        let labels: [Int8] = (0..<count).map { _ in Int.random(in: 0..<20, using: &generator) == 0 ? -1 : Int8.random(in: 0...1, using: &generator) }
        let logitsA = labels.map { Double(Int.random(in: -100..<100, using: &generator)) / 20 + ($0 == 1 ? 0.4 : 0) }
        let logitsB = zip(logitsA, labels).map { $0 + ($1 == 1 ? 0.1 : 0) + Double(Int.random(in: -2...2, using: &generator)) / 20 }
        let paired = PairedAUC(memoryBudget: budget), shift = PredictionShift(memoryBudget: budget)
        for i in 0..<count {
            try shift.add(a[i], b[i])
            if labels[i] >= 0 { try paired.add(logitsA[i], logitsB[i], positive: labels[i] == 1) }
        }
        let labelled = labels.indices.filter { labels[$0] >= 0 }
        let want = try #require(PairedReference.compare(labelled.map { logitsA[$0] }, labelled.map { logitsB[$0] }, labels: labelled.map { labels[$0] == 1 }))
        let got = try #require(try paired.result())
        #expect(got == want)
        #expect(got.delta > 0 && got.low < got.delta && got.delta < got.high)
        let metrics = TaskMetrics(task: "t", samples: 0, positives: 0)
        var task = QualityComparison.Task(task: "t", before: metrics, after: metrics), reference = task
        try shift.fill(&task)
        PairedReference.addShift(&reference, a, b)
        #expect(task.deltaPHistogram == reference.deltaPHistogram && task.jointCounts == reference.jointCounts && task.jointRange == reference.jointRange)
        #expect(task.meanAbsoluteDeltaP == reference.meanAbsoluteDeltaP && task.p50AbsoluteDeltaP == reference.p50AbsoluteDeltaP)
        #expect(task.p99AbsoluteDeltaP == reference.p99AbsoluteDeltaP && task.maxAbsoluteDeltaP == reference.maxAbsoluteDeltaP)
        #expect(task.rankCorrelation == reference.rankCorrelation && task.topK == 200 && task.topKOverlap == reference.topKOverlap)
        #expect(task.rankCorrelation! > 0.9 && task.rankCorrelation! < 1 && task.topKOverlap! > 0.1 && task.topKOverlap! < 1)
    }

    @Test("A task whose labels hold one class, or none: no AUC and no ROC curve, its other metrics as they are")
    func oneClass() throws {
        var batch = SampleBatch(taskCount: 2)
        var prediction = Predictions(taskCount: 2, count: 3)
        for i in 0..<3 {
            batch.append(labels: [1, -1], entries: [])
            prediction.logits[2 * i] = Float(i)
            prediction.fused[i] = Double(i)
        }
        let evaluator = Evaluator(taskNames: ["ctr", "follow"], memoryBudget: 0)
        try evaluator.add(batch, prediction)
        let evaluation = try evaluator.finish()
        #expect(evaluation.metrics[0].samples == 3 && evaluation.metrics[0].auc == nil && evaluation.metrics[0].logloss != nil)
        #expect(evaluation.roc[0] == nil && evaluation.reliability[0].bins.count == 3)
        #expect(evaluation.metrics[1].samples == 0 && evaluation.metrics[1].logloss == nil && evaluation.reliability[1].bins.isEmpty)
    }

    /// Batches of 1000 samples: logits on a grid of 400 values (ties), a fused score on one of
    /// 300, about 5% of labels unknown, the group field's id one of 400 users or absent.
    static func dataset(samples: Int, seed: UInt64) -> ([SampleBatch], [Predictions]) {
        var generator = SeededGenerator(seed: seed)
        var batches: [SampleBatch] = [], predictions: [Predictions] = []
        for start in stride(from: 0, to: samples, by: 1000) {
            let count = min(1000, samples - start)
            var batch = SampleBatch(taskCount: 2), prediction = Predictions(taskCount: 2, count: count)
            for i in 0..<count {
                let labels: [Int8] = (0..<2).map { _ in Int.random(in: 0..<20, using: &generator) == 0 ? -1 : Int8.random(in: 0...1, using: &generator) }
                let user = UInt64.random(in: 0..<420, using: &generator)
                batch.append(labels: labels, entries: user < 400 ? [(field: 0, id: user, value: 1)] : [(field: 1, id: user, value: 1)])
                for t in 0..<2 {
                    let grid = Float(Int.random(in: -200..<200, using: &generator)) / 40
                    prediction.logits[2 * i + t] = grid + (labels[t] == 1 ? 0.5 : 0)
                }
                prediction.fused[i] = Double(Int.random(in: 0..<300, using: &generator)) / 7 - (labels[0] == 1 ? 3 : 0)
            }
            batches.append(batch)
            predictions.append(prediction)
        }
        return (batches, predictions)
    }
}

/// The evaluator as it was: every labelled sample kept in memory, sorted by index. Ties among
/// equal predictions in the reliability diagram put negatives first (as the evaluator's keys do).
struct EvaluationReference {
    let taskCount: Int, grouped: Bool
    var logits: [[Float]], fused: [[Double]], labels: [[Bool]], groups: [[UInt64?]]

    init(taskCount: Int, grouped: Bool) {
        (self.taskCount, self.grouped) = (taskCount, grouped)
        (logits, fused, labels, groups) = (Array(repeating: [], count: taskCount), Array(repeating: [], count: taskCount),
                                           Array(repeating: [], count: taskCount), Array(repeating: [], count: taskCount))
    }

    mutating func add(_ batch: SampleBatch, _ predictions: Predictions) {
        for sample in 0..<batch.count {
            let entries = Int(batch.entryStart[sample])..<Int(batch.entryStart[sample + 1])
            let group = entries.first { batch.entryField[$0] == 0 }.map { batch.entryID[$0] }
            for t in 0..<taskCount where batch.labels[sample * taskCount + t] >= 0 {
                logits[t].append(predictions.logits[sample * taskCount + t])
                fused[t].append(predictions.fused[sample])
                labels[t].append(batch.labels[sample * taskCount + t] == 1)
                groups[t].append(group)
            }
        }
    }

    func metrics(task t: Int, name: String) -> TaskMetrics {
        let n = labels[t].count, positives = labels[t].filter { $0 }.count
        var metrics = TaskMetrics(task: name, samples: n, positives: positives)
        var loss = 0.0, sum = 0.0
        for i in 0..<n {
            let x = Double(logits[t][i])
            loss += Evaluator.softplus(labels[t][i] ? -x : x)
            sum += 1 / (1 + exp(-x))
        }
        (metrics.logloss, metrics.meanPrediction, metrics.meanLabel) = (loss / Double(n), sum / Double(n), Double(positives) / Double(n))
        metrics.calibration = metrics.meanPrediction! / metrics.meanLabel!
        metrics.auc = Self.auc(logits[t].map(Double.init), labels[t])
        metrics.fusedAUC = Self.auc(fused[t], labels[t])
        let members = Dictionary(grouping: groups[t].indices.filter { groups[t][$0] != nil }) { groups[t][$0]! }
        var weighted = 0.0, groupCount = 0, samples = 0
        for user in members.keys.sorted() {
            let m = members[user]!
            guard let auc = Self.auc(m.map { Double(logits[t][$0]) }, m.map { labels[t][$0] }) else { continue }
            (weighted, groupCount, samples) = (weighted + auc * Double(m.count), groupCount + 1, samples + m.count)
        }
        (metrics.groupAUC, metrics.groupAUCGroups, metrics.groupAUCSamples) = (weighted / Double(samples), groupCount, samples)
        return metrics
    }

    func roc(task t: Int) -> ([Double], [Double]) {
        let scores = logits[t], positives = labels[t].filter { $0 }.count, negatives = labels[t].count - positives
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var fpr = [0.0], tpr = [0.0], tp = 0, fp = 0, start = 0
        while start < order.count {
            var end = start
            while end < order.count && scores[order[end]] == scores[order[start]] {
                if labels[t][order[end]] { tp += 1 } else { fp += 1 }
                end += 1
            }
            fpr.append(Double(fp) / Double(negatives))
            tpr.append(Double(tp) / Double(positives))
            start = end
        }
        let step = max(1, (fpr.count - 1 + 510) / 511)
        let kept = Array(stride(from: 0, to: fpr.count - 1, by: step)) + [fpr.count - 1]
        return (kept.map { fpr[$0] }, kept.map { tpr[$0] })
    }

    func reliability(task t: Int) -> [ReliabilityDiagram.Bin] {
        let p = logits[t].map { 1 / (1 + exp(-Double($0))) }
        let order = p.indices.sorted { (p[$0], labels[t][$0] ? 1 : 0) < (p[$1], labels[t][$1] ? 1 : 0) }
        let bins = min(10, order.count)
        return (0..<bins).map { b in
            let m = order[(b * order.count / bins)..<((b + 1) * order.count / bins)]
            return .init(lower: p[m.first!], upper: p[m.last!], count: m.count, meanPrediction: m.reduce(0.0) { $0 + p[$1] } / Double(m.count),
                         positiveRate: Double(m.filter { labels[t][$0] }.count) / Double(m.count))
        }
    }

    /// Mid-ranks by an index sort, the rank sum of the positives in sample order.
    static func auc(_ scores: [Double], _ labels: [Bool]) -> Double? {
        let positives = labels.filter { $0 }.count, negatives = labels.count - positives
        guard positives > 0, negatives > 0 else { return nil }
        let ranks = PairedReference.midranks(scores)
        let rankSum = labels.indices.reduce(0.0) { $0 + (labels[$1] ? ranks[$1] : 0) }
        let p = Double(positives)
        return (rankSum - p * (p + 1) / 2) / (p * Double(negatives))
    }
}

/// DeLong's test and the prediction shift as they were: every sample in memory, mid-ranks by
/// an index sort. The top k are the k highest, ties by the higher index (as the streams do).
enum PairedReference {
    static func compare(_ a: [Double], _ b: [Double], labels: [Bool]) -> PairedAUC.Result? {
        let positives = labels.indices.filter { labels[$0] }, negatives = labels.indices.filter { !labels[$0] }
        let m = Double(positives.count), n = Double(negatives.count)
        guard m > 0, n > 0 else { return nil }
        func components(_ scores: [Double]) -> (auc: Double, v10: [Double], v01: [Double]) {
            let x = positives.map { scores[$0] }, y = negatives.map { scores[$0] }
            let tx = midranks(x), ty = midranks(y), tz = midranks(x + y)
            let v10 = (0..<x.count).map { (tz[$0] - tx[$0]) / n }
            let v01 = (0..<y.count).map { 1 - (tz[x.count + $0] - ty[$0]) / m }
            return (v10.reduce(0, +) / m, v10, v01)
        }
        let ca = components(a), cb = components(b)
        func covariance(_ p: [Double], _ q: [Double]) -> Double {
            guard p.count > 1 else { return 0 }
            let mp = p.reduce(0, +) / Double(p.count), mq = q.reduce(0, +) / Double(q.count)
            return zip(p, q).reduce(0) { $0 + ($1.0 - mp) * ($1.1 - mq) } / Double(p.count - 1)
        }
        let variance = (covariance(ca.v10, ca.v10) + covariance(cb.v10, cb.v10) - 2 * covariance(ca.v10, cb.v10)) / m
            + (covariance(ca.v01, ca.v01) + covariance(cb.v01, cb.v01) - 2 * covariance(ca.v01, cb.v01)) / n
        let se = max(variance, 0).squareRoot(), delta = cb.auc - ca.auc
        return .init(aucA: ca.auc, aucB: cb.auc, delta: delta, standardError: se, low: delta - 1.959964 * se, high: delta + 1.959964 * se)
    }

    static func addShift(_ task: inout QualityComparison.Task, _ a: [Float], _ b: [Float]) {
        let deltas = zip(a, b).map { Double(abs($1 - $0)) }.sorted()
        let edges = QualityComparison.deltaPHistogramEdges
        var histogram = [Int](repeating: 0, count: edges.count + 2)
        for delta in deltas { histogram[delta == 0 ? 0 : 1 + (edges.firstIndex { delta < $0 } ?? edges.count)] += 1 }
        task.deltaPHistogram = histogram
        let largest = Double(max(a.max() ?? 0, b.max() ?? 0))
        let range = largest >= 0.1 ? min(1, (largest * 10).rounded(.up) / 10) : max(1e-6, pow(10, (log10(max(largest, 1e-7))).rounded(.up)))
        let bins = QualityComparison.jointBinCount
        var joint = [[Int]](repeating: [Int](repeating: 0, count: bins), count: bins)
        for (p, q) in zip(a, b) { joint[min(bins - 1, Int(Double(p) / range * Double(bins)))][min(bins - 1, Int(Double(q) / range * Double(bins)))] += 1 }
        (task.jointCounts, task.jointRange) = (joint, range)
        task.meanAbsoluteDeltaP = deltas.reduce(0, +) / Double(deltas.count)
        task.p50AbsoluteDeltaP = deltas[(deltas.count - 1) / 2]
        task.p99AbsoluteDeltaP = deltas[min(deltas.count - 1, Int((Double(deltas.count - 1) * 0.99).rounded(.up)))]
        task.maxAbsoluteDeltaP = deltas.last
        let ranksA = midranks(a.map(Double.init)), ranksB = midranks(b.map(Double.init)), mean = Double(a.count + 1) / 2
        var covariance = 0.0, varianceA = 0.0, varianceB = 0.0
        for i in a.indices {
            covariance += (ranksA[i] - mean) * (ranksB[i] - mean)
            varianceA += (ranksA[i] - mean) * (ranksA[i] - mean)
            varianceB += (ranksB[i] - mean) * (ranksB[i] - mean)
        }
        task.rankCorrelation = varianceA == 0 || varianceB == 0 ? (varianceA == varianceB ? 1 : 0) : covariance / (varianceA * varianceB).squareRoot()
        let k = max(1, a.count / 100)
        func top(_ p: [Float]) -> Set<Int> { Set(p.indices.sorted { (p[$0], $0) > (p[$1], $1) }.prefix(k)) }
        (task.topK, task.topKOverlap) = (k, Double(top(a).intersection(top(b)).count) / Double(k))
    }

    static func midranks(_ values: [Double]) -> [Double] {
        let order = values.indices.sorted { values[$0] < values[$1] }
        var ranks = [Double](repeating: 0, count: values.count), i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && values[order[j + 1]] == values[order[i]] { j += 1 }
            for k in i...j { ranks[order[k]] = Double(i + j) / 2 + 1 }
            i = j + 1
        }
        return ranks
    }
}
