import CKernels
import Foundation

/// Scratch buffers of one thread, allocated once per `predict` call and slice.
final class Workspace {
    let pooled: UnsafeMutablePointer<Float>       // F × K: u_f of one sample
    let groupSum: UnsafeMutablePointer<Float>     // M × K: Σ u_f (then e_m with bias)
    let groupSquares: UnsafeMutablePointer<Float> // M × K: Σ u_f²
    let zWeight: UnsafeMutablePointer<Float>      // F: Σ value, then 1/Z_f
    let zSquares: UnsafeMutablePointer<Float>     // F: Σ value²
    let linear: UnsafeMutablePointer<Float>       // F: Σ value · w_f[row]
    let decodedRow: UnsafeMutablePointer<Float>   // K: a quantized row, decoded
    let linearTerm: UnsafeMutablePointer<Float>   // rows: y_lin per sample
    let bufferA: UnsafeMutablePointer<Float>      // rows × widest layer
    let bufferB: UnsafeMutablePointer<Float>
    let towerInput: UnsafeMutablePointer<Float>   // rows × shared output (kept for every task)
    /// Row of each entry of the block (-1: out of vocabulary), grown as needed.
    var entryRows: [Int] = []
    /// The first chunk of a table that failed its checksum when a lookup touched it.
    var failure: MTLModelError?
    /// Whether lookups check the table chunks they touch (`PredictionStream` checks them
    /// after the pass instead, before its results are used).
    var checksChunks = true
    let width: Int
    private let allocations: [UnsafeMutablePointer<Float>]

    init(_ weights: ModelWeights, rows: Int) {
        let arch = weights.architecture
        let k = weights.k
        var widest = max(weights.bottomWidth, weights.towerInputWidth)
        for layer in weights.shared { widest = max(widest, layer.paddedOutputCount) }
        for task in weights.tasks { for layer in task.tower { widest = max(widest, layer.paddedOutputCount) } }
        width = widest
        func make(_ count: Int) -> UnsafeMutablePointer<Float> {
            let pointer = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            pointer.initialize(repeating: 0, count: max(count, 1))
            return pointer
        }
        pooled = make(arch.fields.count * k)
        groupSum = make(arch.groupCount * k)
        groupSquares = make(arch.groupCount * k)
        zWeight = make(arch.fields.count)
        zSquares = make(arch.fields.count)
        linear = make(arch.fields.count)
        decodedRow = make(k)
        linearTerm = make(rows)
        bufferA = make(rows * widest)
        bufferB = make(rows * widest)
        towerInput = make(rows * widest)
        allocations = [pooled, groupSum, groupSquares, zWeight, zSquares, linear, decodedRow, linearTerm, bufferA, bufferB, towerInput]
    }

    deinit { allocations.forEach { $0.deallocate() } }
}

/// MODEL.md's forward pass over a block of samples.
enum ForwardPass {
    /// Samples evaluated together through the dense layers: a multiple of the dense kernel's
    /// 6 rows (64 left 4 rows a block to its one-row loop, a third as fast; the results of a
    /// row are the same either way).
    static let blockRows = 66

    /// The entries of one block of samples, as the stages read them.
    struct Entries {
        let starts: UnsafeBufferPointer<Int32>
        let fields: UnsafeBufferPointer<Int32>
        let ids: UnsafeBufferPointer<UInt64>
        let values: UnsafeBufferPointer<Float>
        /// The rows of the batch's ids in keyed tables indexed per batch.
        let keyed: BatchKeys?
    }

    /// The forward pass over `samples`, stage by stage: look up rows, pool each sample's bags
    /// and build its bottom input (`pool`, `interact`), the dense layers for the whole block,
    /// the heads, then the fused score.
    static func run(_ w: ModelWeights, _ batch: SampleBatch, _ samples: Range<Int>, _ ws: Workspace, _ out: OutputPointers) {
        batch.entryStart.withUnsafeBufferPointer { starts in
        batch.entryField.withUnsafeBufferPointer { fields in
        batch.entryID.withUnsafeBufferPointer { ids in
        batch.entryValue.withUnsafeBufferPointer { values in
            let entries = Entries(starts: starts, fields: fields, ids: ids, values: values, keyed: batch.keyedRows)
            let firstEntry = lookUp(w, entries, samples, ws)
            for (r, sample) in samples.enumerated() {
                ws.linearTerm[r] = pool(w, entries, sample: sample, block: firstEntry..<Int(starts[samples.upperBound]), ws)
                interact(w, ws, into: ws.bufferA + r * ws.width)
            }
        }}}}
        let (towerInput, stride) = shared(w, rows: samples.count, ws)
        heads(w, towerInput, stride: stride, samples: samples, ws, out)
        for sample in samples {
            out.fused[sample] = Fusion.score(w.fusion, probabilities: out.probabilities + sample * w.tasks.count, taskCount: w.tasks.count)
        }
    }

