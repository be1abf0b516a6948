import Foundation
import Testing
@testable import MTLModel

@Suite("Atomic writes")
struct AtomicWriteTests {
    /// A config whose model takes long enough to write (≈ 256 MB) to be killed mid-way.
    static let bigConfig = #"{"embedding_dim": 16, "fields": [{"name": "a", "vocab_size": 4000000}], "tasks": [{"name": "t"}]}"#

    /// Runs `arguments`, kills it with SIGKILL after `delay` seconds (or lets it finish).
    func runAndKill(_ arguments: [String], after delay: Double) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestPaths.executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        Thread.sleep(forTimeInterval: delay)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    @Test("kill -9 at 64 random moments of synth, import, quantize, apply and convert: the target is the previous file or a complete new one")
    func killedWriters() throws {
        let directory = TemporaryDirectory()
        let config = directory.path("big.json")
        try Self.bigConfig.write(toFile: config, atomically: true, encoding: .utf8)
        // Inputs for import and quantize, made once (not killed).
        let source = directory.path("source.mtlm")
        #expect(try runCLI(["synth", config, source]).status == 0)
        #expect(try runCLI(["export", source, directory.path("source.safetensors")]).status == 0)
        #expect(try runCLI(["synth", config, directory.path("other.mtlm"), "--seed", "2"]).status == 0)
        #expect(try runCLI(["delta", source, directory.path("other.mtlm"), directory.path("d.mtlmd")]).status == 0)
        let target = directory.path("model.mtlm")
        try FileManager.default.copyItem(atPath: TestPaths.fixture("v1.0/small.mtlm"), toPath: target)
        var previous = try Data(contentsOf: URL(fileURLWithPath: target))
        let commands = [["synth", config, target], ["import", directory.path("source.safetensors"), target],
                        ["quantize", source, target, "--embeddings", "int4"], ["apply", source, directory.path("d.mtlmd"), target],
                        ["convert", source, target, "--to", "serving", "--embeddings", "int8"]]
        var random = SystemRandomNumberGenerator()
        var replaced = 0
        for round in 0..<64 {
            try runAndKill(commands[round % commands.count], after: Double(random.next() % 600) / 1000)
            let now = try Data(contentsOf: URL(fileURLWithPath: target))
            if now != previous {
                // The writer finished before the kill: then the file is whole and valid.
                #expect(firstProblem(target) == nil, "round \(round)")
                previous = now
                replaced += 1
            }
        }
        #expect(replaced < 64, "no kill came before a writer finished: the test did not test")
        // Killed writers leave only their temporary files, recognisable by name, and each
        // writer removes those of dead writers: at most the last round's remains. One more,
        // of a process that cannot exist, stands for a crash long ago...
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.url.path).filter { $0.contains("model.mtlm.mtlm-tmp-") }
        #expect(leftovers.count <= 1, "\(leftovers)")
        _ = FileManager.default.createFile(atPath: directory.path(".model.mtlm.mtlm-tmp-2147483646-1"), contents: Data([1, 2, 3]))
        // ...and the next write of the same target removes them all.
        #expect(try runCLI(["synth", TestPaths.config("small.json"), target]).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path).filter { $0.contains("model.mtlm.") } == [])
    }

    /// The root and every file of the model beside it (shards of any count), by name.
    func modelFiles(_ directory: TemporaryDirectory) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.url.path)
        where name == "model.mtlm" || (name.hasPrefix("model-") && name.hasSuffix(".mtlm")) {
            files[name] = try Data(contentsOf: URL(fileURLWithPath: directory.path(name)))
        }
        return files
    }

    @Test("kill -9 at 32 random moments of shard, quantize and apply (a sharded delta) into a sharded target: the root opens as the previous model or a complete new one")
    func killedShardedWriters() throws {
        let directory = TemporaryDirectory()
        let config = directory.path("big.json")
        // A keyed table with training state: every kind of split (bucketed rows, slots, counts).
        try #"{"embedding_dim": 16, "fields": [{"name": "a", "vocab_size": 1500000, "mapping": "keyed"}], "tasks": [{"name": "t"}], "optimizer": {"type": "adagrad", "lr": 0.1}}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let source = directory.path("source.mtlm"), sharded = directory.path("source4.mtlm")
        #expect(try runCLI(["synth", config, source, "--training"]).status == 0)
        #expect(try runCLI(["shard", source, sharded, "--shards", "4"]).status == 0)
        // A sharded delta to apply (format 1.4): the 4 shards quantized.
        let quantized = directory.path("q4.mtlm"), delta = directory.path("d.mtlmd")
        #expect(try runCLI(["quantize", sharded, quantized, "--embeddings", "int8"]).status == 0)
        #expect(try runCLI(["delta", sharded, quantized, delta]).status == 0)
        let target = directory.path("model.mtlm")
        #expect(try runCLI(["shard", TestPaths.fixture("v1.0/small-training.mtlm"), target, "--shards", "4"]).status == 0)
        var previous = try modelFiles(directory)
        let commands = [["shard", source, target, "--shards", "4", "--threads", "2"], ["shard", sharded, target, "--shards", "3"],
                        ["quantize", sharded, target, "--embeddings", "int8"], ["shard", sharded, target, "--shards", "1"],
                        ["apply", sharded, delta, target]]
        var random = SystemRandomNumberGenerator()
        var replaced = 0, window = 0
        for round in 0..<32 {
            try runAndKill(commands[round % commands.count], after: Double(random.next() % 800) / 1000)
            let verify = try runCLI(["verify", target])
            let now = try modelFiles(directory)
            if verify.status == 0 {
                // Either the previous model, whole (its root unchanged), or a new complete one.
                if now["model.mtlm"] != previous["model.mtlm"] { replaced += 1 }
            } else {
                // The one documented window of a rewrite with as many shards: the renames
                // between the first shard's and the root's. The old root refuses the new shards.
                #expect(now["model.mtlm"] == previous["model.mtlm"] && verify.stdout.contains("another model"), "round \(round): \(verify.stdout)")
                window += 1
            }
            previous = now
        }
        #expect(replaced < 32 - window, "no kill came before a writer finished: the test did not test")
        // The next complete write of the target removes whatever the killed writers left:
        // temporary files and shards no root names.
        #expect(try runCLI(["shard", source, target, "--shards", "2"]).status == 0)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.url.path).filter { $0.contains("model") }.sorted()
        #expect(names == ["model-00001-of-00002.mtlm", "model-00002-of-00002.mtlm", "model.mtlm"], "\(names)")
    }

    @Test("Writers that hold their output back (quantize, convert) remove what killed writers left too",
          arguments: [["quantize"], ["convert", "--to", "serving"]])
    func pendingWritersRemoveLeftovers(command: [String]) throws {
        let directory = TemporaryDirectory()
        let target = directory.path("model.mtlm")
        let dead = directory.path(".model.mtlm.mtlm-tmp-2147483646-7")
        _ = FileManager.default.createFile(atPath: dead, contents: Data([1, 2, 3]))
        let result = try runCLI([command[0], TestPaths.fixture("v1.0/small-training.mtlm"), target] + command.dropFirst())
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dead))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path) == ["model.mtlm"])
    }

    @Test("A full disk (RLIMIT_FSIZE) gives a clear error and leaves no partial file", arguments: ["synth", "predict", "quantize"])
    func fileSizeLimit(command: String) throws {
        let directory = TemporaryDirectory()
        let config = directory.path("big.json")
        try Self.bigConfig.write(toFile: config, atomically: true, encoding: .utf8)
        let target = directory.path(["synth": "model.mtlm", "predict": "out.tsv", "quantize": "q.mtlm"][command]!)
        let data = directory.path("data.txt")
        try String(repeating: "1,0 user_id:3 tags:1:0.5 hour:4\n", count: 20_000).write(toFile: data, atomically: true, encoding: .utf8)
        var inputs = ["big.json", "data.txt"]
        if command == "quantize" {
            // 200k rows of 16: windows of rows written at their place by two workers (4.8 MB).
            let small = directory.path("small.json")
            try #"{"embedding_dim": 16, "fields": [{"name": "a", "vocab_size": 200000}], "tasks": [{"name": "t"}]}"#.write(toFile: small, atomically: true, encoding: .utf8)
            #expect(try runCLI(["synth", small, directory.path("model.mtlm")]).status == 0)
            inputs += ["model.mtlm", "small.json"]
        }
        let arguments = ["synth": ["synth", config, target],
                         "predict": ["predict", TestPaths.fixture("v1.0/small.mtlm"), data, "-o", target],
                         "quantize": ["quantize", directory.path("model.mtlm"), target, "--embeddings", "int8", "--threads", "2"]][command]!
        // ulimit -f counts blocks of 512 bytes (dash) or 1024 (bash): either way well below
        // what the command writes.
        let quoted = ([TestPaths.executable] + arguments).map { "'\($0)'" }.joined(separator: " ")
        let result = try runProcess("/bin/sh", ["-c", "ulimit -f 256 && exec \(quoted)"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("File too large") && result.stderr.contains(target), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.url.path).sorted()
        #expect(files == inputs.sorted(), "\(files)")
    }

    @Test("Messages about a pending output's temporary file (a whole model or a shard) name the target it stands for")
    func pendingNames() {
        #expect(AtomicOutputFile.messagePath(for: AtomicOutputFile.pendingPath(directory: "/d/", base: "q.mtlm")) == "/d/q.mtlm")
        #expect(AtomicOutputFile.messagePath(for: AtomicOutputFile.pendingPath(directory: "", base: "q-00002-of-00003.mtlm", suffix: ".mtlm"))
                == "q-00002-of-00003.mtlm")
        #expect(AtomicOutputFile.messagePath(for: "/d/.q.mtlm.mtlm-tmp-1-pending") == "/d/.q.mtlm.mtlm-tmp-1-pending")  // not this process's
        #expect(AtomicOutputFile.messagePath(for: "/d/q.mtlm") == "/d/q.mtlm")
    }

    @Test("Appends of every size (buffered, past the buffer, around placed writes) make exactly their concatenation, at any starting offset",
          arguments: [0, 1, 64, 4095] as [Int])
    func appendsOfEverySize(start: Int) throws {
        let directory = TemporaryDirectory()
        let mib = 1 << 20  // pieces of a MiB or more go to the file directly; the buffer holds 4 MiB
        var random = SplitMix64(seed: UInt64(start) + 5)
        let sizes = [start, 3, mib - 1, 1, mib, 10 * mib + 17, 2 * mib, 2, 3 * mib, 4 * mib, 100, 4 * mib + 1, 7]
        let file = try AtomicOutputFile(targetPath: directory.path("out.bin"), synchronize: false)
        var expected: [UInt8] = []
        for (i, size) in sizes.enumerated() {
            let piece = (0..<size).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            if i == 6 {  // placed writes in the middle: what is buffered goes first
                let writes = try #require(try file.placedWrites())
                try piece.withUnsafeBytes { try writes.write($0, at: file.position) }
                try file.advance(by: UInt64(size))
            } else {
                try file.append(piece)
            }
            expected += piece
            #expect(file.position == UInt64(expected.count))
        }
        try file.commit()
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: directory.path("out.bin")))) == expected)
    }

    /// What a file system may hold beside the data (an extent tree's blocks count in `st_blocks`).
    static let metadataSlack = 64 << 10

    /// Bytes of disk the file at `path` holds (`st_blocks` counts 512-byte units).
    func allocatedByteCount(_ path: String) -> Int {
        var status = stat()
        return stat(path, &status) == 0 ? Int(status.st_blocks) * 512 : -1
    }

    /// Whether the file at `path` holds no more disk than its pages need: a block reserved
    /// past its end would stay allocated.
    func holdsNoBlockPastItsEnd(_ path: String) -> Bool {
        var status = stat()
        guard stat(path, &status) == 0 else { return false }
        return allocatedByteCount(path) <= (Int(status.st_size) + 4095) / 4096 * 4096 + Self.metadataSlack
    }

    #if os(Linux)
    @Test("Blocks reserved for bytes about to be written are allocated at once, and the file's size does not change")
    func reservedBlocks() throws {
        let directory = TemporaryDirectory()
        let file = try AtomicOutputFile(targetPath: directory.path("out.bin"), synchronize: false)
        let temporary = try #require(file.temporaryPath)
        file.reserve(8 << 20, at: 0)
        #expect(allocatedByteCount(temporary) >= 8 << 20)
        #expect((try FileManager.default.attributesOfItem(atPath: temporary)[.size] as? Int) == 0)
        try file.append([UInt8](repeating: 1, count: 8 << 20))
        try file.commit()
        #expect(holdsNoBlockPastItsEnd(directory.path("out.bin")))
    }
    #endif

    @Test("A model whose large tensors' blocks were reserved holds no block past its end, compressed or not, placed or not",
          arguments: [(Compression.none, true), (.none, false), (.zlib, false)])
    func noBlocksPastTheEnd(compression: Compression, placed: Bool) throws {
        let directory = TemporaryDirectory()
        let arch = try architecture(json: #"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 625003}, {"name": "b", "vocab_size": 300001}], "linear": true, "tasks": [{"name": "t"}]}"#)
        var options = ModelWriter.Options()
        options.compression = compression
        options.synchronize = false
        options.placesWrites = placed
        let path = directory.path("model.mtlm")
        let writer = try ModelWriter(path: path, options: options)
        var random = SplitMix64(seed: 3)
        for spec in arch.servingTensors {
            let values = (0..<Int(spec.elementCount)).map { _ in random.nextFloat(-1, 1) }
            try values.withUnsafeBytes { try writer.writeTensor(spec.name, dtype: spec.dtype, shape: spec.shape, role: spec.role, bytes: $0) }
        }
        try writer.finish(architecture: arch, provenance: Provenance(createdUnixSeconds: 0, source: "t"))
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(size > 4 << 20)
        #expect(holdsNoBlockPastItsEnd(path))
        #expect(firstProblem(path) == nil)
    }

    @Test("Exports whose large tensors' blocks were reserved hold no block past their end", arguments: ["m.safetensors", "m.npz", "m.onnx"])
    func exportsHoldNoBlocksPastTheEnd(name: String) throws {
        let directory = TemporaryDirectory()
        let config = directory.path("c.json")
        try #"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 625003}, {"name": "b", "vocab_size": 9}], "tasks": [{"name": "t"}]}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        #expect(try runCLI(["synth", config, directory.path("m.mtlm")]).status == 0)
        #expect(try runCLI(["export", directory.path("m.mtlm"), directory.path(name)]).status == 0)
        let written = try FileManager.default.contentsOfDirectory(atPath: directory.url.path).filter { $0.hasPrefix(name) }
        #expect(written.count == (name.hasSuffix(".onnx") ? 2 : 1))  // the ONNX graph and its external data
        for file in written { #expect(holdsNoBlockPastItsEnd(directory.path(file)), "\(file)") }
    }

    @Test("A failed write leaves the previous file untouched")
    func failedWrite() throws {
        let directory = TemporaryDirectory()
        let target = directory.path("model.mtlm")
        try FileManager.default.copyItem(atPath: TestPaths.fixture("v1.0/small.mtlm"), toPath: target)
        let before = try Data(contentsOf: URL(fileURLWithPath: target))
        do {
            let writer = try ModelWriter(path: target)
            try [Float](repeating: 1, count: 4).withUnsafeBytes { try writer.writeTensor("x", dtype: .float32, shape: [4], role: .parameter, bytes: $0) }
            let arch = try architecture(fromConfig: "small.json")
            // Not the architecture's tensors, but finish() writes what it was given; an
            // invalid architecture is what makes it fail.
            var invalid = arch
            invalid.embeddingDim = 0
            #expect(throws: MTLModelError.self) { try writer.finish(architecture: invalid, provenance: Provenance(createdUnixSeconds: 0, source: "t")) }
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path) == ["model.mtlm"])
    }

    @Test("Writing into a missing directory is a clear I/O error")
    func missingDirectory() {
        #expect {
            _ = try ModelWriter(path: "/nonexistent-dir/m.mtlm")
        } throws: { error in
            guard let error = error as? MTLModelError else { return false }
            return error.code == .io && error.file == "/nonexistent-dir/m.mtlm" && error.message.contains("No such file or directory")
        }
    }

    @Test("A writer that has ended but that nothing has reaped yet (a zombie) counts as gone; a live process does not")
    func zombieWriters() throws {
        var pid: pid_t = 0
        let arguments: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
        defer { arguments.forEach { free($0) } }
        #expect(posix_spawn(&pid, "/bin/true", nil, nil, arguments, environ) == 0)
        Thread.sleep(forTimeInterval: 0.3)
        // Not waited for: the child is a zombie, which kill(pid, 0) still finds.
        #expect(kill(pid, 0) == 0)
        #expect(AtomicOutputFile.processIsGone(pid))
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect(AtomicOutputFile.processIsGone(pid))
        #expect(!AtomicOutputFile.processIsGone(getpid()))
    }

    @Test("A temporary file reads back what was written at its offsets; a read past its end is an error, not a wait")
    func temporaryFile() throws {
        let file = try TemporaryFile("test", for: "test rows")
        let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try bytes.withUnsafeBytes { try file.write($0, at: 100) }
        var back = [UInt8](repeating: 0, count: 10_000)
        try back.withUnsafeMutableBytes { try file.read(into: $0, at: 100) }
        #expect(back == bytes)
        #expect { try back.withUnsafeMutableBytes { try file.read(into: $0, at: 5_000) } } throws: { error in
            "\(error)".contains("cannot read test rows back from a temporary file")
        }
    }
}
