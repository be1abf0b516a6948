import CONNXProto
import CProtobufC
import Foundation

// The only file that touches the protobuf-c structs of schema/onnx/onnx-ml.proto.

extension ONNXModel {
    /// The model as protobuf bytes (an `.onnx` file).
    func serialized() -> [UInt8] {
        let arena = CArena()
        let model = arena.message(onnx__model_proto__init) { m in
            m.has_ir_version = 1
            m.ir_version = irVersion
            (m.n_opset_import, m.opset_import) = arena.messages(opsets) { opset in
                arena.message(onnx__operator_set_id_proto__init) { o in
                    o.domain = arena.string(opset.domain)
                    o.has_version = 1
                    o.version = opset.version
                }
            }
            m.producer_name = arena.string("mtl-model")
            m.producer_version = arena.string(producerVersion)
            m.doc_string = arena.string(documentation)
            (m.n_metadata_props, m.metadata_props) = arena.messages(metadata) { entry in
                Self.entry(entry.key, entry.value, arena)
            }
            m.graph = graph.cMessage(arena)
        }
        let size = onnx__model_proto__get_packed_size(model)
        var bytes = [UInt8](repeating: 0, count: size)
        let written = bytes.withUnsafeMutableBufferPointer { onnx__model_proto__pack(model, $0.baseAddress!) }
        precondition(written == size, "protobuf-c packed \(written) of \(size) bytes")
        return bytes
    }

    fileprivate static func entry(_ key: String, _ value: String, _ arena: CArena) -> UnsafeMutablePointer<Onnx__StringStringEntryProto> {
        arena.message(onnx__string_string_entry_proto__init) { e in
            e.key = arena.string(key)
            e.value = arena.string(value)
        }
    }
}

extension ONNXGraph {
    fileprivate func cMessage(_ arena: CArena) -> UnsafeMutablePointer<Onnx__GraphProto> {
        arena.message(onnx__graph_proto__init) { g in
            g.name = arena.string(name)
            (g.n_node, g.node) = arena.messages(nodes) { $0.cMessage(arena) }
            (g.n_initializer, g.initializer) = arena.messages(initializers) { $0.cMessage(arena) }
            (g.n_input, g.input) = arena.messages(inputs) { $0.cMessage(arena) }
            (g.n_output, g.output) = arena.messages(outputs) { $0.cMessage(arena) }
        }
    }
}

extension ONNXNode {
    fileprivate func cMessage(_ arena: CArena) -> UnsafeMutablePointer<Onnx__NodeProto> {
        arena.message(onnx__node_proto__init) { n in
            n.op_type = arena.string(opType)
            n.name = arena.string(name)
            if !domain.isEmpty { n.domain = arena.string(domain) }
            (n.n_input, n.input) = arena.strings(inputs)
            (n.n_output, n.output) = arena.strings(outputs)
            (n.n_attribute, n.attribute) = arena.messages(attributes) { attribute in
                arena.message(onnx__attribute_proto__init) { a in
                    a.name = arena.string(attribute.name)
                    a.has_type = 1
                    switch attribute.value {
                    case .int(let value):
                        a.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT
                        a.has_i = 1
                        a.i = value
                    case .float(let value):
                        a.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT
                        a.has_f = 1
                        a.f = value
                    case .ints(let values):
                        a.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS
                        (a.n_ints, a.ints) = arena.array(values)
                    case .floats(let values):
                        a.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS
                        (a.n_floats, a.floats) = arena.array(values)
                    case .string(let value):
                        a.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING
                        a.has_s = 1
                        a.s = arena.binary(Array(value.utf8))
                    }
                }
            }
        }
    }
}

extension ONNXInitializer {
    fileprivate func cMessage(_ arena: CArena) -> UnsafeMutablePointer<Onnx__TensorProto> {
        arena.message(onnx__tensor_proto__init) { t in
            t.name = arena.string(name)
            t.has_data_type = 1
            t.data_type = dataType.rawValue
            (t.n_dims, t.dims) = arena.array(dims)
            switch payload {
            case .inline(let bytes):
                t.has_raw_data = 1
                t.raw_data = arena.binary(bytes)
            case .external(let location, let offset, let length):
                t.has_data_location = 1
                t.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL
                let entries = [("location", location), ("offset", String(offset)), ("length", String(length))]
                (t.n_external_data, t.external_data) = arena.messages(entries) { ONNXModel.entry($0.0, $0.1, arena) }
            }
        }
    }
}

extension ONNXValueInfo {
    fileprivate func cMessage(_ arena: CArena) -> UnsafeMutablePointer<Onnx__ValueInfoProto> {
        arena.message(onnx__value_info_proto__init) { v in
            v.name = arena.string(name)
            if !documentation.isEmpty { v.doc_string = arena.string(documentation) }
            v.type = arena.message(onnx__type_proto__init) { type in
                type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
                type.tensor_type = arena.message(onnx__type_proto__tensor__init) { tensor in
                    tensor.has_elem_type = 1
                    tensor.elem_type = elementType.rawValue
                    tensor.shape = arena.message(onnx__tensor_shape_proto__init) { s in
                        (s.n_dim, s.dim) = arena.messages(shape) { dimension in
                            arena.message(onnx__tensor_shape_proto__dimension__init) { d in
                                switch dimension {
                                case .fixed(let value):
                                    d.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                                    d.dim_value = value
                                case .symbolic(let name):
                                    d.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                                    d.dim_param = arena.string(name)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
