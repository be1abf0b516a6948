import Foundation
import Testing
@testable import MTLModel
@testable import MTLModelCLI

/// `--html` reports rendered in a real browser (Debian's chromium, headless): each loads
/// without an error, each chart has a size, nothing refers outside the file.
@Suite("HTML reports in a browser")
struct HTMLReportTests {
    /// What the browser saw: each chart's width and height, the errors raised, a screenshot.
    struct Rendering {
        var charts: [[Double]]
        var errors: [String]
        var screenshot: Data
    }

    static var chromium: String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Loads `html` in headless chromium: a copy with a probe (errors, then the charts' sizes
    /// into the title) is dumped as the DOM after load, the report itself is screenshot.
    static func render(_ html: String) throws -> Rendering? {
        guard let chromium else {
            #expect(ProcessInfo.processInfo.environment["CI"] == nil, "chromium is needed in CI (scripts/install-deps.sh installs it)")
            return nil
        }
        let directory = TemporaryDirectory()
        let page = try String(contentsOfFile: html, encoding: .utf8)
        let probe = """
            <script>window.__errors=[];addEventListener('error',e=>__errors.push(String(e.message||e.target&&e.target.outerHTML)),true);
            addEventListener('load',()=>{document.title=JSON.stringify({errors:__errors,charts:[...document.querySelectorAll('svg.chart')]
            .map(s=>{const r=s.getBoundingClientRect();return [r.width,r.height]})})});</script>
            """
        try page.replacingOccurrences(of: "<head>", with: "<head>" + probe).write(toFile: directory.path("probe.html"), atomically: true, encoding: .utf8)
        let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--user-data-dir=" + directory.path("profile")]
        let dom = try runProcess(chromium, flags + ["--virtual-time-budget=2000", "--dump-dom", "file://" + directory.path("probe.html")])
        #expect(dom.status == 0, "\(dom.stderr)")
        guard let start = dom.stdout.range(of: "<title>"), let end = dom.stdout.range(of: "</title>") else {
            Issue.record("no title in the dumped DOM")
            return nil
        }
        let title = String(dom.stdout[start.upperBound..<end.lowerBound])
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&amp;", with: "&")
        let probed = try JSONSerialization.jsonObject(with: Data(title.utf8)) as! [String: Any]
        // The report itself, its console logged to stderr: a message there is an error of the page.
        let shot = try runProcess(chromium, flags + ["--enable-logging=stderr", "--v=0", "--window-size=1200,1600",
                                                     "--screenshot=" + directory.path("shot.png"), "file://" + html])
        #expect(shot.status == 0, "\(shot.stderr)")
        let console = shot.stderr.split(separator: "\n").filter { $0.contains(":CONSOLE") }
        return Rendering(charts: probed["charts"] as! [[Double]], errors: probed["errors"] as! [String] + console.map(String.init),
                         screenshot: try Data(contentsOf: URL(fileURLWithPath: directory.path("shot.png"))))
    }

    /// Nothing in `html` that a browser would fetch, and no script.
    static func expectSelfContained(_ html: String) throws {
        let text = try String(contentsOfFile: html, encoding: .utf8).lowercased()
        for reference in ["http:", "https:", "src=", "href=", "<script", "<link", "url(", "@import", "<iframe", "<img"] {
            #expect(!text.contains(reference), "\(reference) in \(html)")
        }
    }

    static func expectRendered(_ html: String, charts: Int) throws {
        try expectSelfContained(html)
        guard let rendering = try render(html) else { return }
        #expect(rendering.errors == [])
        #expect(rendering.charts.count == charts)
        #expect(rendering.charts.allSatisfy { $0.count == 2 && $0[0] > 100 && $0[1] > 100 }, "\(rendering.charts)")
        // A PNG of the page, of some substance (a blank page compresses to a few kB).
        #expect(rendering.screenshot.starts(with: [0x89, 0x50, 0x4E, 0x47]) && rendering.screenshot.count > 20_000)
    }

    @Test("eval --html: the metrics, and per task a ROC curve and a reliability diagram")
    func eval() throws {
        let directory = TemporaryDirectory()
        let html = directory.path("eval.html")
        let result = try runCLI(["eval", TestPaths.fixture("v1.0/small.mtlm"), TestPaths.fixture("predict/small.txt"), "--html", html,
                                 "--group-by", "user_id"])
        #expect(result.status == 0, "\(result.stderr)")
        let text = try String(contentsOfFile: html, encoding: .utf8)
        #expect(text.contains("ROC, ctr") && text.contains("Reliability, follow") && text.contains("fused score AUC") && text.contains("group AUC"))
        try Self.expectRendered(html, charts: 4)
    }

    @Test("quantize --eval --html: sizes, reconstruction error, each step's ΔAUC, calibration before and after; written when the gate fails too")
    func quantize() throws {
        let directory = TemporaryDirectory()
        let html = directory.path("q.html")
        let result = try runCLI(["quantize", TestPaths.fixture("v1.0/small.mtlm"), directory.path("q.mtlm"), "--embeddings", "int4",
                                 "--eval", TestPaths.fixture("predict/small.txt"), "--max-auc-drop=-1", "--html", html])
        #expect(result.status == 1, "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.path("q.mtlm")))
        let text = try String(contentsOfFile: html, encoding: .utf8)
        #expect(text.contains("Gate: FAILED") && text.contains("ΔAUC per step and task") && text.contains("quantize table item_id (int4): ctr"))
        try Self.expectRendered(html, charts: 5)
    }

    @Test("convert --html without --eval: sizes and reconstruction error")
    func convert() throws {
        let directory = TemporaryDirectory()
        let html = directory.path("c.html")
        let result = try runCLI(["convert", TestPaths.fixture("v1.0/small-training.mtlm"), directory.path("s.mtlm"), "--to", "serving",
                                 "--embeddings", "int8", "--html", html])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try String(contentsOfFile: html, encoding: .utf8).contains("training_state"))
        try Self.expectRendered(html, charts: 2)
    }

