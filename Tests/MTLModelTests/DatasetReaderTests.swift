import Foundation
import Testing
@testable import MTLModel

@Suite("Dataset text format")
struct DatasetReaderTests {
    static let arch = try! architecture(fromConfig: "small.json")  // tasks ctr, follow

    func read(_ text: String, skipInvalid: Bool = false, batchSize: Int = 1000) throws -> (SampleBatch, DatasetReader) {
        let directory = TemporaryDirectory()
        let path = directory.path("data.txt")
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        let reader = try DatasetReader(path: path, architecture: Self.arch, skipInvalid: skipInvalid)
        var batch = SampleBatch(taskCount: 2)
        var all = SampleBatch(taskCount: 2)
        while try reader.nextBatch(into: &batch, maxCount: batchSize) {
            for i in 0..<batch.count {
                let range = Int(batch.entryStart[i])..<Int(batch.entryStart[i + 1])
                all.append(labels: Array(batch.labels[(i * 2)..<(i * 2 + 2)]),
                           entries: range.map { (Int(batch.entryField[$0]), batch.entryID[$0], batch.entryValue[$0]) },
                           line: batch.lineNumbers[i])
            }
        }
        return (all, reader)
    }

    @Test("Labels, bags, values, comments, blanks, tabs, CRLF, no trailing newline")
    func parsesEverything() throws {
        let text = "# comment\n\n  \t\n1,0 user_id:123 tags:5:0.5\ttags:9:-1.5e-1\r\n  # indented\n-,1 hour:18446744073709551615\nuser_id:000000000000000000004 item_id:9223372036854775808\n0,0"
        let (batch, _) = try read(text, batchSize: 2)
        #expect(batch.count == 4)
        #expect(batch.lineNumbers == [4, 6, 7, 8])
        #expect(batch.labels == [1, 0, -1, 1, -1, -1, 0, 0])
        #expect(batch.entryStart == [0, 3, 4, 6, 6])
        #expect(batch.entryField == [0, 2, 2, 3, 0, 1])
        #expect(batch.entryID == [123, 5, 9, UInt64.max, 4, 1 << 63])
        #expect(batch.entryValue == [1, 0.5, -0.15, 1, 1, 1])
    }

    @Test("A byte-order mark, labels written as 1.0 / 0.0, and a binary token named in hex")
    func forgiving() throws {
        let (batch, _) = try read("\u{FEFF}1.0,0.0 user_id:3\n0.00,1. user_id:4\n-,1.0 hour:2\n")
        #expect(batch.count == 3)
        #expect(batch.labels == [1, 0, 0, 1, -1, 1])
        let directory = TemporaryDirectory()
        let path = directory.path("bin.txt")
        try Data([0x31, 0x2C, 0x30, 0x20] + Array("user_id:3 ".utf8) + [0xFF, 0xFE, 0x0A]).write(to: URL(fileURLWithPath: path))
        let reader = try DatasetReader(path: path, architecture: Self.arch)
        var batch2 = SampleBatch(taskCount: 2)
        #expect { _ = try reader.nextBatch(into: &batch2, maxCount: 10) } throws: { error in
            (error as? MTLModelError)?.message == "token \"<not UTF-8: ff fe>\": expected field:id or field:id:value"
        }
    }

    static let invalidLines: [(line: String, message: String)] = [
        ("1,0 colour:3", "unknown field \"colour\" (the model's fields: user_id, item_id, tags, hour)"),
        ("1,0 user_id:3 \u{FF}\u{FE}", "expected field:id or field:id:value"),
        ("1.5,0 user_id:3", "labels must be 0, 1 (or 0.0, 1.0) or -"),
        ("01,0 user_id:3", "labels must be 0, 1 (or 0.0, 1.0) or -"),
        ("1,0 user_id", "expected field:id or field:id:value"),
        ("1,0 user_id:", "missing id"),
        ("1,0 user_id:-3", "not a decimal unsigned integer"),
        ("1,0 user_id:12a", "not a decimal unsigned integer"),
        ("1,0 user_id:18446744073709551616", "does not fit in 64 bits"),
        ("1,0 user_id:99999999999999999999", "does not fit in 64 bits"),
        ("1,0 user_id:123456789012345678x", "not a decimal unsigned integer"),
        ("1,0 user_id:1234567890123456789x", "not a decimal unsigned integer"),
        ("1,0 tags:3:", "value is not a decimal number"),
        ("1,0 tags:3:nan", "value is not a decimal number"),
        ("1,0 tags:3:inf", "value is not a decimal number"),
        ("1,0 tags:3:0x1p3", "value is not a decimal number"),
        ("1,0 tags:3:1.5.2", "not a finite decimal number"),
        ("1,0 tags:3:1e999", "not a finite decimal number"),
        ("1,0 tags:3:1:2", "value is not a decimal number"),
        ("1 user_id:3", "1 labels, the model has 2 tasks"),
        ("1,0,1 user_id:3", "3 labels, the model has 2 tasks"),
        ("1,2 user_id:3", "labels must be 0, 1 (or 0.0, 1.0) or -"),
        ("yes,no user_id:3", "labels must be 0, 1 (or 0.0, 1.0) or -"),
        ("1,0 user_id:3 \u{1B}[2J:4", "unknown field \"\\u{1b}[2J\""),
    ]

    @Test("A malformed line is an error naming the file, the line and the token", arguments: invalidLines)
    func invalidLine(_ c: (line: String, message: String)) throws {
        #expect {
            _ = try read("# header\n0,0 hour:1\n" + c.line + "\n0,0 hour:2\n")
        } throws: { error in
            guard let error = error as? MTLModelError else { return false }
            return error.location.line == 3 && error.message.contains(c.message) && error.file?.hasSuffix("data.txt") == true
        }
    }

    @Test("--skip-invalid skips malformed lines and counts them")
    func skipInvalid() throws {
        let (batch, reader) = try read("0,0 hour:1\n1,0 colour:3\n1,1 hour:2 tags:1 user_id:x\n0,1 hour:3\n", skipInvalid: true)
        #expect(batch.count == 2)
        #expect(batch.lineNumbers == [1, 4])
        #expect(batch.entryID == [1, 3])
        #expect(reader.skippedLineCount == 2)
        #expect(reader.firstSkippedError?.location.line == 2)
    }

    @Test("Field names are found by their bytes among hundreds, prefixes and near misses are not")
    func fieldNameIndex() {
        let names = (0..<500).map { "f\($0)" } + ["user_id", "ü", "a b"]
        let index = FieldNameIndex(names)
        func lookup(_ name: String) -> Int? { Array(name.utf8).withUnsafeBufferPointer { index.lookup($0) } }
        for (i, name) in names.enumerated() { #expect(lookup(name) == i, "\(name)") }
        for unknown in ["f500", "f", "f01", "user_i", "user_idx", "u", "", "F1", "a  b"] { #expect(lookup(unknown) == nil, "\(unknown)") }
        #expect(FieldNameIndex([]).lookup(UnsafeBufferPointer(start: nil, count: 0)) == nil)
    }

    @Test("Lines longer than the read buffer are read whole")
    func longLine() throws {
        let tokens = (0..<200_000).map { "tags:\($0 % 8):0.5" }.joined(separator: " ")
        let (batch, _) = try read("1,0 " + tokens + "\n0,1 hour:2\n")
        #expect(batch.count == 2)
        #expect(batch.entryStart[1] == 200_000)
    }
}
