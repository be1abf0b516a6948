/// The `limit` largest values of a stream with their ids, in one pass and O(limit) memory.
struct TopValues {
    let limit: Int
    private(set) var entries: [(id: UInt64, value: Float)] = []

    init(limit: Int) {
        self.limit = limit
    }

    /// Values of 0 (unchanged rows) are never listed.
    mutating func add(id: UInt64, _ value: Float) {
        guard value > 0, limit > 0, entries.count < limit || value > entries[entries.count - 1].value else { return }
        let position = entries.firstIndex { $0.value < value } ?? entries.count
        entries.insert((id, value), at: position)
        if entries.count > limit { entries.removeLast() }
    }
}
