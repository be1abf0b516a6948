import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A command on a sharded model cut into tasks that run apart — on other processes, other
/// machines, under any scheduler (docs/SCALE.md): `plan` writes it, `run-task` runs one task
/// (writing its output shard under a name of this plan, and a small result file), `finish`
/// checks every task's output, merges the results into the command's report and commits the
/// root last.
///
/// Everything a task must reproduce is fixed here: the command's arguments (re-read by each
/// task, in the directory the plan was made in), the input's fingerprint (a changed input is
/// refused), the output's model id and creation time (a task rerun writes the same bytes).
/// Every path is absolute: a worker sees the plan's files on a shared filesystem, or refuses.
public struct TaskPlan: Codable, Sendable {
    /// What the tasks do, and so what their results hold.
    public enum Kind: String, Codable, Sendable {
        /// Each task verifies one shard; the root is checked at the finish.
        case verify
        /// Each task rewrites one shard (`quantize`, `dequantize`, `convert`).
        case rewrite
        /// Each task writes one shard of a new split (`shard`).
        case shard
        /// Each task compares shard k of two models split alike (`diff`).
        case diff
        /// Each task writes the delta of shard k of two models split alike (`delta`).
        case delta
    }

    /// A file as a plan or a result knows it: its manifest binds every payload byte (the CRC-32
    /// of each chunk), so size and manifest hash say whether it is the file meant.
    public struct FileFingerprint: Codable, Sendable, Hashable {
        public var path: String
        public var byteCount: UInt64
        /// FNV-1a 64 of the manifest, 16 hex digits.
        public var manifestHash: String

        init(_ file: ModelFile) {
            self.init(path: file.path, byteCount: file.fileByteCount, manifestHash: hex64(file.manifestHash))
        }

        init(path: String, byteCount: UInt64, manifestHash: String) {
            self.path = path
            self.byteCount = byteCount
            self.manifestHash = manifestHash
        }

        /// Whether `file` is this file (same size and manifest).
        func matches(_ file: ModelFile) -> Bool { file.fileByteCount == byteCount && hex64(file.manifestHash) == manifestHash }
    }

    public struct Task: Codable, Sendable {
        /// 0-based: task i works on shard i + 1.
        public var index: Int
        /// "shard 3 of 16", for messages.
        public var describes: String
        /// The files it reads (a driver checks that its workers see them).
        public var reads: [String]
        /// The shard it writes, under this plan's name until the finish moves it into place.
        public var writes: String?
        /// Its result file.
        public var result: String
    }

    public static let formatName = "mtl-model task plan"
    public static let formatVersion = 1

    public var format = Self.formatName
    public var version = Self.formatVersion
    /// 16 hex digits, drawn by `plan`; in every staged file's name and every result.
    public var id: String
    public var kind: Kind
    /// The command's arguments (without the program name), as given to `plan`.
    public var command: [String]
    /// The working directory of `plan`: the command's relative paths are relative to it.
    public var directory: String
    /// The models the command reads (a sharded model's root: it binds its shards), in the
    /// command's order.
    public var inputs: [FileFingerprint]
    /// The model written (its root), absolute; nil for `verify`.
    public var output: String?
    /// The output's model id (32 hex digits) and creation time, the same for every task.
    public var modelID: String?
    public var createdUnixSeconds: Int64
    public var tasks: [Task]
    /// Where results and the finish record are kept: `PLAN.d` beside the plan.
    public var resultDirectory: String

    enum CodingKeys: String, CodingKey {
        case format, version, id, kind, command, directory, inputs, output, modelID, createdUnixSeconds, tasks, resultDirectory
    }

    /// The shard count of the output (or of the input, for `verify`).
    var shardCount: Int { tasks.count }

    var modelIDBytes: [UInt8] {
        guard let modelID else { return [] }
        return stride(from: 0, to: modelID.count, by: 2).compactMap { start in
            let digits = modelID.dropFirst(start).prefix(2)
            return UInt8(digits, radix: 16)
        }
    }
}

