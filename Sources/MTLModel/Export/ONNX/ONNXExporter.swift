import Foundation

/// What `export` wrote for ONNX.
public struct ONNXExportReport: Sendable, Codable {
    public var output: String
    /// The external data file, when some tensor went there.
    public var externalData: String?
    public var externalByteCount: UInt64
    public var modelByteCount: UInt64
    public var nodeCount: Int
    public var initializerCount: Int
    public var inputs: [String]
    public var outputs: [String]
}

/// Writes a model as an ONNX graph (opset 17, plus `ai.onnx.ml` 2 for keyed tables) that
/// computes what `predict` computes: per task logits and probabilities, and the fused score.
/// docs/ONNX.md is its contract: inputs are each field's bag as raw ids and values, padded
/// with value 0; the graph maps ids to rows (direct, modulo, keyed) as MODEL.md says.
///
/// Tables keep their stored type: float16 / bfloat16 rows are gathered then cast, int8 and
/// int4 rows are gathered as codes and decoded in the graph (scale · code + bias), so the
/// exported model is about as large as the `.mtlm`. Tensors of `externalThreshold` bytes or
/// more go to `OUT.onnx.data` (ONNX external data, 4 KiB-aligned so runtimes can map it),
/// streamed from the mapped model; the `.onnx` file itself stays small.
public struct ONNXExporter {
    public static let opset: Int64 = 17
    /// Tensors at least this large are written to the external data file.
    public var externalThreshold: UInt64 = 1 << 20

    public init() {}

    public func export(_ model: Model, to output: String) throws -> ONNXExportReport {
        let store = try InitializerStore(output: output, threshold: externalThreshold)
        var graph = NFwFMGraph(model: model, store: store)
        try graph.build()
        var builder = graph.builder
        let architecture = model.architecture
        builder.graph.outputs = [
            ONNXValueInfo(name: "logits", elementType: .float, shape: [.symbolic("batch"), .fixed(Int64(architecture.tasks.count))],
                          documentation: "per task logit, tasks in order: " + architecture.tasks.map(\.name).joined(separator: ", ")),
            ONNXValueInfo(name: "probabilities", elementType: .float, shape: [.symbolic("batch"), .fixed(Int64(architecture.tasks.count))],
                          documentation: "sigmoid of the logits"),
            ONNXValueInfo(name: "fused", elementType: .float, shape: [.symbolic("batch")],
                          documentation: "the fused ranking score (\(architecture.fusion.type.configName))"),
        ]
        let onnx = ONNXModel(
            opsets: [("", Self.opset)] + (architecture.fields.contains { $0.mapping == .keyed } ? [("ai.onnx.ml", 2)] : []),
            producerVersion: MTLModelVersion.tool, graph: builder.graph,
            documentation: "Multi-task NFwFM exported by mtl-model from \(URL(fileURLWithPath: model.path).lastPathComponent); inputs and outputs: docs/ONNX.md",
            metadata: [("mtl_model.config", architecture.config.serialized()),
                       ("mtl_model.tasks", architecture.tasks.map(\.name).joined(separator: ","))]
                + model.manifest.metadata.map { ($0.key, $0.value) })
        let externalByteCount = try store.commit()
        let bytes = onnx.serialized()
        let file = try AtomicOutputFile(targetPath: output)
        try file.append(bytes)
        try file.commit()
        return ONNXExportReport(output: output, externalData: externalByteCount > 0 ? store.dataPath : nil,
                                externalByteCount: externalByteCount, modelByteCount: UInt64(bytes.count),
                                nodeCount: builder.graph.nodes.count, initializerCount: builder.graph.initializers.count,
                                inputs: builder.graph.inputs.map(\.name), outputs: builder.graph.outputs.map(\.name))
    }
}

/// The initializers' bytes: small ones inline, large ones appended to the external data file.
private final class InitializerStore {
    let dataPath: String
    let location: String
    let threshold: UInt64
    private var dataFile: AtomicOutputFile?

