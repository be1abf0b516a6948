/// One side of a comparison: a whole model, or the rows one of its shards holds (the shard's
/// table tensors, their rows numbered from the shard's first).
struct DiffSide {
    let model: Model
    /// 0-based; nil: the whole model.
    let shard: Int?

    init(_ model: Model, shard: Int? = nil) {
        self.model = model
        self.shard = shard
    }

    var path: String { shard.map { model.shards[$0].path } ?? model.path }
    /// The tensors compared on this side: a shard's own (its tables' rows), or the whole model's.
    var tensors: [TensorEntry] { shard.map { model.shards[$0].tensors } ?? model.tensors }

    func tensor(_ name: TensorName) -> ModelTensor {
        guard let shard else { return model.tensor(name) }
        let file = model.shards[shard]
        return ModelTensor(entry: file.entry(named: name.description)!, file: file)
    }

    func tensor(_ entry: TensorEntry) -> ModelTensor {
        guard let shard else { return model.tensor(entry) }
        return ModelTensor(entry: entry, file: model.shards[shard])
    }

    /// The row of the whole table that row 0 of this side's `field` is.
    func firstRow(of field: String) -> Int {
        guard let shard, let part = model.file.manifest.shards?.files[shard].parts.first(where: { $0.field == field }) else { return 0 }
        return Int(part.firstRow)
    }
}

/// One tensor compared over some of its rows: what adds up, exactly, over the parts of a
/// table (a shard's rows each) into the tensor's figures.
struct TensorPartial: Codable, Sendable {
    var name: String
    /// Float tensors: the running sums (nil when the two sides' rows do not line up).
    var sums: ModelDiff.DifferenceSums?
    /// Integer tensors (keys, counts, the step): whether every row is the same, dtype included.
    var same: Bool?
    /// Integer tensors: how many elements differ, where counted.
    var changedElements: UInt64?
    /// A scalar integer tensor's value in each model.
    var values: [String]?

    mutating func merge(_ other: TensorPartial) {
        sums = sums.flatMap { mine in other.sums.map { mine.merged($0) } }
        same = same.flatMap { mine in other.same.map { mine && $0 } }
        changedElements = changedElements.flatMap { mine in other.changedElements.map { mine + $0 } }
    }

    /// The tensor's figures, with the two models' whole entries (dtype, shape); `addedOrRemoved`:
    /// its table gained or lost rows, so it is not equal whatever the rows both hold.
    func comparison(_ x: TensorEntry, _ y: TensorEntry, addedOrRemoved: Bool) -> TensorComparison {
        var result = TensorComparison(name: x.name, dtypeA: x.dtype, dtypeB: y.dtype, shapeA: x.shape, shapeB: y.shape,
                                      sameShape: x.shape == y.shape, quantizationError: x.dtype != y.dtype, equal: false)
        guard result.sameShape else { return result }
        if let sums {
            sums.fill(&result)
            if addedOrRemoved { result.equal = false }
        } else {
            result.equal = same == true && !addedOrRemoved
            result.fractionBeyondTolerance = result.equal ? 0 : nil
            result.changedElementCount = changedElements
            (result.valueA, result.valueB) = (values?.first, values?.last)
        }
        return result
    }
}

/// An embedding table compared row by row over some of its rows (one shard's, or all), with
/// the tensors of its field compared through the same match of ids: everything merges into
/// the figures of the whole table (`merge`, then `comparison`) — the quantiles through the
/// sketch, the most changed rows exactly.
struct TablePartial: Codable, Sendable {
    var field: String
    var keyed: Bool
    var rowsA: Int
    var rowsB: Int
    var changed = 0
    var unchanged = 0
    var changes = QuantileSketch()
    var top: TopValues
    /// The embedding first, then (keyed fields) the field's other tensors.
    var tensors: [TensorPartial] = []
    /// The change of rows by A's row count (`TableComparison.changeByFrequency`).
    var frequency: FrequencyBins?
    /// With `rows`: the first ids added in B and removed from A (as many as the top lists).
    var addedIDs: [UInt64] = []
    var removedIDs: [UInt64] = []

    /// Adds the rows of `later` (the next shard's).
    mutating func merge(_ later: TablePartial) {
        rowsA += later.rowsA
        rowsB += later.rowsB
        changed += later.changed
        unchanged += later.unchanged
        changes.merge(later.changes)
        top.merge(later.top)
        if let later = later.frequency { frequency?.merge(later) }
        addedIDs = Array((addedIDs + later.addedIDs).prefix(top.limit))
        removedIDs = Array((removedIDs + later.removedIDs).prefix(top.limit))
        for index in tensors.indices where index < later.tensors.count { tensors[index].merge(later.tensors[index]) }
    }