// MARK: - Making, saving and reading a plan

extension TaskPlan {
    /// A new plan of `kind` for `command`, reading `inputs`, with one task per shard of
    /// `shardCount` (each reading `reads(i)`), its staged outputs beside `output`; written at
    /// `planPath` (`save`).
    static func make(kind: Kind, command: [String], inputs: [ModelFile], output: String?, shardCount: Int,
                     planPath: String, reads: (Int) -> [String]) throws -> TaskPlan {
        let id = (0..<8).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        let directory = FileManager.default.currentDirectoryPath
        let results = absolute(planPath, in: directory) + ".d"
        let target = try output.map { try absoluteTarget($0, in: directory) }
        let tasks = (0..<shardCount).map { index in
            Task(index: index, describes: "shard \(index + 1) of \(shardCount)", reads: reads(index).map { absolute($0, in: directory) },
                 writes: target.map { stagedPath(root: $0, index: index + 1, count: shardCount, planID: id, delta: kind == .delta) },
                 result: "\(results)/task-\(String(format: "%05d", index)).json")
        }
        let fingerprints = inputs.map { input in
            var fingerprint = FileFingerprint(input)
            fingerprint.path = absolute(input.path, in: directory)
            return fingerprint
        }
        let plan = TaskPlan(id: id, kind: kind, command: command, directory: directory, inputs: fingerprints, output: target,
                            modelID: target == nil ? nil : hex((0..<ShardNaming.modelIDByteCount).map { _ in UInt8.random(in: 0...255) }),
                            createdUnixSeconds: Int64(Date().timeIntervalSince1970), tasks: tasks, resultDirectory: results)
        try plan.save(to: planPath)
        return plan
    }