    init(output: String, threshold: UInt64) throws {
        dataPath = output + ".data"
        location = URL(fileURLWithPath: dataPath).lastPathComponent
        self.threshold = threshold
    }

    /// An initializer of `byteCount` bytes that `write` produces, piece by piece.
    func add(_ name: String, _ type: ONNXDataType, dims: [Int64], byteCount: UInt64,
             _ write: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws -> ONNXInitializer {
        var written: UInt64 = 0
        let payload: ONNXInitializer.Payload
        if byteCount >= threshold && byteCount > 0 {
            if dataFile == nil { dataFile = try AtomicOutputFile(targetPath: dataPath) }
            let file = dataFile!
            let remainder = file.position % 4096
            if remainder != 0 { try file.appendZeros(Int(4096 - remainder)) }
            let offset = file.position
            file.reserve(byteCount, at: offset)
            try write { piece in
                try file.append(piece)
                written += UInt64(piece.count)
            }
            payload = .external(location: location, offset: offset, length: byteCount)
        } else {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(Int(byteCount))
            try write { piece in bytes.append(contentsOf: piece) }
            written = UInt64(bytes.count)
            payload = .inline(bytes)
        }
        precondition(written == byteCount, "initializer \(name): wrote \(written) of \(byteCount) bytes")
        return ONNXInitializer(name: name, dataType: type, dims: dims, payload: payload)
    }

    /// A tensor's stored bytes as they are (a sharded table's parts in order).
    func stored(_ tensor: ModelTensor, as type: ONNXDataType, dims: [Int64]? = nil, name: String? = nil) throws -> ONNXInitializer {
        try add(name ?? tensor.name, type, dims: dims ?? tensor.shape.map { Int64($0) }, byteCount: tensor.entry.byteCount) { sink in
            try tensor.visitValid(asFloat32: false) { bytes, _ in try sink(bytes) }
        }
    }

    /// The bytes `range` of every row of a table stored in a fused row layout (codes, then
    /// scale and bias): how quantized rows split into the separate tensors ONNX needs.
    func rowSlices(_ tensor: ModelTensor, _ range: Range<Int>, as type: ONNXDataType, dims: [Int64], name: String) throws -> ONNXInitializer {
        let rows = tensor.columnCount == 0 ? 0 : Int(tensor.entry.elementCount) / tensor.columnCount
        return try add(name, type, dims: dims, byteCount: UInt64(rows * range.count)) { sink in
            try tensor.requireValid()
            try tensor.withRows { stored in
                let window = 16_384
                var buffer = [UInt8](repeating: 0, count: min(rows, window) * range.count)
                var start = 0
                while start < rows {
                    let count = min(window, rows - start)
                    buffer.withUnsafeMutableBytes { out in
                        for r in 0..<count {
                            (out.baseAddress! + r * range.count).copyMemory(from: stored.row(start + r) + range.lowerBound, byteCount: range.count)
                        }
                    }
                    try buffer.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[..<(count * range.count)])) }
                    tensor.releasePages(rows: start..<start + count)
                    start += count
                }
            }
        }
    }

    /// A tensor's values decoded to float32.
    func decoded(_ tensor: ModelTensor, dims: [Int64]? = nil, name: String? = nil) throws -> ONNXInitializer {
        try add(name ?? tensor.name, .float, dims: dims ?? tensor.shape.map { Int64($0) }, byteCount: tensor.entry.elementCount * 4) { sink in
            try tensor.visitValid(asFloat32: true) { bytes, _ in try sink(bytes) }
        }
    }

    /// Moves the external data file into place (before the model that names it).
    func commit() throws -> UInt64 {
        guard let dataFile else { return 0 }
        let size = dataFile.position
        try dataFile.commit()
        return size
    }
}

/// The forward pass of MODEL.md as ONNX nodes.
private struct NFwFMGraph {
    let model: Model
    let store: InitializerStore
    var builder = ONNXGraphBuilder(name: "mtl_model")
    var architecture: Architecture { model.architecture }

    init(model: Model, store: InitializerStore) {
        self.model = model
        self.store = store
    }

