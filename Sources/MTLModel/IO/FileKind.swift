/// What a file is, guessed from its first bytes, so that passing the wrong file (a checkpoint
/// to `inspect`, a model as the dataset) gets "x is a safetensors checkpoint: use mtl-model
/// import" rather than a message about magic bytes or header sizes.
public enum FileKind: Sendable, Equatable {
    case mtlmModel, mtlmDelta, safetensors, zip, gzip, onnx, text, empty, unknown

    /// - Parameters:
    ///   - prefix: the file's first bytes (up to a few KiB; fewer when the file is shorter).
    ///   - byteCount: the file's size, when known.
    public static func sniff(_ prefix: UnsafeRawBufferPointer, byteCount: UInt64? = nil) -> FileKind {
        let b = Array(prefix.prefix(4096))
        if b.isEmpty { return .empty }
        if b.starts(with: FormatConstants.headerMagic) {
            // Required feature bit 1 (bytes 16..<24 of the header) marks a delta.
            return b.count >= 24 && (b[16] & 0b10) != 0 ? .mtlmDelta : .mtlmModel
        }
        if b.starts(with: [0x50, 0x4B, 0x03, 0x04]) || b.starts(with: [0x50, 0x4B, 0x05, 0x06]) { return .zip }
        if b.starts(with: [0x1F, 0x8B]) { return .gzip }
        if b.count >= 9 && b[8] == UInt8(ascii: "{") {
            let headerSize = b[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            if headerSize >= 2 && headerSize <= (byteCount ?? .max) - 8 { return .safetensors }
        }
        if isText(b) { return .text }
        // An ONNX ModelProto starts with ir_version (field 1, a small varint) followed by
        // producer_name (2), graph (7) or opset_import (8).
        if b.count >= 3 && b[0] == 0x08 && (1...15).contains(b[1]) && [0x12, 0x1A, 0x22, 0x3A, 0x42].contains(b[2]) { return .onnx }
        return .unknown
    }

    /// "a safetensors checkpoint" and the like.
    public var noun: String {
        switch self {
        case .mtlmModel: "an .mtlm model"
        case .mtlmDelta: "an .mtlm delta"
        case .safetensors: "a safetensors checkpoint"
        case .zip: "a ZIP archive (an .npz?)"
        case .gzip: "gzip-compressed"
        case .onnx: "an ONNX model"
        case .text: "a text file"
        case .empty: "empty"
        case .unknown: "not a file mtl-model knows"
        }
    }

    /// Printable UTF-8 (tabs, newlines allowed), no NUL: a partial last character is allowed,
    /// since the prefix may cut one.
    private static func isText(_ bytes: [UInt8]) -> Bool {
        guard !bytes.contains(0) else { return false }
        let controls = bytes.filter { $0 < 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }.count
        guard controls == 0 else { return false }
        var trimmed = bytes
        for _ in 0..<3 where String(validating: trimmed, as: UTF8.self) == nil && !trimmed.isEmpty { trimmed.removeLast() }
        return String(validating: trimmed, as: UTF8.self) != nil
    }
}

extension FileKind {
    /// What to tell a user who passed a file of this kind where an `.mtlm` model was expected.
    func adviceForModel(path: String) -> String {
        let p = TerminalText.escaped(path)
        switch self {
        case .safetensors: return "is a safetensors checkpoint, not an .mtlm model: convert it with mtl-model import \(p) OUT.mtlm"
        case .mtlmDelta: return "is a delta, not a model: rebuild the model with mtl-model apply BASE \(p) OUT.mtlm"
        case .zip: return "is a ZIP archive (an .npz?), not an .mtlm model: mtl-model writes .npz (export) but reads models only as .mtlm"
        case .gzip: return "is gzip-compressed, not an .mtlm model: decompress it first (gunzip -k \(p))"
        case .onnx: return "is an ONNX model, not an .mtlm model: mtl-model exports ONNX for serving but cannot read it back"
        case .text: return "is a text file, not an .mtlm model (a dataset? it comes after the model: mtl-model eval MODEL DATA)"
        case .empty: return "is empty (0 bytes), not an .mtlm model"
        case .mtlmModel, .unknown: return "is not an .mtlm model"
        }
    }

    /// What to tell a user who passed a file of this kind where a safetensors checkpoint was expected.
    func adviceForCheckpoint(path: String) -> String? {
        let p = TerminalText.escaped(path)
        switch self {
        case .mtlmModel: return "is an .mtlm model already, not a safetensors checkpoint: nothing to import (mtl-model inspect \(p))"
        case .mtlmDelta: return "is an .mtlm delta, not a safetensors checkpoint (mtl-model apply BASE \(p) OUT.mtlm)"
        case .zip: return "is a ZIP archive (an .npz or a torch.save file?), not a safetensors checkpoint: save the state dict with safetensors.torch.save_file"
        case .gzip: return "is gzip-compressed, not a safetensors checkpoint: decompress it first (gunzip -k \(p))"
        case .onnx: return "is an ONNX model, not a safetensors checkpoint"
        case .text: return "is a text file, not a safetensors checkpoint"
        case .empty: return "is empty (0 bytes), not a safetensors checkpoint"
        case .safetensors, .unknown: return nil
        }
    }

    /// What to tell a user who passed a file of this kind where a dataset was expected; nil for
    /// text and for gzip, which the dataset reader inflates as it reads.
    func adviceForDataset(path: String) -> String? {
        switch self {
        case .mtlmModel, .mtlmDelta: return "is \(noun), not a dataset: the model comes first, then the data (mtl-model eval MODEL DATA)"
        case .safetensors, .zip, .onnx: return "is \(noun), not a dataset in MODEL.md's text format"
        case .gzip, .text, .empty, .unknown: return nil
        }
    }
}
