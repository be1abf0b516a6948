import Foundation
import MTLModel

/// Where commands print: results on stdout, diagnostics and progress on stderr.
enum Terminal {
    /// The `schemaVersion` of every `--json` document. 2: dtypes, roles and compressions are
    /// names, feature ids strings (README, "JSON output").
    static let jsonSchemaVersion = 2

    static func output(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    static var stderrIsTerminal: Bool { isatty(2) != 0 }

    /// A progress callback that redraws one stderr line when stderr is a terminal, and does
    /// nothing otherwise (logs stay clean).
    static func progress(_ label: String) -> (UInt64, UInt64) -> Void {
        guard stderrIsTerminal else { return { _, _ in } }
        return { done, total in
            let percent = total == 0 ? 100 : Int(Double(done) / Double(total) * 100)
            FileHandle.standardError.write(Data("\r\(label) \(percent)% (\(Format.bytes(done)))\(done == total ? "\n" : "")".utf8))
        }
    }

    /// Prints `value` as the one JSON document of a `--json` run.
    ///
    /// JSON has no NaN or Inf: a non-finite number (a relative change from a zero row, the
    /// statistics of a tensor holding NaN) is written as `null`, so the document is valid
    /// whatever the numbers are (docs/RELIABILITY.md).
    static func json<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: nonFinite, negativeInfinity: nonFinite, nan: nonFinite)
        let data = try encoder.encode(value)
        output(String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\"\(escapedNonFinite)\"", with: "null"))
    }

    /// The placeholder a non-finite number is encoded as, then replaced by `null`. Its control
    /// characters are escaped by the encoder (`\u0001`), and no string mtl-model writes holds
    /// them unescaped next to these letters.
    private static let nonFinite = "\u{1}non-finite\u{1}"
    private static let escapedNonFinite = "\\u0001non-finite\\u0001"
}

/// Number formatting for human output.
enum Format {
    static func bytes(_ count: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }

    static func number(_ value: Double?) -> String {
        guard let value else { return "-" }
        return String(format: "%.6g", value)
    }

    /// A table with left-aligned columns separated by two spaces.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    /// Sizes by section before and after a rewrite, with the total.
    static func sizes(_ sections: [QuantizationReport.SectionSize], total: QuantizationReport.SectionSize) -> String {
        table(["section", "before", "after", "ratio"], (sections + [total]).map {
            [$0.section, bytes($0.byteCountBefore), bytes($0.byteCountAfter), String(format: "%.3f", $0.ratio)]
        })
    }

    /// The tensors a rewrite stored in another dtype, with their reconstruction error.
    static func dtypeChanges(_ changes: [QuantizationReport.TensorChange]) -> String {
        table(["tensor", "from", "to", "bytes after", "mean rel. error", "max rel. error"], changes.map {
            [TerminalText.escaped($0.name), $0.dtypeBefore.description, $0.dtypeAfter.description, bytes($0.byteCountAfter),
             number($0.meanRelativeError), number($0.maxRelativeError)]
        })
    }
}
