import CKernels
import Foundation

/// Tolerances of a diff: an element differs when |a − b| > atol + rtol · |a|.
public struct DiffTolerance: Sendable, Hashable, Codable {
    public var absolute: Double
    public var relative: Double

    public init(absolute: Double = 0, relative: Double = 0) {
        self.absolute = absolute
        self.relative = relative
    }

    /// Whether two elements differ beyond tolerance. NaN and Inf have no distance to a
    /// number: such a pair differs whenever the bits do (Inf against a finite value, NaN
    /// against anything), whatever the tolerance.
    @inline(__always)
    func differs(_ a: Float, _ b: Float) -> Bool {
        if a.bitPattern == b.bitPattern { return false }
        guard a.isFinite && b.isFinite else { return true }
        return !(Double(abs(a - b)) <= absolute + relative * Double(abs(a)))
    }
}

/// One tensor present in both models.
public struct TensorComparison: Sendable, Codable, Hashable {
    public var name: String
    public var dtypeA: DType
    public var dtypeB: DType
    public var shapeA: [UInt64]
    public var shapeB: [UInt64]
    /// False when the shapes differ: then only that is reported.
    public var sameShape: Bool
    public var maxAbsoluteDifference: Double?
    /// ‖b − a‖ / ‖a‖ (0 when both are zero).
    public var relativeL2Change: Double?
    public var cosineSimilarity: Double?
    public var fractionBeyondTolerance: Double?
    /// The dtypes differ (float32 against a quantized copy, say): the differences are then
    /// quantization error as much as change. False for a dense layer's tensors when batch norm
    /// was folded between the two (`batchNormFolded`): folding changed those values.
    public var quantizationError: Bool
    /// A dense layer's or head's tensor of models between which batch norm was folded.
    public var batchNormFolded: Bool?
    /// NaN and Inf values of each side (float tensors): a tensor holding any is never equal.
    public var nonFiniteA: UInt64 = 0
    public var nonFiniteB: UInt64 = 0
    public var equal: Bool
    /// Integer tensors (keys, counts, the step): how many elements differ; of a scalar, its
    /// value in each model.
    public var changedElementCount: UInt64?
    public var valueA: String?
    public var valueB: String?
}

/// An embedding table compared row by row, keyed by feature id (keys for keyed tables,
/// row numbers otherwise).
public struct TableComparison: Sendable, Codable, Hashable {
    public struct Row: Sendable, Codable, Hashable {
        public var id: UInt64
        public var relativeChange: Double

        enum CodingKeys: String, CodingKey { case id, relativeChange }

        /// The id as a string in JSON: a 64-bit id loses digits as a JavaScript (or jq) number.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(String(id), forKey: .id)
            try container.encode(relativeChange, forKey: .relativeChange)
        }

        public init(id: UInt64, relativeChange: Double) {
            self.id = id
            self.relativeChange = relativeChange
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let text = try container.decode(String.self, forKey: .id)
            guard let id = UInt64(text) else {
                throw DecodingError.dataCorruptedError(forKey: .id, in: container, debugDescription: "not a 64-bit id: \(text)")
            }
            self.init(id: id, relativeChange: try container.decode(Double.self, forKey: .relativeChange))
        }
    }

    public var field: String
    public var keyed: Bool
    public var rowsA: Int
    public var rowsB: Int
    public var added: Int
    public var removed: Int
    public var changed: Int
    public var unchanged: Int
    /// Per-row ‖b − a‖ / ‖a‖ over the rows in both: p50, p99, max.
    public var p50RelativeChange: Double?
    public var p99RelativeChange: Double?
    public var maxRelativeChange: Double?
    /// The most changed ids (with `rows`).
    public var topChanged: [Row]?
    /// p50 and p99 of the per-row change over the rows that changed at all (change > 0): where
    /// 50 of 30,000 rows changed, the percentiles over all rows are 0.
    public var p50ChangedRelativeChange: Double?
    public var p99ChangedRelativeChange: Double?
    /// Rows by their relative change: `changeHistogram[0]` rows of no change, then one count
    /// per decade from below 1e-6 up to 1e1 and above (`changeHistogramEdges`).
    public var changeHistogram: [Int]?

    /// The mean per-row change by how often training saw the row (A's `stats.{field}.count`,
    /// when both models count rows): bins of counts 0, 1, 2–3, 4–7, … (powers of two).
    public var changeByFrequency: [FrequencyBin]?

    public struct FrequencyBin: Sendable, Codable, Hashable {
        /// The bin's counts: `minCount...maxCount`.
        public var minCount: Int64
        public var maxCount: Int64
        public var rows: Int
        /// Over the bin's rows of finite change.
        public var meanRelativeChange: Double?
    }

    /// With `rows`: the first ids (keyed) or rows added in B and removed from A, in row order.
    public var addedIDs: [String]?
    public var removedIDs: [String]?

    /// Upper edges of the histogram's bins after the first (exactly 0).
    public static let changeHistogramEdges: [Float] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10]
}

