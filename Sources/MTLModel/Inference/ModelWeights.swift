/// The weights of a model in the form the forward pass uses: float pointers into the mapped
/// file where the tensor is stored as uncompressed float32 (zero copy), owned copies
/// otherwise, keyed indexes, and prepared dense layers.
final class ModelWeights: @unchecked Sendable {
    /// A table used where it is stored: rows of any dtype, decoded as they are read.
    struct TableView {
        var base: UnsafeRawPointer
        var dtype: DType
        var rowByteCount: Int
        var columns: Int

        @inline(__always)
        func row(_ index: Int) -> UnsafeRawPointer { base + index * rowByteCount }
    }

    struct FieldWeights {
        var rowCount: Int
        var mapping: Architecture.Mapping
        var combiner: Architecture.Combiner
        var group: Int
        var embedding: TableView
        var linear: TableView?
        var keys: KeyedIndex?

        /// The row of `id`, or -1 when out of vocabulary.
        @inline(__always)
        func row(of id: UInt64) -> Int {
            switch mapping {
            case .direct: return id < UInt64(rowCount) ? Int(id) : -1
            case .modulo: return Int(id % UInt64(rowCount))
            case .keyed: return keys!.row(of: id)
            }
        }
    }

    struct TaskWeights {
        var tower: [PreparedDenseLayer]
        var head: [Float]
        var headBias: Float
        var useLinear: Bool
        var logitOffset: Float
    }

    let model: ModelFile  // keeps the mapping alive
    let architecture: Architecture
    let k: Int
    let fields: [FieldWeights]
    let linearBias: Float
    /// Pairs (a, b, weight) of the field-wise bi-interaction.
    let pairs: [(Int, Int, Float)]
    let intraWeights: [Float]?
    let fieldBias: [Float]?
    let shared: [PreparedDenseLayer]
    let tasks: [TaskWeights]
    /// Width of the bottom input z, and of the shared output the towers take.
    let bottomWidth: Int
    let towerInputWidth: Int
    private var owned: [UnsafeMutableBufferPointer<Float>] = []
    private var ownedRaw: [UnsafeMutableRawBufferPointer] = []

    init(_ model: ModelFile) throws {
        self.model = model
        try model.requireModel()
        let arch = model.architecture
        architecture = arch
        k = arch.embeddingDim
        // Only the serving tensors matter here: training state is neither needed nor checked.
        let servingNames = Set(arch.servingTensors.map(\.name))
        let problems = ModelVerifier().structureProblems(model.manifest).filter { $0.tensor.map(servingNames.contains) ?? true }
        if let problem = problems.first {
            throw MTLModelError(.malformed, problem.message, file: model.path, location: .init(tensor: problem.tensor))
        }
        var owned: [UnsafeMutableBufferPointer<Float>] = []
        var ownedRaw: [UnsafeMutableRawBufferPointer] = []
        func floats(_ name: String) throws -> UnsafeBufferPointer<Float> {
            let entry = model.entry(named: name)!
            if entry.dtype == .float32, entry.compression == .none {
                return try model.withElements(of: name, as: Float.self) { $0 }  // the mapping outlives self
            }
            let values = try model.floats(name)
            let copy = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
            _ = copy.initialize(from: values)
            owned.append(copy)
            return UnsafeBufferPointer(copy)
        }
        func array(_ name: String) throws -> [Float] { Array(try floats(name)) }
        /// A table in its stored dtype: mapped when uncompressed, else an owned copy.
        func table(_ name: String) throws -> TableView {
            let entry = model.entry(named: name)!
            let columns = entry.columnCount
            let rowBytes = Int(entry.dtype.rowByteCount(columns: UInt64(columns)))
            if let mapped = try model.mappedBytes(of: name) {
                return TableView(base: mapped.baseAddress!, dtype: entry.dtype, rowByteCount: rowBytes, columns: columns)
            }
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(Int(entry.byteCount), 1), alignment: 64)
            try model.withTensorBytes(name) { copy.copyMemory(from: $0) }
            ownedRaw.append(copy)
            return TableView(base: UnsafeRawPointer(copy.baseAddress!), dtype: entry.dtype, rowByteCount: rowBytes, columns: columns)
        }

        var fields: [FieldWeights] = []
        for field in arch.fields {
            var keys: KeyedIndex?
            if field.mapping == .keyed {
                keys = try model.withTensorBytes("embedding.\(field.name).keys") { raw in
                    try KeyedIndex(keys: raw, tensor: "embedding.\(field.name).keys")
                }
            }
            fields.append(FieldWeights(rowCount: field.vocabSize, mapping: field.mapping, combiner: field.combiner, group: field.group,
                                       embedding: try table("embedding.\(field.name).weight"),
                                       linear: arch.linear ? try table("linear.\(field.name).weight") : nil,
                                       keys: keys))
        }
        self.fields = fields
        linearBias = arch.linear ? try array("linear.bias")[0] : 0
        let pairWeights = try array("interaction.pair_weight")
        var pairs: [(Int, Int, Float)] = []
        for a in 0..<arch.groupCount {
            for b in (a + 1)..<max(a + 1, arch.groupCount) { pairs.append((a, b, pairWeights[pairs.count])) }
        }
        self.pairs = pairs
        intraWeights = arch.interaction.intra ? try array("interaction.intra_weight") : nil
        fieldBias = arch.interaction.fieldBias ? try array("interaction.field_bias") : nil

        func dense(_ layers: [Architecture.DenseLayer], prefix: String, input: inout Int) throws -> [PreparedDenseLayer] {
            var prepared: [PreparedDenseLayer] = []
            for (index, layer) in layers.enumerated() {
                let name = "\(prefix).\(index)"
                var bn: (weight: [Float], bias: [Float], mean: [Float], variance: [Float], eps: Double)?
                if layer.batchNorm {
                    bn = (try array("\(name).bn.weight"), try array("\(name).bn.bias"), try array("\(name).bn.running_mean"),
                          try array("\(name).bn.running_var"), arch.bnEps)
                }
                prepared.append(PreparedDenseLayer(weight: try floats("\(name).weight"), bias: try floats("\(name).bias"),
                                                   inputCount: input, outputCount: layer.units, batchNorm: bn,
                                                   activation: layer.activation, order: arch.layerOrder))
                input = layer.units
            }
            return prepared
        }
        bottomWidth = arch.bottomInputWidth
        var width = bottomWidth
        shared = try dense(arch.shared, prefix: "shared", input: &width)
        towerInputWidth = width
        var tasks: [TaskWeights] = []
        for task in arch.tasks {
            var taskWidth = width
            let tower = try dense(task.tower, prefix: "tower.\(task.name)", input: &taskWidth)
            tasks.append(TaskWeights(tower: tower, head: try array("head.\(task.name).weight"), headBias: try array("head.\(task.name).bias")[0],
                                     useLinear: task.useLinear, logitOffset: Float(task.logitOffset)))
        }
        self.tasks = tasks
        self.owned = owned
        self.ownedRaw = ownedRaw
    }

    deinit {
        owned.forEach { $0.deallocate() }
        ownedRaw.forEach { $0.deallocate() }
        shared.forEach { $0.deallocate() }
        tasks.forEach { $0.tower.forEach { $0.deallocate() } }
    }
}