    /// Maps every id of the block to its row and starts loading the first entries' rows
    /// (`pool` keeps loading `prefetchDistance` entries ahead: the lookups are random accesses
    /// into large tables, and overlapping them hides their memory latency). Returns the index
    /// of the block's first entry.
    @inline(__always)
    private static func lookUp(_ w: ModelWeights, _ e: Entries, _ samples: Range<Int>, _ ws: Workspace) -> Int {
        let firstEntry = Int(e.starts[samples.lowerBound])
        let entryCount = Int(e.starts[samples.upperBound]) - firstEntry
        if ws.entryRows.count < entryCount { ws.entryRows = Array(repeating: 0, count: entryCount) }
        // The fields are read in place (`fields[f].…`): binding one to a local would copy the
        // struct, retaining and releasing its arrays and index for every id.
        w.fields.withUnsafeBufferPointer { fields in
        ws.entryRows.withUnsafeMutableBufferPointer { rows in
            for i in 0..<entryCount {
                let f = Int(e.fields[firstEntry + i])
                var row = fields[f].row(of: e.ids[firstEntry + i], e.keyed)
                if row >= 0, ws.checksChunks, let problem = fields[f].embedding.checks?.check(row: row) ?? fields[f].linear?.checks?.check(row: row) {
                    ws.failure = ws.failure ?? problem  // the batch fails; the row is not read
                    row = -1
                }
                rows[i] = row
            }
            for i in 0..<min(entryCount, prefetchDistance) { prefetch(fields, f: Int(e.fields[firstEntry + i]), row: rows[i]) }
        }}
        return firstEntry
    }

    /// Entries ahead of the one pooled whose rows are prefetched. Prefetching a whole block
    /// at once (3,300 entries of the p40 model, two lines each) stalled on full miss buffers
    /// and left the rows to be loaded again, cold, when pooled; 16 ahead keeps about the
    /// number of misses the core can have in flight (measured: 8 to 48 all within noise of
    /// each other, the library pass 43 → 35 ms a block of 4096 samples).
    static let prefetchDistance = 16

    /// Starts loading the rows of one entry (none for an out-of-vocabulary id).
    @inline(__always)
    private static func prefetch(_ fields: UnsafeBufferPointer<ModelWeights.FieldWeights>, f: Int, row: Int) {
        guard row >= 0 else { return }
        mtlm_prefetch(fields[f].embedding.row(row))
        if fields[f].linear != nil { mtlm_prefetch(fields[f].linear!.row(row)) }
    }

    /// Pools each field's bag of `sample`, u_f = (1/Z_f) Σ value · V_f[row] (out-of-vocabulary
    /// ids dropped), into `ws.pooled`; returns the first-order term y_lin.
    @inline(__always)
    private static func pool(_ w: ModelWeights, _ e: Entries, sample: Int, block: Range<Int>, _ ws: Workspace) -> Float {
        let firstEntry = block.lowerBound
        let k = w.k
        let fieldCount = w.fields.count
        ws.pooled.update(repeating: 0, count: fieldCount * k)
        ws.zWeight.update(repeating: 0, count: fieldCount)
        ws.zSquares.update(repeating: 0, count: fieldCount)
        ws.linear.update(repeating: 0, count: fieldCount)
        w.fields.withUnsafeBufferPointer { fields in  // read in place, as in `lookUp`
        for entry in Int(e.starts[sample])..<Int(e.starts[sample + 1]) {
            let ahead = entry + prefetchDistance
            if ahead < block.upperBound { prefetch(fields, f: Int(e.fields[ahead]), row: ws.entryRows[ahead - firstEntry]) }
            let f = Int(e.fields[entry])
            let row = ws.entryRows[entry - firstEntry]
            if row < 0 { continue }
            let value = e.values[entry]
            let target = ws.pooled + f * k
            let stored = fields[f].embedding.row(row)
            if fields[f].embedding.dtype == .float32 {
                let vector = stored.assumingMemoryBound(to: Float.self)
                for j in 0..<k { target[j] += value * vector[j] }
            } else {
                // Quantized or half-precision rows are decoded as they are read.
                RowCodec.decodeRow(stored, dtype: fields[f].embedding.dtype, columns: k, into: ws.decodedRow)
                for j in 0..<k { target[j] += value * ws.decodedRow[j] }
            }
            ws.zWeight[f] += value
            ws.zSquares[f] += value * value
            if fields[f].linear != nil {
                var weight: Float = 0
                RowCodec.decodeRow(fields[f].linear!.row(row), dtype: fields[f].linear!.dtype, columns: 1, into: &weight)
                ws.linear[f] += value * weight
            }
        }
        }
        var linearTerm = w.linearBias
        for f in 0..<fieldCount {
            let scale: Float
            switch w.fields[f].combiner {
            case .sum: scale = 1
            case .mean: scale = ws.zWeight[f] == 0 ? 0 : 1 / ws.zWeight[f]
            case .sqrtn: scale = ws.zSquares[f] == 0 ? 0 : 1 / ws.zSquares[f].squareRoot()
            }
            if scale != 1 {
                let target = ws.pooled + f * k
                for j in 0..<k { target[j] *= scale }
            }
            linearTerm += scale * ws.linear[f]
        }
        return linearTerm
    }