    private func entry(_ name: TensorName) -> ModelTensor { model.tensor(name) }

    mutating func build() throws {
        let (pooled, firstOrder) = try poolFields()
        let (h, groupVectors) = try interaction(pooled)
        let z: String
        switch architecture.bottomInput {
        case .interaction: z = h
        case .interactionGroups: z = builder.concat([h] + groupVectors, axis: 1)
        case .interactionFields: z = builder.concat([h] + pooled, axis: 1)
        }
        let shared = try dense(architecture.shared, block: .shared, input: z)
        var firstOrderTotal: String?
        if architecture.linear {
            firstOrderTotal = builder.add(builder.sum(firstOrder), builder.constant(floats: try model.tensor(.linearBias).floats(), dims: [1]))
        }
        var logits: [String] = []
        for task in architecture.tasks {
            let tower = try dense(task.tower, block: .tower(task.name), input: shared)
            var logit = builder.node("Gemm", [tower, try weight(.headWeight(task.name)), try vector(.headBias(task.name))], [("transB", .int(1))])
            if task.useLinear, let firstOrderTotal { logit = builder.add(logit, firstOrderTotal) }
            if task.logitOffset != 0 { logit = builder.add(logit, builder.constant(float: Float(task.logitOffset))) }
            logits.append(logit)
        }
        let logitsOutput = builder.node("Concat", logits, [("axis", .int(1))], output: "logits")
        fuse(builder.node("Sigmoid", [logitsOutput], output: "probabilities"))
    }

    /// Each field's inputs (ids and values), its pooled vector u_f [N, K] and, with a linear
    /// part, its first-order term [N, 1].
    private mutating func poolFields() throws -> (pooled: [String], firstOrder: [String]) {
        var pooled: [String] = []
        var firstOrder: [String] = []
        for field in architecture.fields {
            let ids = "\(field.name)_ids", values = "\(field.name)_values"
            let shape: [ONNXValueInfo.Dimension] = [.symbolic("batch"), .symbolic("\(field.name)_bag")]
            builder.graph.inputs.append(ONNXValueInfo(name: ids, elementType: .int64, shape: shape,
                                                      documentation: "ids of field \(field.name) (uint64 bits as int64), padded with any id"))
            builder.graph.inputs.append(ONNXValueInfo(name: values, elementType: .float, shape: shape,
                                                      documentation: "values of field \(field.name); 0 for padding"))
            let (rows, weights) = try rowsAndWeights(field, ids: ids, values: values)
            let vectors = try lookup(entry(.embedding(field.name)), rows)   // [N, L, K]
            let sum = builder.reduceSum(builder.mul(builder.unsqueeze(weights, axis: 2), vectors), axis: 1, keepDims: false)
            // Z_f by the combiner; u_f = 0 where Z_f = 0.
            var normalize: ((inout ONNXGraphBuilder, String) -> String) = { _, x in x }
            if field.combiner != .sum {
                let z = field.combiner == .mean ? builder.reduceSum(weights, axis: 1, keepDims: true)
                    : builder.node("Sqrt", [builder.reduceSum(builder.mul(weights, weights), axis: 1, keepDims: true)])
                let zero = builder.constant(float: 0), one = builder.constant(float: 1)
                let isZero = builder.node("Equal", [z, zero])
                let safe = builder.node("Where", [isZero, one, z])
                normalize = { b, x in b.node("Where", [isZero, zero, b.node("Div", [x, safe])]) }
            }
            pooled.append(normalize(&builder, sum))
            if architecture.linear {
                let table = try lookup(entry(.linear(field.name)), rows)        // [N, L, 1]
                let linear = builder.node("Squeeze", [table, builder.constant(int64s: [2])])
                firstOrder.append(normalize(&builder, builder.reduceSum(builder.mul(weights, linear), axis: 1, keepDims: true)))
            }
        }
        return (pooled, firstOrder)
    }

