import Foundation
import Testing
@testable import MTLModel

/// Outputs never destroy inputs, devices or links; inputs that are not files, or not the kind
/// of file expected, get a clear error (docs/RELIABILITY.md, "Outputs" and "Wrong kind of file").
@Suite("Outputs and inputs: nothing destroyed, the wrong file named")
struct OutputSafetyTests {
    static let model = TestPaths.fixture("v1.0/small.mtlm")
    static let data = TestPaths.fixture("predict/small.txt")

    /// Commands whose output is one of their inputs, by the same path: each refused, the input intact.
    static let sameFileCases: [[String]] = [
        ["quantize", "IN", "IN"], ["dequantize", "IN", "IN"], ["convert", "IN", "IN", "--to", "serving"],
        ["delta", "IN", "OTHER", "IN"], ["delta", "OTHER", "IN", "IN"], ["predict", "IN", "DATA", "-o", "IN"],
        ["predict", "IN", "DATA", "-o", "DATA"], ["export", "IN", "IN"],
    ]

    @Test("An output that is an input is refused before anything is written", arguments: sameFileCases)
    func outputIsInput(arguments: [String]) throws {
        let directory = TemporaryDirectory()
        let input = directory.path("m.mtlm"), other = directory.path("o.mtlm"), data = directory.path("d.txt")
        try FileManager.default.copyItem(atPath: Self.model, toPath: input)
        try FileManager.default.copyItem(atPath: TestPaths.fixture("v1.0/small-training.mtlm"), toPath: other)
        try FileManager.default.copyItem(atPath: Self.data, toPath: data)
        let before = try Data(contentsOf: URL(fileURLWithPath: input)), beforeData = try Data(contentsOf: URL(fileURLWithPath: data))
        // export takes the format from the output's extension: name the input so it has one.
        let exportInput = directory.path("m.safetensors")
        var args = arguments.map { $0 == "IN" ? input : $0 == "OTHER" ? other : $0 == "DATA" ? data : $0 }
        if arguments.first == "export" {
            try FileManager.default.copyItem(atPath: input, toPath: exportInput)
            args = ["export", exportInput, exportInput]
        }
        let result = try runCLI(args)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("is the same file as the input"), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(try Data(contentsOf: URL(fileURLWithPath: input)) == before)
        #expect(try Data(contentsOf: URL(fileURLWithPath: data)) == beforeData)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path).filter { $0.hasPrefix(".") }.isEmpty)
    }

    @Test("import and apply refuse an output that is an input")
    func importAndApply() throws {
        let directory = TemporaryDirectory()
        let checkpoint = directory.path("c.safetensors"), base = directory.path("base.mtlm"), delta = directory.path("d.mtlmd")
        #expect(try runCLI(["export", Self.model, checkpoint]).status == 0)
        try FileManager.default.copyItem(atPath: TestPaths.fixture("v1.2/small-edited.mtlmd"), toPath: delta)
        try FileManager.default.copyItem(atPath: Self.model, toPath: base)
        let before = try [checkpoint, base, delta].map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        for arguments in [["import", checkpoint, checkpoint], ["apply", base, delta, base], ["apply", base, delta, delta]] {
            let result = try runCLI(arguments)
            #expect(result.status == 2, "\(arguments)")
            #expect(result.stderr.contains("is the same file as the input"), "\(arguments): \(result.stderr)")
        }
        #expect(try [checkpoint, base, delta].map { try Data(contentsOf: URL(fileURLWithPath: $0)) } == before)
    }

    @Test("A link to an input is refused; a link to another file is followed and stays a link")
    func links() throws {
        let directory = TemporaryDirectory()
        let input = directory.path("m.mtlm"), target = directory.path("t.mtlm")
        try FileManager.default.copyItem(atPath: Self.model, toPath: input)
        try FileManager.default.createSymbolicLink(atPath: directory.path("to-input.mtlm"), withDestinationPath: input)
        let refused = try runCLI(["quantize", input, directory.path("to-input.mtlm")])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("is the same file as the input \(input)"), "\(refused.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: input)) == Data(contentsOf: URL(fileURLWithPath: Self.model)))

        #expect(FileManager.default.createFile(atPath: target, contents: Data("old".utf8)))
        try FileManager.default.createSymbolicLink(atPath: directory.path("link.mtlm"), withDestinationPath: target)
        let written = try runCLI(["quantize", input, directory.path("link.mtlm")])
        #expect(written.status == 0, "\(written.stderr)")
        let attributes = try FileManager.default.attributesOfItem(atPath: directory.path("link.mtlm"))
        #expect(attributes[.type] as? FileAttributeType == .typeSymbolicLink)
        #expect(ModelVerifier().verify(try ModelFile(path: target)).isValid)

        try FileManager.default.createSymbolicLink(atPath: directory.path("dangling.mtlm"), withDestinationPath: directory.path("missing/x"))
        let dangling = try runCLI(["quantize", input, directory.path("dangling.mtlm")])
        #expect(dangling.status == 2)
        #expect(dangling.stderr.contains("symbolic link to a file that does not exist"), "\(dangling.stderr)")
    }

