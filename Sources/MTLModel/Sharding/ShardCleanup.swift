import Foundation

/// Removes, after a write committed a model at `root` (sharded, with id `modelID`, or one file),
/// the shard files of earlier or unfinished writes of the same target: files beside the root
/// named `NAME-0000k-of-0000N.mtlm` (`.mtlmd` for a delta: `suffix`) that are shards made for
/// this root name and whose model id no root in the directory refers to. A file that is not
/// such a shard, or that another root (a renamed copy) still uses, is left.
enum ShardCleanup {
    @discardableResult
    static func removeLeftovers(root: String, keeping kept: [String], modelID: [UInt8]?, suffix: String = ".mtlm") -> [String] {
        let directory = (root as NSString).deletingLastPathComponent
        let rootName = (root as NSString).lastPathComponent
        let stem = stem(of: rootName, suffix: suffix)
        let listed = (try? FileManager.default.contentsOfDirectory(atPath: directory.isEmpty ? "." : directory)) ?? []
        func path(_ name: String) -> String { ShardNaming.beside(root: root, name) }
        let keep = Set(kept)
        let candidates = listed.filter { !keep.contains($0) && isShardName($0, stem: stem, suffix: suffix) }
        guard !candidates.isEmpty else { return [] }
        // Ids still in use: every sharded root beside this one (and this one).
        var inUse: Set<[UInt8]> = modelID.map { [$0] } ?? []
        for name in listed where name.hasSuffix(suffix) && !isShardName(name, stem: nil, suffix: suffix) {
            if let table = try? ModelFile(path: path(name)).manifest.shards { inUse.insert(table.modelID) }
        }
        var removed: [String] = []
        for name in candidates.sorted() {
            guard let identity = try? ModelFile(path: path(name)).manifest.shard, identity.rootFileName == rootName,
                  !inUse.contains(identity.modelID) else { continue }
            if unlink(path(name)) == 0 { removed.append(name) }
        }
        return removed
    }

    /// `STEM-ddddd-of-ddddd.mtlm` (five digits or more; `suffix` in place of `.mtlm`), for
    /// `stem` or, when nil, any stem.
    static func isShardName(_ name: String, stem: String?, suffix: String = ".mtlm") -> Bool {
        guard name.hasSuffix(suffix) else { return false }
        let parts = name.dropLast(suffix.count).split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[parts.count - 2] == "of" else { return false }
        let digits = [parts[parts.count - 3], parts[parts.count - 1]]
        guard digits.allSatisfy({ $0.count >= 5 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }) else { return false }
        return stem.map { parts.dropLast(3).joined(separator: "-") == $0 } ?? true
    }

    /// Whether `name` is a shard file name of the root named `rootName`, a model's or a delta's.
    static func isShardName(_ name: String, ofRoot rootName: String) -> Bool {
        [false, true].contains { delta in
            let suffix = ShardNaming.suffix(delta: delta)
            return isShardName(name, stem: stem(of: rootName, suffix: suffix), suffix: suffix)
        }
    }

    /// The stem of the shard names of `rootName`: the name without `suffix` (as `ShardNaming`).
    private static func stem(of rootName: String, suffix: String) -> String {
        rootName.hasSuffix(suffix) ? String(rootName.dropLast(suffix.count)) : rootName
    }
}