/// Everything that differs between two models.
public struct ModelDiffReport: Sendable, Codable {
    public var architecture: [String]
    public var metadata: [String]
    public var onlyInA: [String]
    public var onlyInB: [String]
    public var tensors: [TensorComparison]
    public var tables: [TableComparison]
    public var tolerance: DiffTolerance
    /// With evaluation data: how the predictions differ, per task.
    public var predictions: QualityComparison?
    /// Equal within tolerance: same architecture and metadata, the same tensors, none beyond
    /// tolerance, no table row added, removed or changed.
    public var equal: Bool {
        architecture.isEmpty && metadata.isEmpty && onlyInA.isEmpty && onlyInB.isEmpty
            && tensors.allSatisfy(\.equal) && tables.allSatisfy { $0.added == 0 && $0.removed == 0 && $0.changed == 0 }
            && (predictions?.tasks.allSatisfy { ($0.maxAbsoluteDeltaP ?? 0) <= tolerance.absolute } ?? true)
    }
}

/// Compares two models: architecture, metadata, every tensor, and embedding tables row by row.
public struct ModelDiff: Sendable {
    public var tolerance: DiffTolerance
    /// Report the most changed ids of each table.
    public var topRowCount: Int?
    /// Tables compared at once. Each takes up to about 80 MB (the key join's index and matches,
    /// the quantile sketch, row windows), whatever its size.
    public var threadCount: Int

    public init(tolerance: DiffTolerance = .init(), topRowCount: Int? = nil, threadCount: Int = ProcessInfo.processInfo.activeProcessorCount) {
        self.tolerance = tolerance
        self.topRowCount = topRowCount
        self.threadCount = max(1, threadCount)
    }

    /// - Complexity: reads both models once, in windows of rows, in bounded memory (about
    ///   80 MB a thread, `compareTable`).
    public func compare(_ a: Model, _ b: Model) throws -> ModelDiffReport {
        guard Self.splitAlike(a, b) else { return try compare(a, b, merged: ShardDiff(tables: try compareTables(DiffSide(a), DiffSide(b)), tensors: [])) }
        var whole = try compareShard(0, a, b)
        for index in a.shards.indices.dropFirst() { whole.merge(try compareShard(index, a, b)) }
        return try compare(a, b, merged: whole)
    }

    /// Whether two sharded models are split alike (the same shard count, each field's rows or
    /// buckets in the same shards): then shard k of one is compared with shard k of the other
    /// alone (`compareShard`), and the shards' figures merged — the same figures whether the
    /// shards are compared here or by the tasks of a plan.
    public static func splitAlike(_ a: Model, _ b: Model) -> Bool {
        ShardedDelta.layoutMismatch(a, b) == nil
    }