    /// Writes the plan at `path` (atomically) and makes its result directory, emptied of an
    /// earlier plan's results.
    func save(to path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: resultDirectory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw MTLModelError(.invalidArgument, "the plan keeps its results in \(resultDirectory), which is not a directory", file: path)
            }
            for name in (try? FileManager.default.contentsOfDirectory(atPath: resultDirectory)) ?? []
            where name.hasPrefix("task-") || name == Self.finishRecordName {
                unlink("\(resultDirectory)/\(name)")
            }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: resultDirectory, withIntermediateDirectories: false)
            } catch {
                throw MTLModelError(.io, "cannot make the result directory \(resultDirectory): \(error.localizedDescription)", file: path)
            }
        }
        try Self.writeJSON(self, to: path)
    }

    /// The plan at `path`, checked to be one this tool wrote.
    public static func load(_ path: String) throws -> TaskPlan {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MTLModelError(.io, "cannot read the plan: \(String(cString: strerror(errno)))", file: path)
        }
        struct Header: Decodable { var format: String?; var version: Int? }
        guard let header = try? JSONDecoder().decode(Header.self, from: data), header.format == formatName else {
            throw MTLModelError(.malformed, "not a plan of mtl-model (a JSON object with \"format\": \"\(formatName)\")", file: path)
        }
        guard header.version == formatVersion else {
            throw MTLModelError(.unsupported, "plan version \(header.version.map(String.init) ?? "?") is not \(formatVersion), the one this tool reads", file: path)
        }
        do {
            let plan = try JSONDecoder().decode(TaskPlan.self, from: data)
            try plan.check(path)
            return plan
        } catch let error as MTLModelError {
            throw error
        } catch {
            throw MTLModelError(.malformed, "the plan does not decode: \(error)", file: path)
        }
    }

    /// What the rest relies on: tasks numbered 0..<N in order, a model id where there is an output.
    private func check(_ path: String) throws {
        for (position, task) in tasks.enumerated() where task.index != position {
            throw MTLModelError(.malformed, "task at position \(position) has index \(task.index)", file: path)
        }
        guard !tasks.isEmpty else { throw MTLModelError(.malformed, "the plan has no task", file: path) }
        guard !inputs.isEmpty else { throw MTLModelError(.malformed, "the plan names no input", file: path) }
        if output != nil, modelIDBytes.count != ShardNaming.modelIDByteCount || tasks.contains(where: { $0.writes == nil }) {
            throw MTLModelError(.malformed, "the plan writes a model but lacks its model id or a task's output", file: path)
        }
    }

    /// Enters the directory the plan was made in, so the command's relative paths mean what
    /// they meant; refuses, naming it, when this machine does not see it, an input, or the
    /// directory of the output.
    public func enterDirectory() throws {
        guard FileManager.default.changeCurrentDirectoryPath(directory) else {
            throw Self.notVisible(directory, what: "the directory the plan was made in")
        }
        for input in inputs where !FileManager.default.fileExists(atPath: input.path) {
            throw Self.notVisible(input.path, what: "the model the plan reads")
        }
        if let output, !FileManager.default.fileExists(atPath: (output as NSString).deletingLastPathComponent) {
            throw Self.notVisible(output, what: "the directory of the output")
        }
    }

    /// Task `index`, or an error naming the plan's range.
    public func task(_ index: Int) throws -> Task {
        guard tasks.indices.contains(index) else {
            throw MTLModelError(.invalidArgument, "task \(index) is not in the plan: its tasks are 0…\(tasks.count - 1)")
        }
        return tasks[index]
    }

    /// The task index given as `--index`, else from a Slurm job array (`SLURM_ARRAY_TASK_ID`)
    /// or a Kubernetes indexed job (`JOB_COMPLETION_INDEX`).
    public static func taskIndex(given: Int?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Int {
        if let given { return given }
        for name in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] {
            guard let value = environment[name] else { continue }
            guard let index = Int(value.trimmingCharacters(in: .whitespaces)), index >= 0 else {
                throw MTLModelError(.invalidArgument, "\(name) is \"\(value)\", not a task index")
            }
            return index
        }
        throw MTLModelError(.invalidArgument, "no task index: give --index I, or run as a Slurm array task (SLURM_ARRAY_TASK_ID) or a Kubernetes indexed job (JOB_COMPLETION_INDEX)")
    }

    /// Refuses inputs that are not the ones planned (changed or replaced since).
    func checkInputs(_ files: ModelFile...) throws {
        for (input, file) in zip(inputs, files) where !input.matches(file) {
            throw MTLModelError(.invalidArgument, "the model is not the one planned (\(input.byteCount) bytes, manifest \(input.manifestHash)): it changed since `plan` ran; plan again", file: file.path)
        }
    }

    static func notVisible(_ path: String, what: String) -> MTLModelError {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return MTLModelError(.io, "\(what) is not visible on this machine (\(host)): every worker needs the plan's files at the same paths, on a shared filesystem (docs/SCALE.md)", file: path)
    }

    /// Where shard `index` of `count` of `root` waits for the finish: beside the root, under a
    /// name with this plan's id (not a shard name of the root, so no other write removes it).
    static func stagedPath(root: String, index: Int, count: Int, planID: String, delta: Bool) -> String {
        let suffix = ShardNaming.suffix(delta: delta)
        let final = ShardNaming.path(root: root, index: index, count: count, suffix: suffix)
        let name = (final as NSString).lastPathComponent
        return ShardNaming.beside(root: root, "\(name.dropLast(suffix.count)).plan-\(planID)\(suffix)")
    }

    static func absolute(_ path: String, in directory: String) -> String {
        path.hasPrefix("/") ? path : (directory as NSString).appendingPathComponent(path)
    }

    /// The output as a file path (a plan writes shards beside it: no device, no standard output).
    private static func absoluteTarget(_ path: String, in directory: String) throws -> String {
        guard case .file(let resolved) = try OutputTarget(resolving: path) else {
            throw MTLModelError(.invalidArgument, "a planned command writes a sharded model beside its root: name a file to write, not a device or standard output", file: path)
        }
        return absolute(resolved, in: directory)
    }

    static func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value) + [0x0A]
        let file = try AtomicOutputFile(targetPath: path)
        try data.withUnsafeBytes { try file.append($0) }
        try file.commit()
    }
}
