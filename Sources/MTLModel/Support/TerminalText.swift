/// Makes untrusted strings (tensor names, metadata, paths) safe to print on a terminal.
public enum TerminalText {
    /// `text` with control characters (C0, DEL, C1) and backslashes escaped, so a hostile
    /// name cannot move the cursor, change colours or forge output lines.
    public static func escaped(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x00..<0x20, 0x7F..<0xA0:
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
