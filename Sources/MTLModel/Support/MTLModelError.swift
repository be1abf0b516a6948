/// The one error type of the library: what went wrong, where, and a code the CLI maps to an
/// exit status.
///
/// Rendered as one line: `FILE: at byte 123 (tensor "x"): message`.
public struct MTLModelError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable, Codable {
        /// The input is not a well-formed file of its kind (bad magic, checksum, offsets...).
        case malformed
        /// The file is newer than this reader or needs a feature it does not know.
        case unsupported
        /// The architecture config (JSON or manifest) is invalid.
        case invalidConfig
        /// An argument or an API call is not valid (wrong tensor size, duplicate name...).
        case invalidArgument
        /// The operating system refused a read or write.
        case io
    }

    /// Where in the input the problem is.
    public struct Location: Sendable, Hashable, Codable {
        public var byteOffset: UInt64?
        public var tensor: String?
        public var key: String?
        public var line: Int?

        public init(byteOffset: UInt64? = nil, tensor: String? = nil, key: String? = nil, line: Int? = nil) {
            self.byteOffset = byteOffset
            self.tensor = tensor
            self.key = key
            self.line = line
        }
    }

    public var code: Code
    public var message: String
    public var file: String?
    public var location: Location

    public init(_ code: Code, _ message: String, file: String? = nil, location: Location = .init()) {
        self.code = code
        self.message = message
        self.file = file
        self.location = location
    }

    /// The same error, naming `file` when it did not name one yet.
    public func inFile(_ path: String) -> MTLModelError {
        var copy = self
        if copy.file == nil { copy.file = path }
        return copy
    }

    public var description: String {
        var parts: [String] = []
        if let file { parts.append(TerminalText.escaped(file)) }
        var place: [String] = []
        if let line = location.line { place.append("line \(line)") }
        if let offset = location.byteOffset { place.append("at byte \(offset)") }
        if let tensor = location.tensor { place.append("tensor \"\(TerminalText.escaped(tensor))\"") }
        if let key = location.key { place.append("key \"\(TerminalText.escaped(key))\"") }
        if !place.isEmpty { parts.append(place.joined(separator: ", ")) }
        parts.append(message)
        return parts.joined(separator: ": ")
    }
}

extension MTLModelError {
    static func malformed(_ message: String, at offset: UInt64? = nil, tensor: String? = nil) -> MTLModelError {
        MTLModelError(.malformed, message, location: .init(byteOffset: offset, tensor: tensor))
    }

    static func config(_ key: String, _ message: String) -> MTLModelError {
        MTLModelError(.invalidConfig, message, location: .init(key: key))
    }
}