    /// The group vectors and the interaction h [N, K]: the field-wise bi-interaction of the
    /// groups and the intra-group crosses.
    private mutating func interaction(_ pooled: [String]) throws -> (h: String, groupVectors: [String]) {
        let k = architecture.embeddingDim
        let c: Float = architecture.interaction.halfFactor ? 0.5 : 1
        var groupVectors: [String] = [], crosses: [String] = []
        let fieldBias = architecture.interaction.fieldBias ? try model.tensor(.fieldBias).floats() : []
        for group in architecture.groups.indices {
            let members = architecture.fields.indices.filter { architecture.fields[$0].group == group }.map { pooled[$0] }
            let sum = builder.sum(members)
            groupVectors.append(fieldBias.isEmpty ? sum : builder.add(sum, builder.constant(floats: Array(fieldBias[(group * k)..<((group + 1) * k)]))))
            if architecture.interaction.intra {
                let squares = builder.sum(members.map { builder.mul($0, $0) })
                crosses.append(builder.mul(builder.node("Sub", [builder.mul(sum, sum), squares]), builder.constant(float: c)))
            }
        }
        var terms: [String] = []
        let pairs = architecture.pairCount
        if pairs > 0 {
            let stacked = builder.concat(groupVectors.map { builder.unsqueeze($0, axis: 1) }, axis: 1)   // [N, M, K]
            var left: [Int64] = [], right: [Int64] = []
            for a in 0..<architecture.groupCount { for b in (a + 1)..<architecture.groupCount { left.append(Int64(a)); right.append(Int64(b)) } }
            let products = builder.mul(builder.node("Gather", [stacked, builder.constant(int64s: left)], [("axis", .int(1))]),
                                       builder.node("Gather", [stacked, builder.constant(int64s: right)], [("axis", .int(1))]))
            let weights = builder.constant(floats: try model.tensor(.pairWeight).floats(), dims: [Int64(pairs), 1])
            terms.append(builder.reduceSum(builder.mul(products, weights), axis: 1, keepDims: false))
        }
        if architecture.interaction.intra {
            let stacked = builder.concat(crosses.map { builder.unsqueeze($0, axis: 1) }, axis: 1)
            let scale = architecture.interaction.diceScale
            let weights = try model.tensor(.intraWeight).floats().map { Float(Double($0) * scale) }
            terms.append(builder.reduceSum(builder.mul(stacked, builder.constant(floats: weights, dims: [Int64(weights.count), 1])), axis: 1, keepDims: false))
        }
        return (terms.isEmpty ? builder.mul(pooled[0], builder.constant(float: 0)) : builder.sum(terms), groupVectors)
    }

    /// The output "fused": the tasks' probabilities fused as the architecture says.
    private mutating func fuse(_ probabilities: String) {
        let fusion = architecture.fusion
        switch fusion.type {
        case .weightedSum:
            let weighted = builder.mul(probabilities, builder.constant(floats: fusion.weights.map { Float($0) }))
            builder.node("ReduceSum", [weighted, builder.constant(int64s: [1])], [("keepdims", .int(0))], output: "fused")
        case .lexicographic:
            let first = builder.node("Gather", [probabilities, builder.constant(int64: 0)], [("axis", .int(1))])
            let second = builder.node("Gather", [probabilities, builder.constant(int64: 1)], [("axis", .int(1))])
            let bucket = builder.node("Floor", [builder.node("Div", [first, builder.constant(float: Float(fusion.bucket))])])
            builder.node("Add", [bucket, second], output: "fused")
        case .weightedProduct:
            let base = builder.add(builder.mul(probabilities, builder.constant(floats: fusion.weights.map { Float($0) })),
                                   builder.constant(floats: fusion.biases.map { Float($0) }))
            let powered = builder.node("Pow", [base, builder.constant(floats: fusion.exponents.map { Float($0) })])
            builder.node("ReduceProd", [powered], [("axes", .ints([1])), ("keepdims", .int(0))], output: "fused")
        }
    }