    @Test("inspect --html: the architecture as a diagram (fields, groups, interaction, layers, heads, fusion), sizes by section", arguments: [
        "v1.0/small-training.mtlm", "v1.3/small-training.mtlm"])
    func inspect(_ fixture: String) throws {
        let directory = TemporaryDirectory()
        let html = directory.path("i.html")
        let result = try runCLI(["inspect", TestPaths.fixture(fixture), "--tensors", "--html", html])
        #expect(result.status == 0, "\(result.stderr)")
        let text = try String(contentsOfFile: html, encoding: .utf8)
        for part in ["user_id", "field-weighted interaction", "shared.0:", "tower.ctr.0:", "head.follow:", "fusion:", "training_state", "embedding.user_id.weight"] {
            #expect(text.contains(part), "\(part)")
        }
        if fixture.hasPrefix("v1.3") { #expect(text.contains("small-training-00003-of-00003.mtlm")) }
        try Self.expectRendered(html, charts: 2)
    }

    @Test("diff --html: changed tensors, each table's rows by change and its most changed ids, the predictions' shift per task")
    func diff() throws {
        let directory = TemporaryDirectory()
        let a = TestPaths.fixture("v1.0/small.mtlm"), b = directory.path("b.mtlm")
        #expect(try runCLI(["quantize", a, b, "--embeddings", "int8"]).status == 0)
        let html = directory.path("d.html")
        let result = try runCLI(["diff", a, b, "--rows", "--data", TestPaths.fixture("predict/small.txt"), "--html", html])
        #expect(result.status == 1, "\(result.stderr)")
        let text = try String(contentsOfFile: html, encoding: .utf8)
        for part in ["Relative L2 change", "Rows of item_id by relative change", "Most changed ids of item_id", "Samples by |Δp|, ctr",
                     "p of a against p of b, follow", "top 1% overlap"] {
            #expect(text.contains(HTMLReport.escaped(part)), "\(part)")
        }
        let fields = try ModelFile(path: a).architecture.fields.count
        try Self.expectRendered(html, charts: 2 + fields + 2 * 2)
        // A model against itself: equal, each table's rows all unchanged.
        let same = try runCLI(["diff", a, a, "--html", html])
        #expect(same.status == 0)
        #expect(try String(contentsOfFile: html, encoding: .utf8).contains("The models are equal within tolerance."))
        try Self.expectRendered(html, charts: fields)
    }

    @Test("the sample reports of docs/reports load in the browser, self-contained", arguments: ["inspect", "eval", "convert", "diff"])
    func samples(_ name: String) throws {
        let html = TestPaths.packageRoot.appendingPathComponent("docs/reports/\(name).html").path
        try Self.expectSelfContained(html)
        guard let rendering = try Self.render(html) else { return }
        #expect(rendering.errors == [])
        #expect(!rendering.charts.isEmpty && rendering.charts.allSatisfy { $0[0] > 100 && $0[1] > 100 })
    }

    @Test("the browser check can fail: a console error, a missing resource and an external reference are caught")
    func checkCatches() throws {
        let directory = TemporaryDirectory()
        let html = directory.path("bad.html")
        try "<!DOCTYPE html><html><head><title>t</title></head><body><img src=\"missing.png\"><script>console.error('boom')</script></body></html>"
            .write(toFile: html, atomically: true, encoding: .utf8)
        guard let rendering = try Self.render(html) else { return }
        #expect(rendering.errors.contains { $0.contains("boom") } && rendering.errors.contains { $0.contains("missing.png") }, "\(rendering.errors)")
        #expect(rendering.charts.isEmpty)
        let text = try String(contentsOfFile: html, encoding: .utf8).lowercased()
        #expect(text.contains("src=") && text.contains("<script"))
    }

    @Test("a hostile name is escaped, and a report is never written over an input")
    func hostile() throws {
        let directory = TemporaryDirectory()
        let data = directory.path("<script>alert(1)<\\script>.txt")
        try FileManager.default.copyItem(atPath: TestPaths.fixture("predict/small.txt"), toPath: data)
        let html = directory.path("eval.html")
        #expect(try runCLI(["eval", TestPaths.fixture("v1.0/small.mtlm"), data, "--html", html]).status == 0)
        try Self.expectSelfContained(html)
        #expect(try String(contentsOfFile: html, encoding: .utf8).contains("&lt;script&gt;alert(1)&lt;\\script&gt;.txt"))
        let overwrite = try runCLI(["eval", TestPaths.fixture("v1.0/small.mtlm"), data, "--html", data])
        #expect(overwrite.status == 2, "\(overwrite.stdout)")
    }
}
