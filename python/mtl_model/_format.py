"""The container of docs/FORMAT.md: header, footer, dtypes and the tensor directory's rules.

Written from docs/FORMAT.md, independently of the Swift reader: the tests compare the two.
"""
import struct
import zlib

import numpy as np

from ._errors import malformed, MTLModelError

HEADER_MAGIC = b"\x89MTL\r\n\x1a\n"
FOOTER_MAGIC = b"MTLMEND\x00"
HEADER_BYTES = 64
FOOTER_BYTES = 64
ALIGNMENT = 64
DEFAULT_CHUNK_BYTES = 1 << 20
MAX_CHUNK_BYTES = 1 << 30
MAJOR = 1
# The newest minor version this package knows (1.2: deltas).
MINOR = 2
FEATURE_ZLIB_CHUNKS = 1 << 0
FEATURE_DELTA = 1 << 1
KNOWN_FEATURES = FEATURE_ZLIB_CHUNKS | FEATURE_DELTA
# Format 1.3's sharded models: read by the Swift tool; this package does not read them yet.
FEATURE_SHARDING = 1 << 2
U64 = (1 << 64) - 1


class ReadLimits:
    """The reader's limits (docs/FORMAT.md, "Reading untrusted files"); the Swift defaults."""

    def __init__(self, max_manifest_bytes=64 << 20, max_tensor_count=1_000_000, max_rank=8,
                 max_name_bytes=1024, max_metadata_value_bytes=16 << 20):
        self.max_manifest_bytes = max_manifest_bytes
        self.max_tensor_count = max_tensor_count
        self.max_rank = max_rank
        self.max_name_bytes = max_name_bytes
        self.max_metadata_value_bytes = max_metadata_value_bytes


class DType:
    """One element type: its on-disk enum value, its name (as in `mtl-model inspect`), the
    numpy dtype of a stored element (None for the row-wise quantized types, format 1.1)."""

    def __init__(self, value, name, numpy_dtype):
        self.value = value
        self.name = name
        self.numpy = np.dtype(numpy_dtype) if numpy_dtype else None

    @property
    def is_quantized(self):
        return self.numpy is None

    @property
    def is_float(self):
        return self.name not in ("int64", "uint64")

    def row_bytes(self, columns):
        if self.name == "int8-rowwise":
            return columns + 8
        if self.name == "int4-rowwise":
            return (columns + 1) // 2 + 4
        if self.name == "int8-symmetric":
            return columns + 4
        return columns * self.numpy.itemsize

    def stored_bytes(self, shape):
        """Bytes of a tensor of ``shape``; None when it overflows 64 bits or does not suit the
        type (quantized types need rank >= 2 and rows of 1 to 2^32 - 1 values)."""
        elements = 1
        for dim in shape:
            elements *= dim
            if elements > U64:
                return None
        if not self.is_quantized:
            size = elements * self.numpy.itemsize
            return size if size <= U64 else None
        if len(shape) < 2 or not 1 <= shape[-1] < 1 << 32:
            return None
        size = elements // shape[-1] * self.row_bytes(shape[-1])
        return size if size <= U64 else None

    def __repr__(self):
        return self.name


DTYPES = {d.value: d for d in [
    DType(1, "float32", "<f4"), DType(2, "float16", "<f2"), DType(3, "bfloat16", "<u2"),
    DType(4, "int64", "<i8"), DType(5, "uint64", "<u8"),
    DType(6, "int8-rowwise", None), DType(7, "int4-rowwise", None), DType(8, "int8-symmetric", None),
]}
DTYPE_BY_NAME = {d.name: d for d in DTYPES.values()}

# Names as the Swift tool prints them (`mtl-model inspect --tensors`).
ROLES = {1: "parameter", 2: "buffer", 3: "keys", 4: "optimizer-slot", 5: "optimizer-step",
         6: "loss-log-var", 7: "row-count"}
ROLE_VALUES = {name: value for value, name in ROLES.items()}
TRAINING_ROLES = {"optimizer-slot", "optimizer-step", "loss-log-var", "row-count"}
COMPRESSIONS = {0: "none", 1: "zlib"}


def crc32(data):
    return zlib.crc32(data) & 0xFFFFFFFF