    /// Rows of the field's tables for each id, and the values with out-of-vocabulary pairs zeroed.
    private mutating func rowsAndWeights(_ field: Architecture.Field, ids: String, values: String) throws -> (String, String) {
        let n = Int64(field.vocabSize)
        let zero = builder.constant(int64: 0)
        switch field.mapping {
        case .modulo:
            // ids arrive as int64 bits: an id of 2^63 or more is negative here. Mod with fmod = 0
            // gives the divisor's sign, and 2^64 mod n corrects the negative ones.
            let count = builder.constant(int64: n)
            var rows = builder.node("Mod", [ids, count], [("fmod", .int(0))])
            let wrap = Int64((UInt64.max % UInt64(n) + 1) % UInt64(n))
            if wrap != 0 {
                let negative = builder.node("Less", [ids, zero])
                let correction = builder.node("Where", [negative, builder.constant(int64: wrap), zero])
                rows = builder.node("Mod", [builder.add(rows, correction), count], [("fmod", .int(0))])
            }
            return (rows, values)
        case .direct:
            let valid = builder.node("And", [builder.node("GreaterOrEqual", [ids, zero]), builder.node("Less", [ids, builder.constant(int64: n)])])
            return (builder.node("Where", [valid, ids, zero]), builder.mul(values, builder.cast(valid, to: .float)))
        case .keyed:
            let keysTensor = model.tensor(.keys(field.name))
            try keysTensor.requireValid()  // distinct: LabelEncoder would keep one row of a repeated id
            let keys = try keysTensor.withRows { rows in
                let column = KeyColumn(rows)
                // Each part was checked alone; parts of a sharded table are checked together here.
                if keysTensor.isSplit, let duplicate = KeyJoin.duplicateKey(in: column, release: { _ in }) {
                    throw MTLModelError(.malformed, "duplicate key \(duplicate) in two shards (run mtl-model verify)", file: model.path, location: .init(tensor: keysTensor.name))
                }
                return (0..<column.count).map { Int64(bitPattern: column[$0]) }
            }
            let positions = builder.node("LabelEncoder", [ids], [("keys_int64s", .ints(keys)), ("values_int64s", .ints(Array(0..<n))),
                                                                 ("default_int64", .int(-1))], domain: "ai.onnx.ml")
            let valid = builder.node("GreaterOrEqual", [positions, zero])
            return (builder.node("Where", [valid, positions, zero]), builder.mul(values, builder.cast(valid, to: .float)))
        }
    }

    /// The rows `rows` ([N, L]) of a table [n, K] as float32 [N, L, K], decoded in the graph
    /// from the stored type.
    private mutating func lookup(_ entry: ModelTensor, _ rows: String) throws -> String {
        let n = Int64(entry.shape[0]), k = Int64(entry.columnCount)
        func gather(_ table: ONNXInitializer) -> String {
            builder.node("Gather", [builder.initializer(table), rows])
        }
        switch entry.dtype {
        case .float32:
            return gather(try store.stored(entry, as: .float))
        case .float16, .bfloat16:
            return builder.cast(gather(try store.stored(entry, as: entry.dtype == .float16 ? .float16 : .bfloat16)), to: .float)
        case .int8Rowwise:
            let codes = gather(try store.rowSlices(entry, 0..<Int(k), as: .uint8, dims: [n, k], name: "\(entry.name).codes"))
            let parameters = gather(try store.rowSlices(entry, Int(k)..<Int(k) + 8, as: .float, dims: [n, 2], name: "\(entry.name).scale_bias"))
            return dequantize(builder.cast(codes, to: .float), parameters)
        case .int4Rowwise:
            let packedWidth = (k + 1) / 2
            let packed = builder.cast(gather(try store.rowSlices(entry, 0..<Int(packedWidth), as: .uint8, dims: [n, packedWidth],
                                                                   name: "\(entry.name).codes")), to: .int32)
            // Element 2i is the low nibble of byte i, element 2i + 1 the high one.
            let sixteen = builder.constant(int32: 16)
            let low = builder.node("Mod", [packed, sixteen], [("fmod", .int(0))]), high = builder.node("Div", [packed, sixteen])
            let pairs = builder.concat([builder.unsqueeze(low, axis: 3), builder.unsqueeze(high, axis: 3)], axis: 3)
            var codes = builder.node("Reshape", [pairs, builder.constant(int64s: [0, 0, -1])])
            if k % 2 == 1 { codes = builder.slice(codes, axis: 2, 0, k) }
            let parameters = gather(try store.rowSlices(entry, Int(packedWidth)..<Int(packedWidth) + 4, as: .float16, dims: [n, 2],
                                                        name: "\(entry.name).scale_bias"))
            return dequantize(builder.cast(codes, to: .float), builder.cast(parameters, to: .float))
        case .int8Symmetric, .int64, .uint64:
            return gather(try store.decoded(entry))
        }
    }

