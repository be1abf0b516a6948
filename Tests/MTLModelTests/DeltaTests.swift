import Foundation
import Testing
@testable import MTLModel

@Suite("delta and apply")
struct DeltaTests {
    /// `new`: the base with rows changed in every table, keys replaced, a vocabulary grown.
    func edited(_ directory: TemporaryDirectory) throws -> String {
        let path = directory.path("new.mtlm")
        var arch = try architecture(fromConfig: "small.json")
        arch.fields[3].vocabSize = 26  // hour grows by two rows
        try copyModel(TestPaths.fixture("v1.0/small.mtlm"), to: path, architecture: arch,
                      shapes: ["embedding.hour.weight": [26, 4], "linear.hour.weight": [26, 1]]) { name, bytes in
            switch name {
            case "embedding.user_id.weight": setFloat(&bytes, 5 * 4, 9)
            case "embedding.item_id.keys": bytes.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(424_242), toByteOffset: 16, as: UInt64.self) }
            case "embedding.hour.weight": bytes += (0..<8).flatMap { i in withUnsafeBytes(of: Float(i)) { Array($0) } }
            case "linear.hour.weight": bytes += (0..<2).flatMap { i in withUnsafeBytes(of: Float(i)) { Array($0) } }
            case "shared.1.weight": for i in 0..<48 { setFloat(&bytes, i, Float(i)) }
            default: break
            }
        }
        return path
    }

    @Test("apply(base, delta(base, new)) is new, byte for byte in every tensor, with its config, metadata and provenance")
    func roundTrip() throws {
        let directory = TemporaryDirectory()
        let base = TestPaths.fixture("v1.0/small.mtlm"), new = try edited(directory)
        let summary = try ModelDelta.make(base: Model(path: base), new: Model(path: new), to: directory.path("d.mtlmd"))
        #expect(summary.patchedTensors >= 2 && summary.fullTensors >= 1 && summary.unchangedTensors >= 15)
        let delta = try ModelFile(path: directory.path("d.mtlmd"))
        #expect(delta.version == FormatVersion(major: 1, minor: 2) && delta.requiredFeatures.contains(.delta))
        #expect(ModelVerifier().verify(delta).isValid)
        #expect(try runCLI(["apply", base, directory.path("d.mtlmd"), directory.path("rebuilt.mtlm")]).status == 0)
        let rebuilt = try ModelFile(path: directory.path("rebuilt.mtlm")), expected = try ModelFile(path: new)
        #expect(try tensorBytes(rebuilt) == tensorBytes(expected))
        #expect(rebuilt.tensors.map(\.name) == expected.tensors.map(\.name))
        #expect(rebuilt.architecture == expected.architecture && rebuilt.manifest.metadata == expected.manifest.metadata)
        #expect(rebuilt.manifest.provenance == expected.manifest.provenance)
        #expect(rebuilt.version == expected.version)
    }

    @Test("A delta for 5% of the rows changed is at most 10% of the new model")
    func size() throws {
        let directory = TemporaryDirectory()
        let arch = try architecture(fromConfig: "model-md-small.json")
        try Synthesizer(seed: 3, training: true).write(arch, to: directory.path("base.mtlm"), source: "t")
        var random = SplitMix64(seed: 9)
        try copyModel(directory.path("base.mtlm"), to: directory.path("new.mtlm")) { name, bytes in
            guard name.hasPrefix("embedding.") || name.hasPrefix("linear.") || name.hasPrefix("optimizer.embedding.") || name.hasPrefix("optimizer.linear."),
                  name.hasSuffix("weight") || name.hasSuffix(".sum") else { return }
            let rows = name.contains("linear") ? bytes.count / 4 : bytes.count / (16 * 4)
            let rowBytes = bytes.count / rows
            for _ in 0..<(rows / 20) {
                let row = Int(random.next() % UInt64(rows))
                bytes[row * rowBytes] ^= 0x01
            }
        }
        let result = try runCLI(["delta", directory.path("base.mtlm"), directory.path("new.mtlm"), directory.path("d.mtlmd"), "--json"])
        #expect(result.status == 0)
        let summary = try #require(result.json?["summary"] as? [String: Any])
        let deltaBytes = try #require(summary["deltaByteCount"] as? Int), newBytes = try #require(summary["newByteCount"] as? Int)
        #expect(Double(deltaBytes) <= 0.10 * Double(newBytes), "\(deltaBytes) of \(newBytes)")
        #expect(try runCLI(["apply", directory.path("base.mtlm"), directory.path("d.mtlmd"), directory.path("r.mtlm")]).status == 0)
        #expect(try tensorBytes(ModelFile(path: directory.path("r.mtlm"))) == tensorBytes(ModelFile(path: directory.path("new.mtlm"))))
        // Unchanged tensors' chunks are copied with the base's CRCs: the result verifies whole.
        #expect(ModelVerifier().verify(try ModelFile(path: directory.path("r.mtlm"))).isValid)
    }

    @Test("Changed rows found window by window equal a row-by-row comparison: grown, shrunk, equal windows, the first only; every window released")
    func changedRowsInWindows() {
        var random = SplitMix64(seed: 4)
        for (oldRows, newRows) in [(40, 40), (40, 47), (47, 40), (0, 5), (5, 0)] {
            let rowBytes = 12
            let old = (0..<oldRows * rowBytes).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            var new = (0..<newRows * rowBytes).map { i in i < old.count ? old[i] : UInt8(truncatingIfNeeded: random.next()) }
            for row in [3, 17, 18, 39] where row < min(oldRows, newRows) { new[row * rowBytes + 5] ^= 0x40 }
            let expected = (0..<newRows).filter { $0 >= oldRows || old[$0 * rowBytes..<($0 + 1) * rowBytes] != new[$0 * rowBytes..<($0 + 1) * rowBytes] }.map { UInt64($0) }
            for window in [rowBytes, 5 * rowBytes, 64 << 20] {
                old.withUnsafeBytes { a in
                    new.withUnsafeBytes { b in
                        var released = 0
                        let changed = ModelDelta.changedRows(old: a, new: b, rowBytes: rowBytes, windowBytes: window) { released += $0.count }
                        #expect(changed == expected, "\(oldRows) → \(newRows) rows, window \(window)")
                        #expect(released == new.count)
                        #expect(ModelDelta.changedRows(old: a, new: b, rowBytes: rowBytes, first: true, windowBytes: window) == Array(expected.prefix(1)))
                    }
                }
            }
        }
    }

    @Test("A delta for another base is refused, and nothing is written")
    func wrongBase() throws {
        let directory = TemporaryDirectory()
        let new = try edited(directory)
        #expect(try runCLI(["delta", TestPaths.fixture("v1.0/small.mtlm"), new, directory.path("d.mtlmd")]).status == 0)
        let result = try runCLI(["apply", new, directory.path("d.mtlmd"), directory.path("out.mtlm")])
        #expect(result.status == 2 && result.stderr.contains("was made for another base"))
        #expect(!FileManager.default.fileExists(atPath: directory.path("out.mtlm")))
        // The same weights stored differently (compressed) are another base too: the binding is to the file's content as stored.
        #expect(try runCLI(["synth", TestPaths.config("small.json"), directory.path("z.mtlm"), "--seed", "7", "--compression", "zlib"]).status == 0)
        #expect(try runCLI(["apply", directory.path("z.mtlm"), directory.path("d.mtlmd"), directory.path("out.mtlm")]).status == 2)
    }

    @Test("Deltas are refused where a model is needed; models where a delta is")
    func notAModel() throws {
        let directory = TemporaryDirectory()
        let new = try edited(directory)
        let delta = directory.path("d.mtlmd")
        #expect(try runCLI(["delta", TestPaths.fixture("v1.0/small.mtlm"), new, delta]).status == 0)
        for arguments in [["predict", delta, TestPaths.fixture("predict/small.txt")], ["quantize", delta, directory.path("q.mtlm")],
                          ["export", delta, directory.path("x.safetensors")], ["diff", delta, new], ["delta", delta, new, directory.path("e.mtlmd")]] {
            let result = try runCLI(arguments)
            #expect(result.status == 2 && result.stderr.contains("is a delta, not a model"), "\(arguments)")
        }
        let model = try runCLI(["apply", TestPaths.fixture("v1.0/small.mtlm"), new, directory.path("o.mtlm")])
        #expect(model.status == 2 && model.stderr.contains("is a model, not a delta"))
        let inspect = try runCLI(["inspect", delta, "--json"])
        #expect((inspect.json?["delta"] as? [String: Any])?["patchedTensors"] as? Int == 4)
    }

    @Test("The golden 1.2 delta applies to the golden 1.0 model")
    func golden() throws {
        let directory = TemporaryDirectory()
        #expect(try runCLI(["apply", TestPaths.fixture("v1.0/small.mtlm"), TestPaths.fixture("v1.2/small-edited.mtlmd"), directory.path("r.mtlm")]).status == 0)
        #expect(try tensorBytes(ModelFile(path: directory.path("r.mtlm"))) == tensorBytes(ModelFile(path: TestPaths.fixture("v1.2/small-edited.mtlm"))))
        #expect(try ModelFile(path: TestPaths.fixture("v1.2/small-edited.mtlmd")).version == FormatVersion(major: 1, minor: 2))
    }
}
