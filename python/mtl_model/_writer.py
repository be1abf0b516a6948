"""`save`: an .mtlm file from numpy arrays, written as docs/FORMAT.md says ("Writing") and as
the Swift writer writes it: payloads streamed chunk by chunk (CRC-32 each, zlib level 1 when
compressed), the manifest, the footer, then the header; under a temporary name beside the
target, fsynced, renamed over it. For the same tensors, config and metadata the data region
is byte-identical to the Swift writer's."""
import collections
import ctypes
import json
import os
import secrets
import stat
import sys
import time
import zlib

import numpy as np

from . import config as _config
from ._errors import MTLModelError
from ._format import (ALIGNMENT, DEFAULT_CHUNK_BYTES, DTYPE_BY_NAME, FEATURE_ZLIB_CHUNKS, FOOTER_BYTES, HEADER_BYTES,
                      MAX_CHUNK_BYTES, ROLE_VALUES, Footer, crc32, encode_header)
from ._proto import mtl_model_pb2 as pb
from ._threads import shared_pool, thread_count
from ._verify import _shape, first_duplicate

PRODUCER = "mtl-model-python"
# What `save` takes for each needed dtype (besides the dtype itself): float16 for parameters
# (stored as float16, which verify accepts), uint64 ids for keys (stored as their int64 bits),
# and any narrower integer for counts and the step (widened exactly).
_INTEGER_KINDS = "iu"


def save(path, tensors, config, metadata=None, compression=None, allow_nonfinite=False,
         chunk_bytes=DEFAULT_CHUNK_BYTES, source="", fsync=True):
    """Writes ``tensors`` (name → array, MODEL.md names) of the architecture ``config`` (a
    dict, or its JSON text) to ``path``, atomically.

    Everything is checked before the first byte is written — names, dtypes, shapes, each
    training-state group complete or absent, distinct keys, finite values (unless
    ``allow_nonfinite``) — and every problem is listed in the one error raised
    (``error.problems`` holds them one by one). ``compression`` is None or "zlib".
    Returns the path written.
    """
    if isinstance(config, (str, bytes)):
        try:
            config = json.loads(config)
        except json.JSONDecodeError as error:
            raise MTLModelError("invalid_config", "not valid JSON at line %d, column %d: %s" % (error.lineno, error.colno, error.msg.lower()))
        except ValueError as error:
            raise MTLModelError("invalid_config", "not valid JSON: %s" % error)
    normalized = _config.normalize(config)
    if compression not in (None, "none", "zlib"):
        raise MTLModelError("invalid_argument", 'compression must be None or "zlib", not %r' % (compression,))
    if not (ALIGNMENT <= chunk_bytes <= MAX_CHUNK_BYTES and chunk_bytes % ALIGNMENT == 0):
        raise MTLModelError("invalid_argument", "chunk_bytes must be a multiple of 64 in 64...%d" % MAX_CHUNK_BYTES)
    entries = _metadata(metadata)
    plan = plan_tensors(tensors, normalized, allow_nonfinite)
    target = _target(os.fspath(path))
    with _AtomicFile(target, fsync) as out:
        encoder = _Encoder(shared_pool(), 2 * thread_count())
        out.write(bytes(HEADER_BYTES))
        manifest = pb.Manifest()
        zlib_used = False
        for spec, array, dtype in plan:
            entry = _write_tensor(out, encoder, spec, array, dtype, chunk_bytes, compression == "zlib")
            zlib_used |= entry.compression == 1
            manifest.tensors.append(entry)
        manifest.provenance.producer = PRODUCER
        from . import __version__
        manifest.provenance.producer_version = __version__
        manifest.provenance.created_unix_seconds = int(time.time())
        manifest.provenance.source = source
        _config.to_proto(normalized, manifest.architecture)
        for key, value in entries:
            manifest.metadata.add(key=key, value=value)
        data = manifest.SerializeToString()
        manifest_offset = out.position
        out.write(data)
        footer = Footer(HEADER_BYTES, manifest_offset - HEADER_BYTES, manifest_offset, len(data),
                        out.position + FOOTER_BYTES, crc32(data))
        out.write(footer.encode())
        out.overwrite(0, encode_header(0, FEATURE_ZLIB_CHUNKS if zlib_used else 0))
    return target


