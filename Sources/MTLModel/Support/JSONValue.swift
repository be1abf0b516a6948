import Foundation

/// A parsed JSON document, for configs whose keys are checked one by one.
public enum JSONValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// Parses `data` as one JSON document; a syntax error names its line and column.
    public static func parse(_ data: Data) throws(MTLModelError) -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw syntaxError(in: data)
        }
    }

    /// Where and why `data` is not JSON: JSONSerialization says "… around character N."
    /// (a 0-based byte index), which becomes a line (the error's location) and a column.
    private static func syntaxError(in data: Data) -> MTLModelError {
        let text: String
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            return MTLModelError(.invalidConfig, "not valid JSON")
        } catch {
            text = ((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String) ?? "\(error)"
        }
        guard let range = text.range(of: #"around character [0-9]+"#, options: .regularExpression),
              let index = Int(text[range].split(separator: " ").last ?? "") else {
            return MTLModelError(.invalidConfig, "not valid JSON: \(text)")
        }
        let (line, column) = position(ofByte: index, in: data)
        let why = text[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
        return MTLModelError(.invalidConfig, "not valid JSON at column \(column): \(why.isEmpty ? "syntax error" : why.lowercased())",
                             location: .init(line: line))
    }

    /// 1-based line and column (in bytes) of byte `index` of `data`.
    static func position(ofByte index: Int, in data: Data) -> (line: Int, column: Int) {
        var line = 1, column = 1
        for byte in data.prefix(max(0, index)) {
            if byte == UInt8(ascii: "\n") { line += 1; column = 1 } else { column += 1 }
        }
        return (line, column)
    }

    /// Compact JSON text with sorted keys (stable, diffable).
    public func serialized(pretty: Bool = false) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(self)) ?? Data("null".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "a list"
        case .object: "an object"
        }
    }
}