    /// scale · code + bias, with `parameters` [N, L, 2] holding (scale, bias) per row.
    private mutating func dequantize(_ codes: String, _ parameters: String) -> String {
        builder.add(builder.mul(codes, builder.slice(parameters, axis: 2, 0, 1)), builder.slice(parameters, axis: 2, 1, 2))
    }

    /// A dense weight [out, in] as float32: stored, cast from half precision, or dequantized
    /// per output channel.
    private mutating func weight(_ name: TensorName) throws -> String {
        let entry = entry(name)
        switch entry.dtype {
        case .float32:
            return builder.initializer(try store.stored(entry, as: .float))
        case .float16, .bfloat16:
            return builder.cast(builder.initializer(try store.stored(entry, as: entry.dtype == .float16 ? .float16 : .bfloat16)), to: .float)
        case .int8Symmetric:
            let rows = Int64(entry.shape[0]), columns = Int64(entry.columnCount)
            let codes = builder.initializer(try store.rowSlices(entry, 0..<Int(columns), as: .int8, dims: [rows, columns], name: "\(name).codes"))
            let scale = builder.initializer(try store.rowSlices(entry, Int(columns)..<Int(columns) + 4, as: .float, dims: [rows], name: "\(name).scale"))
            let zeroPoint = builder.initializer(.init(name: "\(name).zero_point", dataType: .int8, dims: [rows],
                                                      payload: .inline([UInt8](repeating: 0, count: Int(rows)))))
            return builder.node("DequantizeLinear", [codes, scale, zeroPoint], [("axis", .int(0))])
        case .int8Rowwise, .int4Rowwise, .int64, .uint64:
            return builder.initializer(try store.decoded(entry))
        }
    }

    /// A small float tensor (bias, batch norm) as float32 values inline.
    private mutating func vector(_ name: TensorName) throws -> String {
        builder.constant(floats: try model.tensor(name).floats(), name: name.description)
    }

    private mutating func dense(_ layers: [Architecture.DenseLayer], block: DenseBlock, input: String) throws -> String {
        var x = input
        for (index, layer) in layers.enumerated() {
            x = builder.node("Gemm", [x, try weight(.dense(block, index, .weight)), try vector(.dense(block, index, .bias))], [("transB", .int(1))])
            let norm: (inout NFwFMGraph, String) throws -> String = { graph, x in
                guard layer.batchNorm else { return x }
                let parameters = try [DenseParameter.bnWeight, .bnBias, .bnRunningMean, .bnRunningVar].map { try graph.vector(.dense(block, index, $0)) }
                return graph.builder.node("BatchNormalization", [x] + parameters, [("epsilon", .float(Float(graph.architecture.bnEps)))])
            }
            switch architecture.layerOrder {
            case .linearBnAct: x = activation(layer.activation, try norm(&self, x))
            case .linearActBn: x = try norm(&self, activation(layer.activation, x))
            }
        }
        return x
    }

    private mutating func activation(_ activation: Architecture.Activation, _ x: String) -> String {
        switch activation {
        case .relu: builder.node("Relu", [x])
        case .sigmoid: builder.node("Sigmoid", [x])
        case .tanh: builder.node("Tanh", [x])
        case .identity: x
        }
    }
}
