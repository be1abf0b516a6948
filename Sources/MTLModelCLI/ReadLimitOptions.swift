import ArgumentParser
import MTLModel

/// Limits applied to a model file before anything large is allocated (docs/RELIABILITY.md).
struct ReadLimitOptions: ParsableArguments {
    @Option(help: "Largest manifest accepted, in bytes.")
    var maxManifestBytes: UInt64 = ReadLimits().maxManifestByteCount

    @Option(help: "Most tensors accepted in one file.")
    var maxTensors: Int = ReadLimits().maxTensorCount

    @Option(help: "Most dimensions of one tensor.")
    var maxRank: Int = ReadLimits().maxRank

    @Option(help: "Longest name (tensor, field, metadata key) accepted, in bytes.")
    var maxNameBytes: Int = ReadLimits().maxNameByteCount

    func validate() throws {
        guard maxTensors >= 0, maxRank >= 0, maxNameBytes >= 1 else {
            throw ValidationError("limits must not be negative, and names need at least 1 byte")
        }
    }

    var modelOptions: ModelFile.Options {
        var options = ModelFile.Options()
        options.limits.maxManifestByteCount = maxManifestBytes
        options.limits.maxTensorCount = maxTensors
        options.limits.maxRank = maxRank
        options.limits.maxNameByteCount = maxNameBytes
        return options
    }

    /// The file at `path`, as it is (for `inspect` and `verify`, which show broken files too).
    func open(_ path: String) throws(MTLModelError) -> ModelFile {
        try ModelFile(path: path, options: modelOptions)
    }

    /// The checked model at `path`: what every command that uses a model takes.
    func model(_ path: String, access: ModelFile.Access = .bulk) throws(MTLModelError) -> Model {
        var options = modelOptions
        options.access = access
        return try Model(path: path, options: options)
    }
}