    /// Shard `index` (0-based) of two models split alike: its tables and other table tensors.
    public func compareShard(_ index: Int, _ a: Model, _ b: Model) throws -> ShardDiff {
        let x = DiffSide(a, shard: index), y = DiffSide(b, shard: index)
        let tables = try compareTables(x, y)
        let covered = Set(tables.flatMap { $0.tensors.map(\.name) })
        let entriesB = Dictionary(y.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let tensors = try x.tensors.compactMap { entry in
            try entriesB[entry.name].flatMap { covered.contains(entry.name) ? nil : try tensorPartial(entry, $0, x, y) }
        }
        return ShardDiff(tables: tables, tensors: tensors)
    }

    /// The report of `a` against `b` from the figures of their tables and of the other tensors
    /// compared already (every shard's, merged in order); the remaining tensors (a sharded
    /// model's root's) are compared here.
    func compare(_ a: Model, _ b: Model, merged: ShardDiff) throws -> ModelDiffReport {
        let metadataA = Dictionary(uniqueKeysWithValues: a.manifest.metadata.map { ($0.key, $0.value) })
        let metadataB = Dictionary(uniqueKeysWithValues: b.manifest.metadata.map { ($0.key, $0.value) })
        let metadata = ConfigDiff.differences(.object(metadataA.mapValues { .string($0) }), .object(metadataB.mapValues { .string($0) }))
        let namesB = Set(b.tensors.map(\.name)), namesA = Set(a.tensors.map(\.name))
        var report = ModelDiffReport(architecture: ConfigDiff.differences(a.architecture.config, b.architecture.config),
                                     metadata: metadata, onlyInA: a.tensors.map(\.name).filter { !namesB.contains($0) },
                                     onlyInB: b.tensors.map(\.name).filter { !namesA.contains($0) }, tensors: [], tables: [],
                                     tolerance: tolerance, predictions: nil)
        let entriesA = Dictionary(a.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let entriesB = Dictionary(b.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var compared: [String: TensorComparison] = [:]
        for partial in merged.tables {
            let (table, comparisons) = partial.comparison(entriesA: entriesA, entriesB: entriesB, listsTop: topRowCount != nil)
            report.tables.append(table)
            for tensor in comparisons { compared[tensor.name] = tensor }
        }
        for partial in merged.tensors {
            if let x = entriesA[partial.name], let y = entriesB[partial.name] { compared[partial.name] = partial.comparison(x, y, addedOrRemoved: false) }
        }
        let folded = Self.batchNormFolded(a.architecture, b.architecture)
        for entry in a.tensors {
            guard let other = entriesB[entry.name] else { continue }
            var tensor = try compared[entry.name]
                ?? tensorPartial(entry, other, DiffSide(a), DiffSide(b)).comparison(entry, other, addedOrRemoved: false)
            if folded && TensorName(entry.name)?.isDenseLayerParameter == true {
                tensor.quantizationError = false
                tensor.batchNormFolded = true
            }
            report.tensors.append(tensor)
        }
        return report
    }

    /// Whether `b` lacks a batch norm that `a` has (a shared or tower layer's, by position):
    /// folded, as `convert --fold-batch-norm` does, so every dense layer's values may change.
    static func batchNormFolded(_ a: Architecture, _ b: Architecture) -> Bool {
        let layersA = [a.shared] + a.tasks.map(\.tower), layersB = [b.shared] + b.tasks.map(\.tower)
        return zip(layersA, layersB).contains { zip($0, $1).contains { $0.batchNorm && !$1.batchNorm } }
    }

    /// The embedding tables both sides hold (by field name, when the embedding width is the
    /// same), `threadCount` at a time, each read once, row by row, for both its table and its
    /// tensors' figures.
    private func compareTables(_ a: DiffSide, _ b: DiffSide) throws -> [TablePartial] {
        let fieldsA = a.model.architecture, fieldsB = b.model.architecture
        let pairs = fieldsA.embeddingDim != fieldsB.embeddingDim ? [] : fieldsA.fields.compactMap { field in
            fieldsB.fields.first { $0.name == field.name }.map { (field, $0) }
        }
        let results = WorkResults<Result<TablePartial, any Error>>(count: pairs.count)
        DispatchQueue.concurrentPerform(iterations: min(threadCount, pairs.count)) { _ in
            while let index = results.claim() {
                results.set(index, Result { try compareTable(pairs[index].0, pairs[index].1, a, b) })
            }
        }
        return try results.all.map { try $0!.get() }
    }

    /// Visits both tensors' values in aligned windows of rows, decoded to float.
    private func windows(_ x: TensorEntry, _ y: TensorEntry, _ tensorA: ModelTensor, _ tensorB: ModelTensor,
                         _ body: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>) -> Void) throws {
        let columns = x.columnCount
        let rows = columns == 0 ? 0 : Int(x.elementCount) / columns
        let window = max(1, 65_536 / max(columns, 1))
        var valuesA = [Float](repeating: 0, count: min(window, rows) * columns), valuesB = valuesA
        try tensorA.withRows { rowsA in
            try tensorB.withRows { rowsB in
                // Released every 16 MiB of rows read, not every window: a release costs the
                // pages of a folio around it (`MappedFile.release`).
                let stride = max(window, (16 << 20) / max(tensorA.rowByteCount, 1))
                var start = 0, released = 0
                while start < rows {
                    let count = min(window, rows - start)
                    valuesA.withUnsafeMutableBufferPointer { va in
                        valuesB.withUnsafeMutableBufferPointer { vb in
                            for r in 0..<count {
                                RowCodec.decodeRow(rowsA.row(start + r), dtype: x.dtype, columns: columns, into: va.baseAddress! + r * columns)
                                RowCodec.decodeRow(rowsB.row(start + r), dtype: y.dtype, columns: columns, into: vb.baseAddress! + r * columns)
                            }
                            body(UnsafeBufferPointer(rebasing: va[..<(count * columns)]), UnsafeBufferPointer(rebasing: vb[..<(count * columns)]))
                        }
                    }
                    start += count
                    if start - released >= stride || start == rows {
                        tensorA.releasePages(rows: released..<start)
                        tensorB.releasePages(rows: released..<start)
                        released = start
                    }
                }
            }
        }
    }

    /// A tensor compared element by element, in order (its rows line up on both sides).
    private func tensorPartial(_ x: TensorEntry, _ y: TensorEntry, _ a: DiffSide, _ b: DiffSide) throws -> TensorPartial {
        var result = TensorPartial(name: x.name)
        guard x.shape == y.shape else { return result }
        let tensorA = a.tensor(x), tensorB = b.tensor(y)
        defer {
            tensorA.releasePages()
            tensorB.releasePages()
        }
        if !x.dtype.isFloatingPoint || !y.dtype.isFloatingPoint {
            // Keys, counts, the step: how many elements differ.
            guard x.dtype == y.dtype, let width = x.dtype.elementByteCount, width > 0 else {
                result.same = false
                return result
            }
            let changed = try Self.differingElements(tensorA, tensorB, width: width)
            result.changedElements = changed
            result.same = changed == 0
            if x.elementCount == 1, width == 8 {
                result.values = try [tensorA, tensorB].map { tensor in
                    try tensor.withBytes { x.dtype == .uint64 ? String($0.loadUnaligned(as: UInt64.self)) : String($0.loadUnaligned(as: Int64.self)) }
                }
            }
            return result
        }
        defer { Progress.advance(Int(x.storedByteCount + y.storedByteCount)) }
        var sums = DifferenceSums()
        try windows(x, y, tensorA, tensorB) { va, vb in sums.add(va, vb, tolerance) }
        result.sums = sums
        return result
    }

    /// How many `width`-byte elements of two tensors of one shape differ, in windows of rows
    /// whose pages are released behind.
    private static func differingElements(_ a: ModelTensor, _ b: ModelTensor, width: Int) throws -> UInt64 {
        try a.withRows { p in
            try b.withRows { q in
                var changed: UInt64 = 0
                let perRow = p.rowByteCount / width, window = 1 << 16
                for start in stride(from: 0, to: p.count, by: window) {
                    let rows = start..<min(start + window, p.count)
                    for row in rows {
                        let x = p.row(row), y = q.row(row)
                        guard memcmp(x, y, p.rowByteCount) != 0 else { continue }
                        for element in 0..<perRow where memcmp(x + element * width, y + element * width, width) != 0 { changed += 1 }
                    }
                    a.releasePages(rows: rows)
                    b.releasePages(rows: rows)
                }
                return changed
            }
        }
    }

    /// Running sums of an element-wise comparison (in double, per window). Sums of parts of a
    /// tensor merge (`merged`) in the parts' order.
    struct DifferenceSums: Codable, Sendable {
        var maxDifference = 0.0, differenceNorm = 0.0, normA = 0.0, normB = 0.0, dot = 0.0
        var beyond = 0, total = 0
        var nonFiniteA: UInt64 = 0, nonFiniteB: UInt64 = 0

        mutating func add(_ va: UnsafeBufferPointer<Float>, _ vb: UnsafeBufferPointer<Float>, _ tolerance: DiffTolerance) {
            // The usual case first, without a branch per element; the norms (in double, so
            // finite for any finite float32) are finite exactly when every value was. A window
            // holding NaN or Inf is done again, element by element, from the totals before it.
            var fast = self
            for i in 0..<va.count {
                let p = Double(va[i]), q = Double(vb[i])
                let d = q - p
                fast.maxDifference = max(fast.maxDifference, abs(d))
                fast.differenceNorm += d * d
                fast.normA += p * p
                fast.normB += q * q
                fast.dot += p * q
                if tolerance.differs(va[i], vb[i]) { fast.beyond += 1 }
            }
            fast.total += va.count
            if fast.normA.isFinite && fast.normB.isFinite {
                self = fast
                return
            }
            for i in 0..<va.count {
                if !va[i].isFinite || !vb[i].isFinite {
                    // Counted, and kept out of the sums, which would all become NaN.
                    if !va[i].isFinite { nonFiniteA += 1 }
                    if !vb[i].isFinite { nonFiniteB += 1 }
                    if tolerance.differs(va[i], vb[i]) { beyond += 1 }
                    continue
                }
                let p = Double(va[i]), q = Double(vb[i])
                let d = q - p
                maxDifference = max(maxDifference, abs(d))
                differenceNorm += d * d
                normA += p * p
                normB += q * q
                dot += p * q
                if tolerance.differs(va[i], vb[i]) { beyond += 1 }
            }
            total += va.count
        }

        /// These sums followed by `later`'s.
        func merged(_ later: DifferenceSums) -> DifferenceSums {
            DifferenceSums(maxDifference: max(maxDifference, later.maxDifference), differenceNorm: differenceNorm + later.differenceNorm,
                           normA: normA + later.normA, normB: normB + later.normB, dot: dot + later.dot, beyond: beyond + later.beyond,
                           total: total + later.total, nonFiniteA: nonFiniteA + later.nonFiniteA, nonFiniteB: nonFiniteB + later.nonFiniteB)
        }

        func fill(_ result: inout TensorComparison) {
            result.maxAbsoluteDifference = maxDifference
            result.relativeL2Change = normA == 0 ? (differenceNorm == 0 ? 0 : .infinity) : (differenceNorm / normA).squareRoot()
            result.cosineSimilarity = normA == 0 || normB == 0 ? (normA == normB ? 1 : 0) : dot / (normA.squareRoot() * normB.squareRoot())
            result.fractionBeyondTolerance = total == 0 ? 0 : Double(beyond) / Double(total)
            result.nonFiniteA = nonFiniteA
            result.nonFiniteB = nonFiniteB
            result.equal = beyond == 0 && nonFiniteA == 0 && nonFiniteB == 0
        }
    }

    /// The value of rank `rank` (0-based) in ascending order: quickselect, O(n) expected, where
    /// a full sort of millions of per-row changes cost more than the comparison itself.
    static func select(_ values: inout [Float], rank: Int) -> Float {
        values.withUnsafeMutableBufferPointer { v in
            var low = 0, high = v.count - 1
            while low < high {
                let pivot = v[(low + high) / 2]
                var i = low, j = high
                while i <= j {
                    while v[i] < pivot { i += 1 }
                    while v[j] > pivot { j -= 1 }
                    if i <= j {
                        v.swapAt(i, j)
                        i += 1
                        j -= 1
                    }
                }
                if rank <= j { high = j } else if rank >= i { low = i } else { return v[rank] }
            }
            return v[rank]
        }
    }

    /// The table row by row (keyed by feature id), and from the same pass the figures of its
    /// tensor over the rows both hold.
    ///
    /// - Complexity: one pass over both tables in row order of A, pages released behind it.
    ///   Memory bounded whatever the tables' sizes: keys are matched by a partitioned hash join
    ///   (`KeyJoin`), the quantiles and the top rows kept in bounded memory (`QuantileSketch`,
    ///   `TopValues`).
    private func compareTable(_ fieldA: Architecture.Field, _ fieldB: Architecture.Field, _ a: DiffSide, _ b: DiffSide) throws -> TablePartial {
        guard fieldA.mapping == .keyed && fieldB.mapping == .keyed else {
            // Rows by number: a shard's rows are the same rows of both (the models are split alike).
            let rowsB = b.tensor(.embedding(fieldB.name)).rowCount, firstRow = a.firstRow(of: fieldA.name), firstRowB = b.firstRow(of: fieldB.name)
            return try compareRows(fieldA, fieldB, a, b, keyed: false, id: { UInt64(firstRow + $0) }, idOfB: { UInt64(firstRowB + $0) }) { rows, matched in
                for (i, row) in rows.enumerated() { matched[i] = row < rowsB ? Int32(row) : -1 }
            }
        }
        let keysA = a.tensor(.keys(fieldA.name)), keysB = b.tensor(.keys(fieldB.name))
        return try keysA.withRows { rowsOfA in
            try keysB.withRows { rowsOfB in
                // The join finds keys repeated in B; a key repeated in A would match two rows of A to
                // one of B and miscount them, so A's keys are checked too: on another thread, beside
                // the join (both only read the keys; a page one releases the other reads back).
                let duplicateInA = WorkResults<UInt64?>(count: 1)
                let checked = DispatchGroup()
                DispatchQueue.global().async(group: checked) {
                    duplicateInA.set(0, KeyJoin.duplicateKey(in: KeyColumn(rowsOfA)) { keysA.releasePages(rows: $0) })
                }
                defer { checked.wait() }
                let join: KeyJoin
                do {
                    join = try KeyJoin(keysA: KeyColumn(rowsOfA), keysB: KeyColumn(rowsOfB), tensorB: keysB.name) { table, rows in
                        (table == 0 ? keysA : keysB).releasePages(rows: rows)
                    }
                } catch let error as MTLModelError {
                    throw error.inFile(b.path)
                }
                checked.wait()
                if let duplicate = duplicateInA.all[0] ?? nil {
                    throw MTLModelError(.malformed, "duplicate key \(duplicate): a keyed table maps each id to one row (run mtl-model verify)",
                                        file: a.path, location: .init(tensor: keysA.name))
                }
                let keysOfA = KeyColumn(rowsOfA), keysOfB = KeyColumn(rowsOfB)
                return try compareRows(fieldA, fieldB, a, b, keyed: true, id: { keysOfA[$0] }, idOfB: { keysOfB[$0] }) { rows, matched in
                    for (i, row) in rows.enumerated() { matched[i] = join[row] }
                    join.release(rows)
                }
            }
        }
    }

    /// - Parameter match: writes for each row of A in the range its row in B (−1: none). Called
    ///   for a block of rows before they are compared, so that the lookups' cache misses overlap.
    private func compareRows(_ fieldA: Architecture.Field, _ fieldB: Architecture.Field, _ a: DiffSide, _ b: DiffSide, keyed: Bool,
                             id: (Int) -> UInt64, idOfB: (Int) -> UInt64, match: (Range<Int>, inout [Int32]) -> Void) throws -> TablePartial {
        let tableA = a.tensor(.embedding(fieldA.name)), tableB = b.tensor(.embedding(fieldB.name))
        let name = tableA.name
        let x = tableA.entry, y = tableB.entry
        let k = x.columnCount
        let rowCountA = tableA.rowCount
        var result = TablePartial(field: fieldA.name, keyed: keyed, rowsA: rowCountA, rowsB: tableB.rowCount, top: TopValues(limit: topRowCount ?? 0))
        let keysOfA = keyed ? a.tensor(.keys(fieldA.name)) : nil
        // A keyed table's other tensors (keys, first-order weights, training state) are rows of
        // the same ids: compared through the same match, not by position (a sharded model
        // holds its rows in bucket order).
        var owned: [UnsafeMutableRawBufferPointer] = []
        defer { owned.forEach { $0.deallocate() } }
        var others = keyed ? try RowsOfId.all(of: fieldA.name, a, b, except: name, owned: &owned) : []
        // Training frequency of A's rows (`stats.{field}.count`), when both models count rows.
        let countsName = TensorName.rowCount(fieldA.name).description
        var frequency = FrequencyBins()
        let countsOfA = a.tensors.contains(where: { $0.name == countsName }) && b.tensors.contains(where: { $0.name == countsName })
            ? a.tensor(.rowCount(fieldA.name)) : nil
        let counts = try countsOfA?.rows(owned: &owned)
        // Per-row relative change ‖b − a‖ / ‖a‖ of the rows both hold.
        var changes = QuantileSketch()
        var top = result.top
        var kernelSums = mtlm_diff_sums()
        var rowA = [Float](repeating: 0, count: k), rowB = [Float](repeating: 0, count: k)
        // Rows of A in windows; when the rows of B they match are spread over B (another order:
        // a sharded model, a trainer's), B's rows of the window are gathered in B's order first
        // (`RowGather`): random reads of a table larger than memory would keep it resident.
        let widest = ([tableB.rowByteCount] + others.map(\.rowsB.rowByteCount)).max()!
        let window = min(max(1, rowCountA), max(4096, min(1 << 18, (32 << 20) / max(widest, 1))))
        var matched = [Int32](repeating: -1, count: window)
        // What a window of rows reads of both models, for the progress bar.
        let bytesPerRow = tableA.rowByteCount + tableB.rowByteCount + others.reduce(0) { $0 + $1.rowsA.rowByteCount + $1.rowsB.rowByteCount }
        var gather = RowGather(sourceRowCount: tableB.rowCount, capacity: window)
        let gatheredB = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, window * tableB.rowByteCount), alignment: 16)
        owned.append(gatheredB)
        for index in others.indices {
            others[index].gathered = .allocate(byteCount: max(1, window * others[index].rowsB.rowByteCount), alignment: 16)
            owned.append(others[index].gathered!)
        }
        func decoded(_ row: UnsafeRawPointer, _ dtype: DType, _ columns: Int, _ into: UnsafeMutableBufferPointer<Float>) -> UnsafeMutablePointer<Float> {
            RowCodec.decodeRow(row, dtype: dtype, columns: columns, into: into.baseAddress!)
            return into.baseAddress!
        }
        // Pages are released every 65,536 rows of A (a window holds up to four such steps):
        // A's rows done (with their keys and training counts), and B's rows of the window when
        // they were read in place.
        let release = 1 << 16
        func releasePages(_ rowsOfA: Range<Int>, _ rowsOfB: Range<Int>?) {
            tableA.releasePages(rows: rowsOfA)
            keysOfA?.releasePages(rows: rowsOfA)
            countsOfA?.releasePages(rows: rowsOfA)
            others.forEach { $0.releasePages() }
            if let rowsOfB { tableB.releasePages(rows: rowsOfB) }
        }
        var nonFiniteA: UInt64 = 0, nonFiniteB: UInt64 = 0
        // With --rows: which rows of B were matched, a bit each, for the first rows added.
        var matchedB = topRowCount == nil ? [] : [UInt64](repeating: 0, count: (tableB.rowCount + 63) / 64)
        try tableA.withRows { rowsA in
            try tableB.withRows { rowsB in
                rowA.withUnsafeMutableBufferPointer { va in
                    rowB.withUnsafeMutableBufferPointer { vb in
                        for start in stride(from: 0, to: rowCountA, by: window) {
                            let end = min(start + window, rowCountA)
                            match(start..<end, &matched)
                            var low = Int.max, high = -1
                            for slot in 0..<(end - start) where matched[slot] >= 0 {
                                low = min(low, Int(matched[slot]))
                                high = max(high, Int(matched[slot]))
                            }
                            let gathered = high >= low && high - low >= 4 * window
                            if gathered {
                                gather.gather(count: end - start, row: { Int(matched[$0]) }, from: rowsB, into: gatheredB.baseAddress!) {
                                    tableB.releasePages(rows: $0)
                                }
                                for index in others.indices { others[index].gatherB(&gather, matched, count: end - start) }
                            }
                            for ra in start..<end {
                                if (ra - start) % release == 0 && ra > start {
                                    releasePages(ra - release..<ra, gathered ? nil : low..<(high + 1))
                                }
                                let slot = ra - start, rb = Int(matched[slot])
                                guard rb >= 0 else {
                                    if let limit = topRowCount, result.removedIDs.count < limit { result.removedIDs.append(id(ra)) }
                                    continue
                                }
                                if !matchedB.isEmpty { matchedB[rb >> 6] |= 1 << UInt64(rb & 63) }
                                let rowOfB = gathered ? UnsafeRawPointer(gatheredB.baseAddress! + slot * rowsB.rowByteCount) : rowsB.row(rb)
                                // float32 rows are compared where they are mapped; others decoded first.
                                let pa = x.dtype == .float32 ? rowsA.row(ra).assumingMemoryBound(to: Float.self)
                                    : UnsafePointer(decoded(rowsA.row(ra), x.dtype, k, va))
                                let pb = y.dtype == .float32 ? rowOfB.assumingMemoryBound(to: Float.self)
                                    : UnsafePointer(decoded(rowOfB, y.dtype, k, vb))
                                for index in others.indices {
                                    others[index].add(ra, others[index].rowOfB(rb, slot: gathered ? slot : nil), tolerance)
                                }
                                var d2: Float = 0, n2: Float = 0
                                var rowSums = mtlm_diff_sums()
                                var differs = mtlm_compare_row(pa, pb, k, Float(tolerance.absolute), Float(tolerance.relative), &d2, &n2, &rowSums) != 0
                                var change: Float
                                // The row's sums of squares (in double, so finite for any finite float32)
                                // are finite exactly when both rows are: the usual case costs no extra pass.
                                if rowSums.a2.isFinite && rowSums.b2.isFinite {
                                    kernelSums.max_abs = max(kernelSums.max_abs, rowSums.max_abs)
                                    kernelSums.d2 += rowSums.d2
                                    kernelSums.a2 += rowSums.a2
                                    kernelSums.b2 += rowSums.b2
                                    kernelSums.dot += rowSums.dot
                                    kernelSums.beyond += rowSums.beyond
                                    change = n2 == 0 ? (d2 == 0 ? 0 : Float.infinity) : (d2 / n2).squareRoot()
                                } else {
                                    let badA = (0..<k).reduce(0) { $0 + (pa[$1].isFinite ? 0 : 1) }, badB = (0..<k).reduce(0) { $0 + (pb[$1].isFinite ? 0 : 1) }
                                    // NaN / Inf: kept out of the sums (they would all be NaN); the row
                                    // changed when any element differs (bits, for non-finite ones).
                                    nonFiniteA += UInt64(badA)
                                    nonFiniteB += UInt64(badB)
                                    differs = (0..<k).contains { tolerance.differs(pa[$0], pb[$0]) }
                                    change = differs ? .infinity : 0
                                    kernelSums.beyond += UInt64((0..<k).filter { tolerance.differs(pa[$0], pb[$0]) }.count)
                                }
                                changes.add(change)
                                if let counts { frequency.add(count: counts.row(ra).loadUnaligned(as: Int64.self), change: change) }
                                if topRowCount != nil { top.add(id: id(ra), change) }
                                if differs { result.changed += 1 } else { result.unchanged += 1 }
                            }
                            // Done with these rows of A (and their keys), and with the rows of B they
                            // matched. Releasing is only a hint: a row needed again is read back from
                            // the page cache, so a wrong guess costs time, never correctness.
                            releasePages(start + (end - start - 1) / release * release..<end, gathered || high < low ? nil : low..<(high + 1))
                            Progress.advance((end - start) * bytesPerRow)
                        }
                    }
                }
            }
        }
        tableA.releasePages()
        tableB.releasePages()
        countsOfA?.releasePages()
        // Over the rows both hold, matched by id (the order of a keyed table's rows carries no
        // meaning: its keys do).
        let sums = x.shape.dropFirst() == y.shape.dropFirst()
            ? DifferenceSums(maxDifference: kernelSums.max_abs, differenceNorm: kernelSums.d2, normA: kernelSums.a2, normB: kernelSums.b2,
                             dot: kernelSums.dot, beyond: Int(kernelSums.beyond), total: changes.count * k,
                             nonFiniteA: nonFiniteA, nonFiniteB: nonFiniteB)
            : nil
        result.changes = changes
        result.top = top
        result.frequency = counts == nil ? nil : frequency
        if let limit = topRowCount {
            var rb = 0
            while rb < tableB.rowCount && result.addedIDs.count < limit {
                if matchedB[rb >> 6] & (1 << UInt64(rb & 63)) == 0 { result.addedIDs.append(idOfB(rb)) }
                rb += 1
            }
        }
        result.tensors = [TensorPartial(name: name, sums: sums)] + others.map(\.partial)
        return result
    }
}