def _metadata(metadata):
    entries = list((metadata or {}).items())
    for key, value in entries:
        if not isinstance(key, str) or not isinstance(value, str):
            raise MTLModelError("invalid_argument", "metadata keys and values must be strings: %r: %r" % (key, value))
        if not key or len(key.encode()) > 1024 or "\x00" in key:
            raise MTLModelError("invalid_argument", 'invalid metadata key "%s" (1 to 1024 bytes, no NUL)' % key)
        if "\x00" in value or len(value.encode()) > 16 << 20:
            raise MTLModelError("invalid_argument", 'metadata value of "%s" contains a NUL byte or is longer than 16 MiB' % key)
    return entries


def plan_tensors(tensors, config, allow_nonfinite=False):
    """[(spec, array, stored dtype name)] in file order, or one error listing every problem."""
    arrays = {}
    problems = []
    for name, value in tensors.items():
        try:
            arrays[name] = np.asarray(value)
        except Exception as error:  # an object numpy cannot make an array of
            problems.append((name, "is not an array (%s)" % error))
    specs = _config.serving_specs(config)
    for group in _config.TRAINING_GROUPS:
        group_specs = _config.training_specs(config, group)
        present = [s for s in group_specs if s.name in arrays]
        if present:
            specs += group_specs
            if len(present) < len(group_specs):
                missing = [s.name for s in group_specs if s.name not in arrays]
                problems.append((missing[0], "missing: %s are given for %d tensors but not for %d (%s)" % (
                    group, len(present), len(missing), ", ".join(missing[:3]) + (", …" if len(missing) > 3 else ""))))
    expected = {s.name for s in specs}
    plan = []
    for spec in specs:
        if spec.name not in arrays:
            if not any(p[0] == spec.name for p in problems):
                problems.append((spec.name, "missing (the architecture needs %s %s)" % (spec.dtype, _shape(spec.shape))))
            continue
        array, message = _fit(arrays[spec.name], spec)
        if message:
            problems.append((spec.name, message))
            continue
        message = _check_values(array, spec, allow_nonfinite)
        if message:
            problems.append((spec.name, message))
        plan.append((spec, array, array.dtype.name if spec.role == "parameter" else spec.dtype))
    for name in sorted(set(arrays) - expected):
        match = _config.closest(name, sorted(expected))
        hint = '; did you mean "%s"?' % match if match else ""
        if name.startswith("optimizer.") and name != "optimizer.step" and "optimizer" not in config:
            hint += " (the config has no optimizer section)"
        problems.append((name, "unexpected: not part of the architecture" + hint))
    if problems:
        text = "; ".join('tensor "%s": %s' % p for p in problems[:20])
        if len(problems) > 20:
            text += "; … %d more" % (len(problems) - 20)
        error = MTLModelError("invalid_argument", "%d problem%s with the tensors: %s" % (len(problems), "s" * (len(problems) > 1), text))
        error.problems = problems
        raise error
    return plan


def _fit(array, spec):
    """The array as it will be stored, or an error message."""
    shape = tuple(int(d) for d in array.shape)
    if shape != spec.shape:
        hint = " (transposed? PyTorch's nn.Linear stores [out, in])" if len(shape) == 2 and shape == spec.shape[::-1] else ""
        return None, "is %s %s, the architecture needs %s %s%s" % (array.dtype, _shape(shape), spec.dtype, _shape(spec.shape), hint)
    kind = array.dtype.kind
    if spec.dtype == "float32":
        if array.dtype == np.float32 or (array.dtype == np.float16 and spec.role == "parameter"):
            return array, None
        cast = "float16 only for parameters" if array.dtype == np.float16 else "%s: convert it with .astype(np.float32)" % array.dtype
        return None, "is %s, the architecture needs float32 (%s)" % (array.dtype, cast)
    if kind not in _INTEGER_KINDS:
        return None, "is %s, the architecture needs %s" % (array.dtype, spec.dtype)
    if spec.role == "keys" and array.dtype == np.uint64:
        return array.view(np.int64), None  # ids are unsigned: stored as their int64 bits
    if array.dtype == np.int64:
        return array, None
    if array.dtype.itemsize < 8 or kind == "i":
        return array.astype(np.int64), None
    return None, "is %s, the architecture needs int64" % array.dtype