    @Test("A character device is written in place, never renamed over")
    func device() throws {
        let directory = TemporaryDirectory()
        let device = directory.path("null")
        // A device node of our own (the same device as /dev/null), so that a failure cannot
        // break the machine's /dev/null. Creating one needs root; elsewhere /dev/null itself
        // is checked, which a rename would have replaced.
        let madeOwn = mknod(device, S_IFCHR | 0o666, dev_t((1 << 8) | 3)) == 0  // makedev(1, 3)
        let path = madeOwn ? device : "/dev/null"
        for arguments in [["predict", Self.model, Self.data, "-o", path], ["quantize", Self.model, path], ["dequantize", Self.model, path]] {
            let result = try runCLI(arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            var info = stat()
            #expect(stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFCHR, "\(arguments) replaced the device")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path) == (madeOwn ? ["null"] : []))
    }

    @Test("-o - writes to standard output; a model cannot go to a pipe")
    func standardOutput() throws {
        let file = try runCLI(["predict", Self.model, Self.data])
        let dash = try runCLI(["predict", Self.model, Self.data, "-o", "-"])
        #expect(dash.status == 0)
        #expect(dash.stdout == file.stdout)
        #expect(dash.stdout.hasPrefix("ctr\tfollow\tfused\n"))
    }

    @Test("A FIFO given as a model is refused at once (no hang)")
    func fifo() throws {
        let directory = TemporaryDirectory()
        let fifo = directory.path("pipe")
        #expect(mkfifo(fifo, 0o600) == 0)
        for arguments in [["inspect", fifo], ["verify", fifo], ["import", fifo, directory.path("o.mtlm")], ["eval", fifo, Self.data]] {
            let result = try runCLI(arguments)
            #expect(result.status == 2)
            #expect(result.stderr.contains("is a FIFO (named pipe), not a regular file"), "\(arguments): \(result.stderr)")
        }
    }

    @Test("A gzip-compressed dataset is read as it is: a file, concatenated members, standard input; damage is named")
    func gzipDatasets() throws {
        let directory = TemporaryDirectory()
        let gz = directory.path("d.txt.gz"), two = directory.path("two.gz"), truncated = directory.path("t.gz")
        let compress = try runProcess("/bin/sh", ["-c", "gzip -c '\(Self.data)' > '\(gz)' && cat '\(gz)' '\(gz)' > '\(two)' && head -c 60 '\(gz)' > '\(truncated)'"])
        #expect(compress.status == 0, "\(compress.stderr)")
        let plain = try runCLI(["predict", Self.model, Self.data])
        #expect(try runCLI(["predict", Self.model, gz]).stdout == plain.stdout)
        let lines = plain.stdout.split(separator: "\n")
        #expect(try runCLI(["predict", Self.model, two]).stdout.split(separator: "\n") == lines + lines.dropFirst())
        let piped = try runProcess("/bin/sh", ["-c", "'\(TestPaths.executable)' predict '\(Self.model)' - < '\(gz)'"])
        #expect(piped.stdout == plain.stdout)
        let cut = try runCLI(["eval", Self.model, truncated])
        #expect(cut.status == 2)
        #expect(cut.stderr.contains("t.gz: gzip data ends early, at compressed byte 60 (truncated file?)"), "\(cut.stderr)")
    }

    @Test("The wrong kind of file is named, with what to run")
    func wrongKind() throws {
        let directory = TemporaryDirectory()
        let checkpoint = directory.path("c.safetensors")
        #expect(try runCLI(["export", Self.model, checkpoint]).status == 0)
        let gz = directory.path("d.txt.gz")
        #expect(FileManager.default.createFile(atPath: gz, contents: Data([0x1F, 0x8B, 0x08, 0x00] + [UInt8](repeating: 0, count: 16))))
        let cases: [([String], String)] = [
            (["inspect", checkpoint], "is a safetensors checkpoint, not an .mtlm model: convert it with mtl-model import"),
            (["verify", Self.data], "is a text file, not an .mtlm model"),
            (["eval", Self.model, Self.model], "is an .mtlm model, not a dataset: the model comes first"),
            (["predict", Self.model, gz], "gzip data is corrupt at compressed byte"),
            (["import", Self.model, directory.path("x.mtlm")], "is an .mtlm model already, not a safetensors checkpoint"),
            (["predict", TestPaths.fixture("v1.2/small-edited.mtlmd"), Self.data], "is a delta, not a model: rebuild the model with mtl-model apply"),
            (["import", Self.data, directory.path("x.mtlm")], "is a text file, not a safetensors checkpoint"),
        ]
        for (arguments, message) in cases {
            let result = try runCLI(arguments)
            #expect(result.status == 2, "\(arguments)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
        }
    }
}
