/// An ONNX model as `export` writes it: the subset of onnx-ml.proto it uses, as Swift values.
/// `ONNXModel+Protobuf.swift` serializes it with the protobuf-c code of schema/onnx.
struct ONNXModel {
    /// ONNX IR version 8 goes with opset 17 (onnx 1.12).
    var irVersion: Int64 = 8
    var opsets: [(domain: String, version: Int64)]
    var producerVersion: String
    var graph: ONNXGraph
    var documentation: String
    var metadata: [(key: String, value: String)]
}

struct ONNXGraph {
    var name: String
    var nodes: [ONNXNode] = []
    var initializers: [ONNXInitializer] = []
    var inputs: [ONNXValueInfo] = []
    var outputs: [ONNXValueInfo] = []
}

struct ONNXNode {
    var opType: String
    var domain = ""
    var inputs: [String]
    var outputs: [String]
    var name: String
    var attributes: [(name: String, value: ONNXAttribute)] = []
}

enum ONNXAttribute {
    case int(Int64)
    case float(Float)
    case ints([Int64])
    case floats([Float])
    case string(String)
}

/// TensorProto.DataType values.
enum ONNXDataType: Int32 {
    case float = 1, uint8 = 2, int8 = 3, int32 = 6, int64 = 7, bool = 9, float16 = 10, bfloat16 = 16

    var byteCount: Int {
        switch self {
        case .float, .int32: 4
        case .uint8, .int8, .bool: 1
        case .int64: 8
        case .float16, .bfloat16: 2
        }
    }
}

struct ONNXInitializer {
    enum Payload {
        /// Little-endian bytes in the model file (`raw_data`).
        case inline([UInt8])
        /// Bytes in the external data file, at `offset` (ONNX external data).
        case external(location: String, offset: UInt64, length: UInt64)
    }

    var name: String
    var dataType: ONNXDataType
    var dims: [Int64]
    var payload: Payload
}

struct ONNXValueInfo {
    enum Dimension {
        case fixed(Int64)
        case symbolic(String)
    }

    var name: String
    var elementType: ONNXDataType
    var shape: [Dimension]
    var documentation = ""
}
