"""What a file is, from its first bytes: so that the wrong file gets "is a safetensors
checkpoint: use mtl-model import", not a message about magic bytes (as the Swift tool says)."""
import struct

from ._format import HEADER_MAGIC


def advice_for_model(prefix, size, path):
    """The message for a file that is not an .mtlm file, or None when it may be one (a model,
    a delta, an empty or a damaged file: the reader says which)."""
    b = bytes(prefix[:4096])
    if not b or b.startswith(HEADER_MAGIC):
        return None
    if b.startswith(b"PK\x03\x04") or b.startswith(b"PK\x05\x06"):
        return "is a ZIP archive (an .npz?), not an .mtlm model: mtl-model writes .npz (export) but reads models only as .mtlm"
    if b.startswith(b"\x1f\x8b"):
        return "is gzip-compressed, not an .mtlm model: decompress it first (gunzip -k %s)" % path
    if len(b) >= 9 and b[8:9] == b"{" and 2 <= struct.unpack_from("<Q", b)[0] <= size - 8:
        return "is a safetensors checkpoint, not an .mtlm model: convert it with mtl-model import %s OUT.mtlm" % path
    if _is_text(b):
        return "is a text file, not an .mtlm model (a dataset? it comes after the model: mtl-model eval MODEL DATA)"
    if len(b) >= 3 and b[0] == 0x08 and 1 <= b[1] <= 15 and b[2] in (0x12, 0x1A, 0x22, 0x3A, 0x42):
        return "is an ONNX model, not an .mtlm model: mtl-model exports ONNX for serving but cannot read it back"
    return None


def _is_text(b):
    if 0 in b or any(c < 0x20 and c not in (0x09, 0x0A, 0x0D) for c in b):
        return False
    for cut in range(4):  # the prefix may end inside a character
        try:
            b[:len(b) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False
