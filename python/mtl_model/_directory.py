"""The tensor directory: one entry per tensor, and the rules that make every payload lie
inside the data region, aligned, without overlap or hole (docs/FORMAT.md, "Tiling")."""
from ._errors import malformed
from ._format import (ALIGNMENT, COMPRESSIONS, DTYPES, FEATURE_ZLIB_CHUNKS, MAX_CHUNK_BYTES, ROLES,
                      align_up, is_valid_name)


class TensorInfo:
    """What the manifest says of one tensor. ``nbytes`` is its logical (uncompressed) size."""

    __slots__ = ("name", "dtype", "shape", "role", "offset", "stored_bytes", "compression",
                 "chunk_bytes", "chunk_crc32", "chunk_stored_bytes", "nbytes")

    def __init__(self, name, dtype, shape, role, offset, stored_bytes, compression, chunk_bytes,
                 chunk_crc32, chunk_stored_bytes, nbytes):
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.role = role
        self.offset = offset
        self.stored_bytes = stored_bytes
        self.compression = compression
        self.chunk_bytes = chunk_bytes
        self.chunk_crc32 = chunk_crc32
        self.chunk_stored_bytes = chunk_stored_bytes
        self.nbytes = nbytes

    @property
    def chunk_count(self):
        return len(self.chunk_crc32)

    def stored_ranges(self):
        """(start, end) of each chunk's stored bytes, relative to ``offset``."""
        if self.compression == "zlib":
            sizes = self.chunk_stored_bytes
        else:
            sizes = [min(self.chunk_bytes, self.nbytes - i * self.chunk_bytes) for i in range(self.chunk_count)]
        ranges, start = [], 0
        for size in sizes:
            ranges.append((start, start + size))
            start += size
        return ranges

    def __repr__(self):
        return "TensorInfo(%r, %s, %s, %s, %d bytes%s)" % (
            self.name, self.dtype, list(self.shape), self.role, self.nbytes,
            "" if self.compression == "none" else ", zlib")


def decode_entries(manifest_tensors, manifest_offset, limits):
    """Tensor entries of the manifest, every enum value known and every name valid."""
    if len(manifest_tensors) > limits.max_tensor_count:
        raise malformed("manifest lists %d tensors, more than the limit of %d"
                        % (len(manifest_tensors), limits.max_tensor_count), manifest_offset)
    entries = []
    for t in manifest_tensors:
        def fail(message):
            return malformed(message, manifest_offset, t.name)
        dtype = DTYPES.get(t.dtype)
        if dtype is None:
            raise fail("unknown dtype %d (this reader knows %s; the file may need a newer mtl-model)"
                       % (t.dtype, ", ".join(d.name for d in DTYPES.values())))
        if t.role not in ROLES:
            raise fail("unknown tensor role %d" % t.role)
        if t.compression not in COMPRESSIONS:
            raise fail("unknown compression %d" % t.compression)
        if len(t.shape) > limits.max_rank:
            raise fail("rank %d exceeds the limit of %d" % (len(t.shape), limits.max_rank))
        entries.append(TensorInfo(t.name, dtype, tuple(t.shape), ROLES[t.role], t.offset, t.stored_byte_count,
                                  COMPRESSIONS[t.compression], t.chunk_byte_count, list(t.chunk_crc32),
                                  list(t.chunk_stored_byte_count), None))
    return entries


def validate_directory(entries, footer, required_features, limits):
    """Checks every entry against the file; sets each entry's ``nbytes``."""
    data_start, data_end = footer.data_offset, footer.manifest_offset
    seen = set()
    for t in entries:
        def fail(message, offset=None):
            return malformed(message, footer.manifest_offset if offset is None else offset, t.name)
        if not is_valid_name(t.name, limits.max_name_bytes, dots=True):
            raise fail("invalid tensor name (1 to %d bytes of letters, digits, '_', '-', '.')" % limits.max_name_bytes)
        if t.name in seen:
            raise fail("duplicate tensor name")
        seen.add(t.name)
        nbytes = t.dtype.stored_bytes(t.shape)
        if nbytes is None:
            raise fail("shape %s does not suit %s (its byte size overflows 64 bits, or it needs rank >= 2 and rows "
                       "of 1 to 2^32 - 1 values)" % (list(t.shape), t.dtype))
        t.nbytes = nbytes
        if nbytes == 0:
            if t.chunk_crc32 or t.stored_bytes or t.chunk_stored_bytes:
                raise fail("empty tensor with stored bytes or chunks")
        else:
            _check_chunks(t, nbytes, required_features, fail)
        if t.offset % ALIGNMENT:
            raise fail("offset %d is not 64-byte aligned" % t.offset, t.offset)
        if t.offset < data_start or t.offset + t.stored_bytes > data_end:
            raise fail("bytes [%d, +%d) are outside the data region [%d, %d)" % (t.offset, t.stored_bytes, data_start, data_end))
    cursor, previous = data_start, None
    for t in sorted(entries, key=lambda e: (e.offset, e.stored_bytes)):
        expected = align_up(cursor)
        if t.offset < expected:
            raise malformed('bytes [%d, +%d) overlap tensor "%s"' % (t.offset, t.stored_bytes, previous or ""), t.offset, t.name)
        if t.offset > expected:
            raise malformed("gap of %d bytes before offset %d (payloads must tile the data region)"
                            % (t.offset - expected, t.offset), expected, t.name)
        cursor, previous = t.offset + t.stored_bytes, t.name
    if align_up(cursor) != data_end:
        raise malformed("data region ends at %d but its payloads end at %d (payloads must tile the data region)"
                        % (data_end, cursor), cursor)


def _check_chunks(t, nbytes, required_features, fail):
    if not (ALIGNMENT <= t.chunk_bytes <= MAX_CHUNK_BYTES and t.chunk_bytes % ALIGNMENT == 0):
        raise fail("chunk size %d is not a multiple of 64 in 64...%d" % (t.chunk_bytes, MAX_CHUNK_BYTES))
    chunks = (nbytes - 1) // t.chunk_bytes + 1
    if len(t.chunk_crc32) != chunks:
        raise fail("%d chunk checksums for %d chunks" % (len(t.chunk_crc32), chunks))
    if t.compression == "none":
        if t.stored_bytes != nbytes or t.chunk_stored_bytes:
            raise fail("stores %d bytes, its shape needs %d" % (t.stored_bytes, nbytes))
        return
    if not required_features & FEATURE_ZLIB_CHUNKS:
        raise fail("compressed, but the header does not require zlib-chunks")
    if len(t.chunk_stored_bytes) != chunks:
        raise fail("%d stored chunk sizes for %d chunks" % (len(t.chunk_stored_bytes), chunks))
    total = 0
    for index, size in enumerate(t.chunk_stored_bytes):
        logical = min(t.chunk_bytes, nbytes - index * t.chunk_bytes)
        if size == 0:
            raise fail("invalid stored chunk size 0")
        # Bounds what inflating may allocate: deflate never beats 1032:1.
        if logical // 1032 > size:
            raise fail("chunk %d claims %d bytes from %d, beyond zlib's maximum ratio of 1032:1" % (index, logical, size))
        total += size
    if total != t.stored_bytes:
        raise fail("stored chunk sizes add up to %d, not %d" % (total, t.stored_bytes))
