/// In JSON (`--json` outputs, schema 2) dtypes, roles and compressions are their names
/// (`"int8-rowwise"`, `"optimizer-slot"`, `"zlib"`), as `inspect` prints them: enum numbers
/// mean nothing to a reader of the JSON. Decoding takes the names, and the numbers of schema 1.
protocol NamedCodable: Codable, CaseIterable, CustomStringConvertible, RawRepresentable where RawValue == UInt32 {}

extension NamedCodable {
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(UInt32.self), let value = Self(rawValue: number) {
            self = value
            return
        }
        let name = try container.decode(String.self)
        guard let value = Self.allCases.first(where: { $0.description == name }) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "unknown \(Self.self) \"\(name)\"")
        }
        self = value
    }
}

extension DType: NamedCodable {}
extension TensorRole: NamedCodable {}
extension Compression: NamedCodable {}
