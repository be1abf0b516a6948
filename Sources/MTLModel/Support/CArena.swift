import CProtobufC
import Foundation

/// C memory for one message being packed, freed all at once.
final class CArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    deinit { allocations.forEach { free($0) } }

    private func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let raw = calloc(max(count, 1), MemoryLayout<T>.stride)!
        allocations.append(raw)
        return raw.bindMemory(to: T.self, capacity: max(count, 1))
    }

    func message<T>(_ initialize: (UnsafeMutablePointer<T>) -> Void, _ fill: (inout T) -> Void = { _ in }) -> UnsafeMutablePointer<T> {
        let pointer = allocate(T.self, count: 1)
        initialize(pointer)
        fill(&pointer.pointee)
        return pointer
    }

    func string(_ text: String) -> UnsafeMutablePointer<CChar> {
        let pointer = strdup(text)!
        allocations.append(pointer)
        return pointer
    }

    func array<T>(_ values: [T]) -> (Int, UnsafeMutablePointer<T>?) {
        guard !values.isEmpty else { return (0, nil) }
        let pointer = allocate(T.self, count: values.count)
        pointer.initialize(from: values, count: values.count)
        return (values.count, pointer)
    }

    /// A copy of `bytes` as protobuf-c binary data.
    func binary(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        let (count, pointer) = array(bytes)
        return ProtobufCBinaryData(len: count, data: pointer)
    }

    func strings(_ values: [String]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        array(values.map { Optional(string($0)) })
    }

    func messages<Item, T>(_ items: [Item], _ make: (Item) -> UnsafeMutablePointer<T>) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<T>?>?) {
        array(items.map { Optional(make($0)) })
    }
}
