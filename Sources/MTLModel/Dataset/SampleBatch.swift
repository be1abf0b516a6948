/// Samples of the dataset text format (MODEL.md), structure of arrays, reused batch after
/// batch so that parsing allocates nothing per sample.
public struct SampleBatch: Sendable {
    public let taskCount: Int
    /// Samples in the batch.
    public private(set) var count = 0
    /// `count × taskCount` labels: 0, 1, or -1 (unknown).
    public private(set) var labels: [Int8] = []
    /// Entries of sample `i` are `entryStart[i] ..< entryStart[i + 1]`.
    public private(set) var entryStart: [Int32] = [0]
    public private(set) var entryField: [Int32] = []
    public private(set) var entryID: [UInt64] = []
    public private(set) var entryValue: [Float] = []
    /// The 1-based line number of each sample in its file.
    public private(set) var lineNumbers: [Int] = []
    /// The rows of its ids in the keyed tables a predictor indexes per batch
    /// (`Predictor.resolveKeys`), nil until then.
    var keyedRows: BatchKeys?

    public init(taskCount: Int, capacity: Int = 1024) {
        self.taskCount = taskCount
        labels.reserveCapacity(capacity * taskCount)
        entryStart.reserveCapacity(capacity + 1)
        lineNumbers.reserveCapacity(capacity)
        entryField.reserveCapacity(capacity * 16)
        entryID.reserveCapacity(capacity * 16)
        entryValue.reserveCapacity(capacity * 16)
    }

    public mutating func removeAll() {
        count = 0
        labels.removeAll(keepingCapacity: true)
        entryStart.removeAll(keepingCapacity: true)
        entryStart.append(0)
        entryField.removeAll(keepingCapacity: true)
        entryID.removeAll(keepingCapacity: true)
        entryValue.removeAll(keepingCapacity: true)
        lineNumbers.removeAll(keepingCapacity: true)
        keyedRows = nil
    }

    // Building a sample: begin, add labels and entries, then commit or roll back.

    mutating func beginSample(line: Int) {
        lineNumbers.append(line)
    }

    mutating func appendLabel(_ label: Int8) { labels.append(label) }

    mutating func appendEntry(field: Int, id: UInt64, value: Float) {
        entryField.append(Int32(field))
        entryID.append(id)
        entryValue.append(value)
    }

    mutating func commitSample() {
        entryStart.append(Int32(entryField.count))
        count += 1
    }

    /// Drops what was added since the last commit (a line that turned out invalid).
    mutating func rollBackSample() {
        let entries = Int(entryStart[count])
        entryField.removeSubrange(entries...)
        entryID.removeSubrange(entries...)
        entryValue.removeSubrange(entries...)
        labels.removeSubrange((count * taskCount)...)
        lineNumbers.removeSubrange(count...)
    }

    /// Adds a sample directly (tests and library callers).
    public mutating func append(labels sampleLabels: [Int8], entries: [(field: Int, id: UInt64, value: Float)], line: Int = 0) {
        precondition(sampleLabels.count == taskCount)
        beginSample(line: line)
        labels += sampleLabels
        for entry in entries { appendEntry(field: entry.field, id: entry.id, value: entry.value) }
        commitSample()
    }
}