    /// The 0-based rank of quantile `q` among `count` values (the nearest rank above).
    private static func rank(_ q: Double, of count: Int) -> Int {
        q == 0.5 ? (count - 1) / 2 : min(count - 1, Int((Double(count - 1) * q).rounded(.up)))
    }

    /// The table's figures, and its tensors' (whole entries of each model by name).
    func comparison(entriesA: [String: TensorEntry], entriesB: [String: TensorEntry], listsTop: Bool) -> (TableComparison, [TensorComparison]) {
        let common = changes.count
        var result = TableComparison(field: field, keyed: keyed, rowsA: rowsA, rowsB: rowsB, added: rowsB - common, removed: rowsA - common,
                                     changed: changed, unchanged: unchanged)
        if common > 0 {
            result.p50RelativeChange = Double(changes.value(atRank: Self.rank(0.5, of: common)))
            result.p99RelativeChange = Double(changes.value(atRank: Self.rank(0.99, of: common)))
            result.maxRelativeChange = Double(changes.maximum)
            let zeros = changes.zeroCount
            if common > zeros {
                result.p50ChangedRelativeChange = Double(changes.value(atRank: zeros + Self.rank(0.5, of: common - zeros)))
                result.p99ChangedRelativeChange = Double(changes.value(atRank: zeros + Self.rank(0.99, of: common - zeros)))
            }
            result.changeHistogram = changes.counts(below: [Float.leastNonzeroMagnitude] + TableComparison.changeHistogramEdges)
        }
        if listsTop {
            result.topChanged = top.entries.map { TableComparison.Row(id: $0.id, relativeChange: Double($0.value)) }
            result.addedIDs = addedIDs.map(String.init)
            result.removedIDs = removedIDs.map(String.init)
        }
        result.changeByFrequency = frequency?.bins
        let addedOrRemoved = result.added + result.removed > 0
        let tensors = self.tensors.compactMap { partial in
            entriesA[partial.name].flatMap { x in entriesB[partial.name].map { partial.comparison(x, $0, addedOrRemoved: addedOrRemoved) } }
        }
        return (result, tensors)
    }
}

/// What one shard pair of two models split alike contributes to their diff: its tables, and
/// its other table tensors (a direct or modulo field's first-order weights, training state).
public struct ShardDiff: Codable, Sendable {
    var tables: [TablePartial]
    var tensors: [TensorPartial]

    /// Adds the next shard's.
    mutating func merge(_ later: ShardDiff) {
        for index in tables.indices where index < later.tables.count { tables[index].merge(later.tables[index]) }
        for index in tensors.indices where index < later.tensors.count { tensors[index].merge(later.tensors[index]) }
    }
}

/// Rows binned by their training count (0, 1, 2–3, 4–7, …): how many, and the sum of their
/// finite relative changes. Sums merge exactly.
struct FrequencyBins: Codable, Sendable {
    var rows = [Int](repeating: 0, count: 64)
    var finiteRows = [Int](repeating: 0, count: 64)
    var sums = [Double](repeating: 0, count: 64)

    mutating func add(count: Int64, change: Float) {
        let bin = count <= 0 ? 0 : min(63, 1 + (63 - count.leadingZeroBitCount))
        rows[bin] += 1
        if change.isFinite {
            finiteRows[bin] += 1
            sums[bin] += Double(change)
        }
    }

    mutating func merge(_ other: FrequencyBins) {
        for bin in rows.indices {
            rows[bin] += other.rows[bin]
            finiteRows[bin] += other.finiteRows[bin]
            sums[bin] += other.sums[bin]
        }
    }

    /// The bins that hold rows.
    var bins: [TableComparison.FrequencyBin] {
        rows.indices.filter { rows[$0] > 0 }.map { bin in
            let low: Int64 = bin == 0 ? 0 : 1 << (bin - 1), high: Int64 = bin == 0 ? 0 : (bin == 63 ? .max : (1 << bin) - 1)
            return .init(minCount: low, maxCount: high, rows: rows[bin],
                         meanRelativeChange: finiteRows[bin] == 0 ? nil : sums[bin] / Double(finiteRows[bin]))
        }
    }
}
