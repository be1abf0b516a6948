import Foundation
import MTLModel

/// A report as one self-contained HTML file (`--html FILE`): inline CSS and SVG, no script, no
/// reference to anything outside the file, so it reads offline, prints, and attaches to a
/// review as it is. Every string from a model or a dataset is escaped.
struct HTMLReport {
    let title: String
    private var parts: [String] = []

    /// - Parameter subtitle: what the report is of (the command's inputs), under the title.
    init(title: String, subtitle: String) {
        self.title = title
        parts.append("<header><h1>\(Self.escaped(title))</h1><p class=\"subtitle\">\(Self.escaped(subtitle))</p></header>")
    }

    mutating func heading(_ text: String) {
        parts.append("<h2>\(Self.escaped(text))</h2>")
    }

    mutating func paragraph(_ text: String) {
        parts.append("<p>\(Self.escaped(text))</p>")
    }

    /// A table; cells are text (escaped), numbers right-aligned.
    mutating func table(_ headers: [String], _ rows: [[String]]) {
        var html = "<table><thead><tr>" + headers.map { "<th>\(Self.escaped($0))</th>" }.joined() + "</tr></thead><tbody>"
        for row in rows {
            html += "<tr>" + row.map { cell in
                let numeric = Double(cell.replacingOccurrences(of: "%", with: "")) != nil
                return numeric ? "<td class=\"number\">\(Self.escaped(cell))</td>" : "<td>\(Self.escaped(cell))</td>"
            }.joined() + "</tr>"
        }
        parts.append(html + "</tbody></table>")
    }

    /// A table folded under a one-line summary (the reader unfolds it; no script).
    mutating func folded(_ summary: String, _ headers: [String], _ rows: [[String]]) {
        var inner = HTMLReport(title: "", subtitle: "")
        inner.parts = []
        inner.table(headers, rows)
        parts.append("<details><summary>\(Self.escaped(summary))</summary>\(inner.parts.joined())</details>")
    }

    /// Charts side by side (they wrap on a narrow page and when printed).
    mutating func charts(_ charts: [SVGChart]) {
        parts.append("<div class=\"charts\">" + charts.map { "<figure>\($0.svg)</figure>" }.joined() + "</div>")
    }

    var document: String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="generator" content="mtl-model \(MTLModelVersion.tool)">
        <title>\(Self.escaped(title))</title>
        <style>\(Self.style)</style>
        </head><body>
        \(parts.joined(separator: "\n"))
        </body></html>

        """
    }

    /// Writes the report at `path`, atomically (complete, or not there at all).
    func write(to path: String) throws {
        let file = try AtomicOutputFile(targetPath: path)
        try file.append(Array(document.utf8))
        try file.commit()
    }

    static func escaped(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            case _ where character.value < 0x20 && character != "\n" && character != "\t":
                result += "&#xFFFD;"  // control characters: shown as such, never passed on
            default: result.unicodeScalars.append(character)
            }
        }
        return result
    }

    private static let style = """
        body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;margin:24px auto;max-width:1100px;padding:0 16px}
        h1{font-size:22px;margin:0}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dce4;padding-bottom:4px}
        .subtitle{color:#5b6372;margin:4px 0 0;word-break:break-all}
        table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{padding:3px 10px;border-bottom:1px solid #e5e8ee;text-align:left}
        th{background:#f3f5f8;font-weight:600}td.number{text-align:right;font-variant-numeric:tabular-nums}
        .charts{display:flex;flex-wrap:wrap;gap:12px}details{margin:6px 0}summary{cursor:pointer}figure{margin:0}svg.chart{background:#fff;border:1px solid #e5e8ee}
        svg text{font:11px system-ui,sans-serif;fill:#394150}svg .title{font-size:13px;font-weight:600}svg .box-title{font-weight:600;fill:#1d2330}
        @media print{body{margin:0;max-width:none}.charts{break-inside:avoid}h2{break-after:avoid}}
        """
}