def decode_header(b):
    """Checks in FORMAT.md's order (magic, major, size, checksum, features, reserved), so
    that a newer file is reported as newer, not as corrupt. Returns (major, minor, required)."""
    if b[:8] != HEADER_MAGIC:
        raise malformed("not an .mtlm file (bad magic bytes %s)" % bytes(b[:8]).hex(), 0)
    major, minor, size = struct.unpack_from("<HHI", b, 8)
    if major > MAJOR:
        raise MTLModelError("unsupported", "format version %d.%d is newer than this reader (it reads 1.0 through %d.%d); "
                            "upgrade mtl-model" % (major, minor, MAJOR, MINOR), offset=8)
    if major < 1:
        raise malformed("format version %d.%d does not exist" % (major, minor), 8)
    if size != HEADER_BYTES:
        raise malformed("header size %d is not %d" % (size, HEADER_BYTES), 12)
    stored, computed = struct.unpack_from("<I", b, 60)[0], crc32(b[:60])
    if stored != computed:
        raise malformed("header checksum mismatch (stored 0x%08x, computed 0x%08x)" % (stored, computed), 60)
    required = struct.unpack_from("<Q", b, 16)[0]
    if required & FEATURE_SHARDING:
        if required & FEATURE_DELTA:
            raise MTLModelError("unsupported", "file is the root or a shard of a sharded delta (format 1.4), which this "
                                "package does not read yet: apply it with mtl-model apply BASE DELTA OUT.mtlm",
                                offset=16)
        raise MTLModelError("unsupported", "file is the root or a shard of a sharded model (format 1.3), which this "
                            "package does not read yet: consolidate it with mtl-model shard ROOT OUT.mtlm --shards 1",
                            offset=16)
    if required & ~KNOWN_FEATURES:
        raise MTLModelError("unsupported", "file requires features this reader does not know (bits 0x%x; it knows "
                            "zlib-chunks, delta); upgrade mtl-model" % (required & ~KNOWN_FEATURES), offset=16)
    if any(b[32:60]):
        raise malformed("reserved header bytes are not zero", 32)
    return major, minor, required


def encode_header(minor, required):
    b = HEADER_MAGIC + struct.pack("<HHIQQ", MAJOR, minor, HEADER_BYTES, required, 0) + bytes(28)
    return b + struct.pack("<I", crc32(b))


class Footer:
    def __init__(self, data_offset, data_bytes, manifest_offset, manifest_bytes, file_bytes, manifest_crc):
        self.data_offset = data_offset
        self.data_bytes = data_bytes
        self.manifest_offset = manifest_offset
        self.manifest_bytes = manifest_bytes
        self.file_bytes = file_bytes
        self.manifest_crc = manifest_crc

    def encode(self):
        b = struct.pack("<QQQQQII", self.data_offset, self.data_bytes, self.manifest_offset, self.manifest_bytes,
                        self.file_bytes, self.manifest_crc, 0) + FOOTER_MAGIC + bytes(4)
        return b + struct.pack("<I", crc32(b))

    @staticmethod
    def decode(b, footer_offset, file_size, limits):
        """Checks the footer and that its regions tile the file: header, data, manifest, footer."""
        if b[48:56] != FOOTER_MAGIC:
            raise malformed("bad footer magic (file truncated or not finished)", footer_offset + 48)
        stored, computed = struct.unpack_from("<I", b, 60)[0], crc32(b[:60])
        if stored != computed:
            raise malformed("footer checksum mismatch (stored 0x%08x, computed 0x%08x)" % (stored, computed), footer_offset + 60)
        f = Footer(*struct.unpack_from("<QQQQQI", b, 0))
        if struct.unpack_from("<I", b, 44)[0] or struct.unpack_from("<I", b, 56)[0]:
            raise malformed("reserved footer bytes are not zero", footer_offset + 44)
        if f.file_bytes != file_size:
            raise malformed("file is %d bytes but its footer says %d (truncated or appended to)" % (file_size, f.file_bytes),
                            footer_offset + 32)
        if f.data_offset != HEADER_BYTES:
            raise malformed("data region starts at %d, expected %d" % (f.data_offset, HEADER_BYTES), footer_offset)
        if f.data_bytes % ALIGNMENT or f.data_offset + f.data_bytes != f.manifest_offset:
            raise malformed("data region [%d, +%d) does not end where the manifest starts (%d) on a 64-byte boundary"
                            % (f.data_offset, f.data_bytes, f.manifest_offset), footer_offset + 8)
        if f.manifest_bytes > limits.max_manifest_bytes:
            raise malformed("manifest of %d bytes exceeds the limit of %d" % (f.manifest_bytes, limits.max_manifest_bytes),
                            footer_offset + 24)
        if f.manifest_offset + f.manifest_bytes != footer_offset:
            raise malformed("manifest [%d, +%d) does not end where the footer starts (%d)"
                            % (f.manifest_offset, f.manifest_bytes, footer_offset), footer_offset + 16)
        return f


def is_valid_name(name, limit, dots):
    """1 to ``limit`` bytes of ASCII letters, digits, '_', '-' (and '.' when ``dots``)."""
    data = name.encode("utf-8")
    if not 1 <= len(data) <= limit:
        return False
    allowed = b"_-." if dots else b"_-"
    return all(48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c in allowed for c in data)


def align_up(value, alignment=ALIGNMENT):
    return (value + alignment - 1) // alignment * alignment
