/// Reads one JSON object of a config key by key, so that every error names its key path
/// (`fields[2].mapping`) and keys nobody read are reported as unknown.
struct ConfigObject {
    let path: String
    private let values: [String: JSONValue]
    private var read: Set<String> = []

    init(_ value: JSONValue, path: String) throws(MTLModelError) {
        guard case .object(let values) = value else {
            throw .config(path.isEmpty ? "(top level)" : path, "expected an object, found \(value.typeName)")
        }
        self.path = path
        self.values = values
    }

    func keyPath(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    mutating func value(_ key: String) -> JSONValue? {
        read.insert(key)
        guard let value = values[key], value != .null else { return nil }
        return value
    }

    mutating func bool(_ key: String, default fallback: Bool) throws(MTLModelError) -> Bool {
        guard let value = value(key) else { return fallback }
        guard case .bool(let flag) = value else { throw .config(keyPath(key), "expected true or false, found \(value.typeName)") }
        return flag
    }

    mutating func double(_ key: String, default fallback: Double?) throws(MTLModelError) -> Double {
        guard let value = value(key) else {
            guard let fallback else { throw missing(key) }
            return fallback
        }
        return try Self.number(value, keyPath(key))
    }

    mutating func int(_ key: String, default fallback: Int?, range: ClosedRange<Int>) throws(MTLModelError) -> Int {
        guard let value = value(key) else {
            guard let fallback else { throw missing(key) }
            return fallback
        }
        let number = try Self.number(value, keyPath(key))
        guard number == number.rounded(), number >= Double(range.lowerBound), number <= Double(range.upperBound) else {
            throw .config(keyPath(key), "expected a whole number in \(range.lowerBound)...\(range.upperBound), found \(number)")
        }
        return Int(number)
    }

    mutating func string(_ key: String, default fallback: String?) throws(MTLModelError) -> String {
        guard let value = value(key) else {
            guard let fallback else { throw missing(key) }
            return fallback
        }
        guard case .string(let text) = value else { throw .config(keyPath(key), "expected a string, found \(value.typeName)") }
        return text
    }

    mutating func choice<T: ConfigNamed>(_ key: String, default fallback: T) throws(MTLModelError) -> T {
        guard value(key) != nil else { return fallback }
        let name = try string(key, default: nil)
        guard let choice = T(configName: name) else {
            throw .config(keyPath(key), "unknown value \"\(name)\" (expected one of: \(T.configNames.joined(separator: ", ")))")
        }
        return choice
    }

    mutating func list(_ key: String) throws(MTLModelError) -> [JSONValue]? {
        guard let value = value(key) else { return nil }
        guard case .array(let items) = value else { throw .config(keyPath(key), "expected a list, found \(value.typeName)") }
        return items
    }

    mutating func numbers(_ key: String, count: Int?) throws(MTLModelError) -> [Double]? {
        guard let items = try list(key) else { return nil }
        var result: [Double] = []
        for (index, item) in items.enumerated() {
            result.append(try Self.number(item, "\(keyPath(key))[\(index)]"))
        }
        if let count, result.count != count {
            throw .config(keyPath(key), "expected \(count) values (one per task), found \(result.count)")
        }
        return result
    }

    /// A required key is missing: when a key of the object is a near miss of it, say so
    /// ("embeding_dim" for "embedding_dim"), since that is the likely cause.
    func missing(_ key: String) -> MTLModelError {
        let nearMiss = Spelling.closest(to: key, in: values.keys.filter { !read.contains($0) }.sorted())
        return .config(keyPath(key), "missing (required)" + (nearMiss.map { "; the config has \"\($0)\": a misspelling?" } ?? ""))
    }

    /// Keys present in the object that no reader asked for, sorted.
    var unreadKeys: [String] { values.keys.filter { !read.contains($0) }.sorted() }

    /// Fails on the first key nobody read: a typo must not be silently ignored. The keys
    /// read are the ones this object knows, so the closest of them is the likely intent.
    func rejectUnknownKeys(allowed: [String]? = nil) throws(MTLModelError) {
        if let key = unreadKeys.first {
            let known = allowed ?? read.sorted()
            let hint = Spelling.closest(to: key, in: known).map { "; did you mean \"\($0)\"?" } ?? ""
            throw .config(keyPath(key), "unknown key" + (allowed.map { " (expected one of: \($0.joined(separator: ", ")))" } ?? "") + hint)
        }
    }

    static func number(_ value: JSONValue, _ keyPath: String) throws(MTLModelError) -> Double {
        guard case .number(let number) = value else { throw .config(keyPath, "expected a number, found \(value.typeName)") }
        guard number.isFinite else { throw .config(keyPath, "expected a finite number") }
        return number
    }
}