/// One tensor of a keyed field other than its embedding (keys, `linear.{f}.weight`, optimizer
/// slots, row counts), compared row by row through the match of ids that the table comparison
/// makes: floats by the same sums as any tensor, integers (keys, counts) row for row.
private struct RowsOfId {
    let x: TensorEntry, y: TensorEntry
    let tensorA: ModelTensor, tensorB: ModelTensor
    let rowsA: TensorRows, rowsB: TensorRows
    let columns: Int
    var sums = ModelDiff.DifferenceSums()
    var differingRows = 0
    var valuesA: [Float], valuesB: [Float]

    /// Every such tensor both models hold with the same trailing shape and kind of dtype.
    static func all(of field: String, _ a: DiffSide, _ b: DiffSide, except embedding: String,
                    owned: inout [UnsafeMutableRawBufferPointer]) throws -> [RowsOfId] {
        let entriesB = Dictionary(b.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var result: [RowsOfId] = []
        for x in a.tensors where TensorName(x.name)?.tableField == field && x.name != embedding {
            guard let y = entriesB[x.name], x.shape.dropFirst() == y.shape.dropFirst(), x.dtype.isFloatingPoint == y.dtype.isFloatingPoint else { continue }
            let tensorA = a.tensor(x), tensorB = b.tensor(y)
            func rows(_ tensor: ModelTensor) throws -> TensorRows { try tensor.rows(owned: &owned) }
            // Elements of one row: 1 for a tensor of one value per id (keys, counts), whose
            // `columnCount` (its last dimension) is the row count.
            let columns = Int(x.shape.dropFirst().reduce(1, *))
            result.append(RowsOfId(x: x, y: y, tensorA: tensorA, tensorB: tensorB, rowsA: try rows(tensorA), rowsB: try rows(tensorB),
                                   columns: columns, valuesA: Array(repeating: 0, count: columns),
                                   valuesB: Array(repeating: 0, count: columns)))
        }
        return result
    }

    /// B's rows of the current window in the window's order, when they were gathered.
    var gathered: UnsafeMutableRawBufferPointer?

    /// Gathers B's rows `matched[..<count]` into `gathered` (see `compareRows`).
    mutating func gatherB(_ gather: inout RowGather, _ matched: [Int32], count: Int) {
        let tensor = tensorB
        gather.gather(count: count, row: { Int(matched[$0]) }, from: rowsB, into: gathered!.baseAddress!) { tensor.releasePages(rows: $0) }
    }

    /// Row `rb` of B, or slot `slot` of the gathered window.
    func rowOfB(_ rb: Int, slot: Int?) -> UnsafeRawPointer {
        guard let slot else { return rowsB.row(rb) }
        return UnsafeRawPointer(gathered!.baseAddress! + slot * rowsB.rowByteCount)
    }

    mutating func add(_ ra: Int, _ rowB: UnsafeRawPointer, _ tolerance: DiffTolerance) {
        guard x.dtype.isFloatingPoint else {
            if x.dtype != y.dtype || memcmp(rowsA.row(ra), rowB, rowsA.rowByteCount) != 0 { differingRows += 1 }
            return
        }
        let (rowA, columns, dtypeA, dtypeB) = (rowsA.row(ra), columns, x.dtype, y.dtype)
        valuesA.withUnsafeMutableBufferPointer { va in
            valuesB.withUnsafeMutableBufferPointer { vb in
                RowCodec.decodeRow(rowA, dtype: dtypeA, columns: columns, into: va.baseAddress!)
                RowCodec.decodeRow(rowB, dtype: dtypeB, columns: columns, into: vb.baseAddress!)
                sums.add(UnsafeBufferPointer(va), UnsafeBufferPointer(vb), tolerance)
            }
        }
    }

    func releasePages() {
        tensorA.releasePages()
        tensorB.releasePages()
    }

    /// What the rows compared add up to.
    var partial: TensorPartial {
        x.dtype.isFloatingPoint ? TensorPartial(name: x.name, sums: sums)
            : TensorPartial(name: x.name, same: x.dtype == y.dtype && differingRows == 0,
                            changedElements: x.dtype == y.dtype && columns == 1 ? UInt64(differingRows) : nil)
    }
}

extension ModelTensor {
    /// The rows of every part, mapped or inflated into `owned` (freed by the caller).
    func rows(owned: inout [UnsafeMutableRawBufferPointer]) throws -> TensorRows {
        TensorRows(parts: try parts.map { ($0.firstRow, try $0.tensor.storedOrInflated(into: &owned)) }, rowByteCount: rowByteCount, count: rowCount)
    }
}
