/// UTF-8 text built a piece at a time, for output of many numbers (`predict`'s scores): a
/// finite float's `write(to:)` writes it as `description` does — the shortest decimal that
/// reads back as the same value — straight into the bytes, with no `String` made per number.
/// (A NaN's `write(to:)` spells out its payload: callers write non-finite values their way.)
///
/// Why not `description`: it makes a `String` per number, and appending that costs more than
/// the conversion. 300k scores (100k samples) took 29 ms that way and take 12 ms this way; on
/// one thread that was 18% of `predict` against a large model (docs/PERFORMANCE.md, #17).
public struct NumberText: TextOutputStream {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    public mutating func write(_ text: String) { bytes.append(contentsOf: text.utf8) }

    /// What `Float.write(to:)` and `Double.write(to:)` call with their text (the protocol's
    /// default makes a `String` of it first).
    public mutating func _writeASCII(_ buffer: UnsafeBufferPointer<UInt8>) { bytes.append(contentsOf: buffer) }

    public mutating func append(byte: UInt8) { bytes.append(byte) }
}
