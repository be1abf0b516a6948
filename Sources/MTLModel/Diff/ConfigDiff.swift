/// Differences between two architecture configs, in words: `fields.user_id.vocab_size: 100 → 200`.
/// Lists of named objects (fields, tasks) are compared by name, so a field added in the
/// middle reads as one addition, not as every later field changed.
enum ConfigDiff {
    static func differences(_ a: JSONValue, _ b: JSONValue, path: String = "") -> [String] {
        if a == b { return [] }
        switch (a, b) {
        case (.object(let x), .object(let y)):
            return Set(x.keys).union(y.keys).sorted().flatMap { key -> [String] in
                let here = path.isEmpty ? key : path + "." + key
                switch (x[key], y[key]) {
                case (nil, let added?): return ["\(here): added \(added.serialized())"]
                case (let removed?, nil): return ["\(here): removed (was \(removed.serialized()))"]
                case (let p?, let q?): return differences(p, q, path: here)
                default: return []
                }
            }
        case (.array(let x), .array(let y)):
            if let named = namedElements(x), let other = namedElements(y) {
                let orderA = x.compactMap(elementName), orderB = y.compactMap(elementName)
                var lines: [String] = []
                for name in orderA where other[name] == nil {
                    lines.append("\(path).\(name): removed (was \(named[name]!.serialized()))")
                }
                for name in orderB where named[name] == nil {
                    lines.append("\(path).\(name): added \(other[name]!.serialized())")
                }
                for name in orderA {
                    if let counterpart = other[name] { lines += differences(named[name]!, counterpart, path: "\(path).\(name)") }
                }
                let kept = orderA.filter { other[$0] != nil }, keptB = orderB.filter { named[$0] != nil }
                if kept != keptB { lines.append("\(path): order \(orderA) → \(orderB)") }
                return lines
            }
            if x.count == y.count {
                return zip(x, y).enumerated().flatMap { differences($1.0, $1.1, path: "\(path)[\($0)]") }
            }
            return ["\(path): \(a.serialized()) → \(b.serialized())"]
        default:
            return ["\(path): \(a.serialized()) → \(b.serialized())"]
        }
    }

    private static func elementName(_ value: JSONValue) -> String? {
        guard case .object(let object) = value, case .string(let name)? = object["name"] else { return nil }
        return name
    }

    /// Elements keyed by their "name", when every element has a distinct one.
    private static func namedElements(_ items: [JSONValue]) -> [String: JSONValue]? {
        guard !items.isEmpty else { return nil }
        var result: [String: JSONValue] = [:]
        for item in items {
            guard let name = elementName(item), result.updateValue(item, forKey: name) == nil else { return nil }
        }
        return result
    }
}
