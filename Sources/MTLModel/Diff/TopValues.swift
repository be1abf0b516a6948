/// The `limit` largest values of a stream with their ids, in one pass and O(limit) memory.
/// Of equal values, the first seen ranks first.
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

    /// Adds the entries of the stream that followed this one: the top of both streams, exactly
    /// (each of its entries is in the top of its own part, and ties keep their order).
    mutating func merge(_ later: TopValues) {
        for entry in later.entries { add(id: entry.id, entry.value) }
    }
}

/// Coded losslessly (values as their bit patterns), for a task's result file.
extension TopValues: Codable {
    private enum CodingKeys: String, CodingKey { case limit, ids, values }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(limit, forKey: .limit)
        try container.encode(entries.map { String($0.id) }, forKey: .ids)
        try container.encode(entries.map(\.value.bitPattern), forKey: .values)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(limit: try container.decode(Int.self, forKey: .limit))
        let ids = try container.decode([String].self, forKey: .ids), values = try container.decode([UInt32].self, forKey: .values)
        guard ids.count == values.count, ids.count <= max(limit, 0) else {
            throw DecodingError.dataCorrupted(.init(codingPath: container.codingPath, debugDescription: "ids and values do not pair up"))
        }
        entries = try zip(ids, values).map { id, value in
            guard let id = UInt64(id) else {
                throw DecodingError.dataCorrupted(.init(codingPath: container.codingPath, debugDescription: "not a 64-bit id: \(id)"))
            }
            return (id, Float(bitPattern: value))
        }
    }
}