def _check_values(array, spec, allow_nonfinite):
    if spec.role == "keys":
        duplicate = first_duplicate(array)
        return None if duplicate is None else "duplicate key %d in a keyed table" % duplicate
    if array.dtype.kind == "f" and not allow_nonfinite:
        for start, block in _blocks(array, 1 << 22):
            bad = np.flatnonzero(~np.isfinite(block))
            if bad.size:
                index = np.unravel_index(start + int(bad[0]), array.shape) if array.ndim else ()
                return "holds NaN or Inf (the first at index %s: %s); save(..., allow_nonfinite=True) keeps them" % (
                    list(int(i) for i in index), block[bad[0]])
    if spec.role in ("row-count", "optimizer-step") and array.size and int(array.min()) < 0:
        return "holds a negative count (%d)" % int(array.min())
    return None


def _blocks(array, elements):
    """(first flat index, 1-D contiguous block) over the array in row-major order, in
    bounded memory whatever its strides (a transposed view is copied a block at a time)."""
    if array.ndim == 0:
        yield 0, array.reshape(1)
        return
    rows = max(1, elements // max(1, array[0].size if array.shape[0] else 1))
    per_row = array[0].size if array.shape[0] else 0
    for start in range(0, array.shape[0], rows):
        yield start * per_row, np.ascontiguousarray(array[start:start + rows]).reshape(-1)


def _write_tensor(out, encoder, spec, array, dtype, chunk_bytes, compress):
    stored = DTYPE_BY_NAME[dtype]
    entry = pb.Tensor(name=spec.name, dtype=stored.value, shape=list(spec.shape), role=ROLE_VALUES[spec.role],
                      offset=out.position)
    nbytes = stored.stored_bytes(spec.shape)
    if nbytes:
        if not compress:
            out.reserve(nbytes)
        entry.chunk_byte_count = chunk_bytes
        entry.compression = 1 if compress else 0
        for data, crc in encoder.encoded(_chunks(array, stored.numpy, chunk_bytes), compress):
            entry.chunk_crc32.append(crc)
            if compress:
                entry.chunk_stored_byte_count.append(len(data))
            entry.stored_byte_count += len(data)
            out.write(data)
    remainder = out.position % ALIGNMENT
    if remainder:
        out.write(bytes(ALIGNMENT - remainder))
    return entry


def _chunks(array, dtype, chunk_bytes):
    """The tensor's little-endian bytes in chunks of ``chunk_bytes`` (the last shorter): slices
    of the array's own memory when it is contiguous in the stored dtype (no copy), else
    converted a block at a time."""
    if array.flags.c_contiguous and array.dtype == dtype:
        data = memoryview(array.reshape(-1).view(np.uint8))
        for start in range(0, len(data), chunk_bytes):
            yield data[start:start + chunk_bytes]
        return
    pending = bytearray()
    for _, block in _blocks(array, max(1, chunk_bytes // dtype.itemsize)):
        pending += block.astype(dtype, copy=False).tobytes()
        while len(pending) >= chunk_bytes:
            yield bytes(pending[:chunk_bytes])
            del pending[:chunk_bytes]
    if pending:
        yield bytes(pending)


class _Encoder:
    """(stored bytes, CRC-32) of each chunk, in order, computed by the pool's threads a few
    chunks ahead of the caller, who writes them: zlib releases the GIL while it checksums or
    compresses a large buffer, so the cores share that work while the caller's thread copies
    into the page cache. At most ``in_flight`` chunks are encoded ahead: memory stays a few
    chunks whatever the size."""

    def __init__(self, pool, in_flight):
        self.pool, self.in_flight = pool, in_flight

    def encoded(self, chunks, compress):
        ahead = collections.deque()
        for chunk in chunks:
            ahead.append(self.pool.submit(_encode, chunk, compress))
            if len(ahead) >= self.in_flight:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def _encode(chunk, compress):
    data = zlib.compress(chunk, 1) if compress else chunk
    return data, crc32(data)


def _target(path):
    """The regular file to replace (a symbolic link followed: the link stays a link); refuses
    what a rename would destroy (a device, a FIFO) and what cannot be a file."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return path
    if stat.S_ISLNK(info.st_mode):
        real = os.path.realpath(path)
        if not os.path.exists(real):
            raise MTLModelError("invalid_argument", "is a symbolic link to a file that does not exist: name the file itself", file=path)
        path, info = real, os.stat(real)
    if stat.S_ISREG(info.st_mode):
        return path
    kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a device, FIFO or socket"
    raise MTLModelError("invalid_argument", "is %s, not a file: a model is written to a regular file (nothing was written)" % kind, file=path)


class _AtomicFile:
    """``.NAME.mtlm-tmp-PID-RANDOM`` beside the target, renamed over it on success, removed on
    failure: the target path never holds a partial file."""

    def __init__(self, target, fsync):
        self.target, self.fsync = target, fsync
        directory, name = os.path.split(os.path.abspath(target))
        self.directory = directory
        self.temporary = os.path.join(directory, ".%s.mtlm-tmp-%d-%s" % (name, os.getpid(), secrets.token_hex(4)))
        self.position = 0

    def __enter__(self):
        try:
            self.file = open(self.temporary, "xb")
        except OSError as error:
            raise MTLModelError("io", "cannot create a file beside the target: %s" % error.strerror, file=self.target)
        return self

    def write(self, data):
        try:
            self.file.write(data)
        except OSError as error:
            raise MTLModelError("io", "cannot write: %s" % error.strerror, file=self.target)
        self.position += len(data)

    def reserve(self, count):
        """The next ``count`` bytes will be written: their blocks are allocated now, in one
        extent, without changing the file's size, as the Swift writer and ``np.save`` do (ext4
        otherwise allocates page by page inside each write: a 2 GiB save took 1.68 s that way
        and 1.54 s into reserved blocks, `benchmarks/python-save-reserve.py`). Exactly the bytes that follow, since blocks reserved
        past the end would stay allocated; advisory (nothing where ``fallocate`` is missing)."""
        if count < 1 << 20 or _fallocate is None:
            return
        self.file.flush()
        _fallocate(self.file.fileno(), _FALLOC_FL_KEEP_SIZE, self.position, count)

    def overwrite(self, offset, data):
        self.file.seek(offset)
        self.write(data)
        self.position -= len(data)
        self.file.seek(0, os.SEEK_END)

    def __exit__(self, kind, error, trace):
        try:
            if kind is None:
                self.file.flush()
                if self.fsync:
                    os.fsync(self.file.fileno())
                self.file.close()
                os.replace(self.temporary, self.target)
                if self.fsync:
                    fd = os.open(self.directory, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                return False
        except OSError as failure:
            kind = MTLModelError("io", "cannot finish the file: %s" % failure.strerror, file=self.target)
        self.file.close()
        try:
            os.unlink(self.temporary)
        except OSError:
            pass
        if isinstance(kind, MTLModelError):
            raise kind
        return False


_FALLOC_FL_KEEP_SIZE = 1


def _load_fallocate():
    """Linux's ``fallocate(2)`` (the os module has only ``posix_fallocate``, which changes the
    size and, where the file system lacks it, writes zeros instead): None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    function.restype = ctypes.c_int
    return function


_fallocate = _load_fallocate()
