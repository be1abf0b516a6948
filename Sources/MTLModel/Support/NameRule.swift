/// The one rule for names read from files and configs: 1 to `limit` bytes of ASCII letters,
/// digits, `_` and `-`, and `.` where names are joined by dots (tensor names). Field, group
/// and task names exclude `.` and `:` since they become parts of tensor names and dataset
/// tokens (`embedding.{field}.weight`, `field:id`).
enum NameRule {
    static func isValid(_ name: String, limit: Int, allowingDots: Bool) -> Bool {
        let bytes = name.utf8
        guard (1...max(limit, 1)).contains(bytes.count) else { return false }
        return bytes.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F || byte == 0x2D || (allowingDots && byte == 0x2E)
        }
    }
}
