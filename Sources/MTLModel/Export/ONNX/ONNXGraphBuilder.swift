/// Builds an ONNX graph node by node: each call adds one node (or constant) and returns the
/// name of its output, so the graph code reads like the formulas of MODEL.md.
struct ONNXGraphBuilder {
    var graph: ONNXGraph
    private var counter = 0

    init(name: String) {
        graph = ONNXGraph(name: name)
    }

    private mutating func fresh(_ stem: String) -> String {
        counter += 1
        return "\(stem)_\(counter)"
    }

    /// Adds a node with one output (named `output`, or a fresh name) and returns that name.
    @discardableResult
    mutating func node(_ opType: String, _ inputs: [String], _ attributes: [(name: String, value: ONNXAttribute)] = [],
                       domain: String = "", output: String? = nil) -> String {
        let name = output ?? fresh(opType)
        graph.nodes.append(ONNXNode(opType: opType, domain: domain, inputs: inputs, outputs: [name], name: "\(opType)_node_\(graph.nodes.count)",
                                    attributes: attributes))
        return name
    }

    mutating func initializer(_ initializer: ONNXInitializer) -> String {
        graph.initializers.append(initializer)
        return initializer.name
    }

    mutating func constant(floats: [Float], dims: [Int64]? = nil, name: String? = nil) -> String {
        initializer(.init(name: name ?? fresh("const"), dataType: .float, dims: dims ?? [Int64(floats.count)],
                          payload: .inline(floats.withUnsafeBytes { Array($0) })))
    }

    mutating func constant(float value: Float) -> String { constant(floats: [value], dims: []) }

    mutating func constant(int64s: [Int64], dims: [Int64]? = nil) -> String {
        initializer(.init(name: fresh("const"), dataType: .int64, dims: dims ?? [Int64(int64s.count)],
                          payload: .inline(int64s.withUnsafeBytes { Array($0) })))
    }

    mutating func constant(int64 value: Int64) -> String { constant(int64s: [value], dims: []) }

    mutating func constant(int32 value: Int32) -> String {
        initializer(.init(name: fresh("const"), dataType: .int32, dims: [], payload: .inline(withUnsafeBytes(of: value) { Array($0) })))
    }

    // MARK: operators used more than once

    mutating func add(_ a: String, _ b: String) -> String { node("Add", [a, b]) }
    mutating func mul(_ a: String, _ b: String) -> String { node("Mul", [a, b]) }

    /// Sum over `axis` (ReduceSum takes its axes as an input since opset 13).
    mutating func reduceSum(_ x: String, axis: Int64, keepDims: Bool) -> String {
        node("ReduceSum", [x, constant(int64s: [axis])], [("keepdims", .int(keepDims ? 1 : 0))])
    }

    mutating func unsqueeze(_ x: String, axis: Int64) -> String { node("Unsqueeze", [x, constant(int64s: [axis])]) }

    mutating func cast(_ x: String, to type: ONNXDataType) -> String { node("Cast", [x], [("to", .int(Int64(type.rawValue)))]) }

    mutating func concat(_ inputs: [String], axis: Int64) -> String {
        inputs.count == 1 ? inputs[0] : node("Concat", inputs, [("axis", .int(axis))])
    }

    /// `x[..., start..<end]` along `axis`.
    mutating func slice(_ x: String, axis: Int64, _ start: Int64, _ end: Int64) -> String {
        node("Slice", [x, constant(int64s: [start]), constant(int64s: [end]), constant(int64s: [axis])])
    }

    mutating func sum(_ terms: [String]) -> String {
        terms.dropFirst().reduce(terms[0]) { add($0, $1) }
    }
}