    /// The bottom input z of one sample from its pooled fields: groups e_m = Σ u_f (+ bias),
    /// the intra-group terms c·((Σ u_f)² − Σ u_f²), the weighted pairs e_a ⊙ e_b, then the
    /// groups or fields MODEL.md's `bottom_input` appends.
    @inline(__always)
    private static func interact(_ w: ModelWeights, _ ws: Workspace, into z: UnsafeMutablePointer<Float>) {
        let k = w.k
        let groupCount = w.groupCount
        ws.groupSum.update(repeating: 0, count: groupCount * k)
        ws.groupSquares.update(repeating: 0, count: groupCount * k)
        for f in 0..<w.fields.count {
            let u = ws.pooled + f * k
            let sum = ws.groupSum + w.fields[f].group * k
            let squares = ws.groupSquares + w.fields[f].group * k
            for j in 0..<k {
                sum[j] += u[j]
                squares[j] += u[j] * u[j]
            }
        }
        for j in 0..<k { z[j] = 0 }
        if let intra = w.intraWeights {
            for m in 0..<groupCount {
                let weight = w.intraScale * intra[m]
                let sum = ws.groupSum + m * k, squares = ws.groupSquares + m * k
                for j in 0..<k { z[j] += weight * (sum[j] * sum[j] - squares[j]) }
            }
        }
        if let bias = w.fieldBias {
            for m in 0..<groupCount {
                let sum = ws.groupSum + m * k
                for j in 0..<k { sum[j] += bias[m * k + j] }
            }
        }
        for (a, b, weight) in w.pairs {
            let ea = ws.groupSum + a * k, eb = ws.groupSum + b * k
            for j in 0..<k { z[j] += weight * ea[j] * eb[j] }
        }
        switch w.bottomInput {
        case .interaction: break
        case .interactionGroups: (z + k).update(from: ws.groupSum, count: groupCount * k)
        case .interactionFields: (z + k).update(from: ws.pooled, count: w.fields.count * k)
        }
    }

    /// The shared layers over the whole block (z in `ws.bufferA`); the output is copied to
    /// `ws.towerInput`, which every task's tower reads. Returns it with its row stride.
    private static func shared(_ w: ModelWeights, rows: Int, _ ws: Workspace) -> (UnsafeMutablePointer<Float>, Int) {
        var input = UnsafeMutablePointer(ws.bufferA)
        var spare = ws.bufferB
        var stride = ws.width
        for layer in w.shared {
            layer.apply(input, inputStride: stride, rows: rows, into: spare)
            swap(&input, &spare)
            stride = layer.paddedOutputCount
        }
        ws.towerInput.update(from: input, count: rows * stride)
        return (ws.towerInput, stride)
    }

    /// Each task's tower and head: logits and probabilities of the block's samples.
    private static func heads(_ w: ModelWeights, _ towerInput: UnsafeMutablePointer<Float>, stride towerStride: Int, samples: Range<Int>,
                              _ ws: Workspace, _ out: OutputPointers) {
        let taskCount = w.tasks.count
        let rows = samples.count
        for (t, task) in w.tasks.enumerated() {
            var x = towerInput
            var stride = towerStride
            var target = ws.bufferA
            var other = ws.bufferB
            for layer in task.tower {
                layer.apply(x, inputStride: stride, rows: rows, into: target)
                x = target
                stride = layer.paddedOutputCount
                swap(&target, &other)
            }
            let width = task.head.count
            task.head.withUnsafeBufferPointer { head in
                for r in 0..<rows {
                    let row = x + r * stride
                    var logit = task.headBias
                    for i in 0..<width { logit += head[i] * row[i] }
                    if task.useLinear { logit += ws.linearTerm[r] }
                    logit += task.logitOffset
                    let index = (samples.lowerBound + r) * taskCount + t
                    out.logits[index] = logit
                    out.probabilities[index] = Activations.sigmoid(logit)
                }
            }
        }
    }
}

/// The fused ranking score of MODEL.md.
enum Fusion {
    static func score(_ fusion: Architecture.Fusion, probabilities p: UnsafePointer<Float>, taskCount: Int) -> Double {
        switch fusion.type {
        case .lexicographic:
            return (Double(p[0]) / fusion.bucket).rounded(.down) + Double(p[1])
        case .weightedSum:
            var total = 0.0
            for t in 0..<taskCount { total += fusion.weights[t] * Double(p[t]) }
            return total
        case .weightedProduct:
            var total = 1.0
            for t in 0..<taskCount { total *= pow(fusion.biases[t] + fusion.weights[t] * Double(p[t]), fusion.exponents[t]) }
            return total
        }
    }
}
