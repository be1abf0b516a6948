"""Reading an .mtlm file: `load` checks the header, footer, manifest and tensor directory as
docs/FORMAT.md says ("Reading untrusted files") before any payload is touched; tensors are
then zero-copy read-only numpy views of the mapped file, their chunk checksums checked on
first access."""
import mmap
import os
import stat
import threading
import zlib

import numpy as np
from google.protobuf.message import DecodeError

from . import config as _config
from ._codec import decode as _decode
from ._directory import decode_entries, validate_directory
from ._errors import MTLModelError, malformed
from ._filekind import advice_for_model
from ._format import (DTYPES, FEATURE_DELTA, FOOTER_BYTES, HEADER_BYTES, HEADER_MAGIC, ROLES, TRAINING_ROLES, Footer,
                      ReadLimits, crc32, decode_header)
from ._proto import mtl_model_pb2 as pb
from ._threads import shared_pool, thread_count

DELTA_SOURCES = {1: "base", 2: "full", 3: "rows"}


def load(path, verify=False, limits=None, check_checksums=True):
    """Opens the model (or delta) at ``path``.

    Opening reads the header, footer and manifest only; its cost does not grow with the
    weights. ``verify=True`` also runs `Model.verify` and raises if the file is not valid.
    ``check_checksums=False`` skips the chunk checksums on first access of each tensor.
    Raises `MTLModelError` naming the file, the place and the problem.
    """
    model = Model(os.fspath(path), limits or ReadLimits(), check_checksums)
    if verify:
        report = model.verify()
        if not report.valid:
            model.close()
            first = report.problems[0]
            more = len(report.problems) - 1
            raise MTLModelError("malformed", first.message + (" (and %d more problems)" % more if more else ""),
                                file=model.path, offset=first.offset, tensor=first.tensor)
    return model


class Model:
    """An open .mtlm file. Use `load`; close with `close()` or a ``with`` block."""

    def __init__(self, path, limits, check_checksums):
        self.path = path
        self._check_checksums = check_checksums
        self._checked = set()
        self._lock = threading.Lock()
        self._mm = None
        try:
            self._open(limits)
        except MTLModelError as error:
            self.close()
            raise error.in_file(path)

    # ---- opening ---------------------------------------------------------------------------

    def _open(self, limits):
        fd = _open_regular(self.path)
        try:
            size = os.fstat(fd).st_size
            prefix = os.pread(fd, 4096, 0)
            advice = advice_for_model(prefix, size, self.path)
            if advice:
                raise malformed(advice)
            if size < HEADER_BYTES + FOOTER_BYTES:
                if size >= 8 and prefix[:8] != HEADER_MAGIC:
                    raise malformed("not an .mtlm file (bad magic bytes %s)" % prefix[:8].hex(), 0)
                raise malformed("file is %d bytes, shorter than the %d of header and footer (truncated?)"
                                % (size, HEADER_BYTES + FOOTER_BYTES), 0)
            self._mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        mm = self._mm
        self.file_bytes = size
        major, minor, self.required_features = decode_header(mm[:HEADER_BYTES])
        self.version = "%d.%d" % (major, minor)
        footer_offset = size - FOOTER_BYTES
        self._footer = footer = Footer.decode(mm[footer_offset:], footer_offset, size, limits)
        manifest_bytes = mm[footer.manifest_offset:footer.manifest_offset + footer.manifest_bytes]
        computed = crc32(manifest_bytes)
        if computed != footer.manifest_crc:
            raise malformed("manifest checksum mismatch (stored 0x%08x, computed 0x%08x)" % (footer.manifest_crc, computed),
                            footer.manifest_offset)
        self._manifest = manifest = pb.Manifest()
        try:
            manifest.ParseFromString(manifest_bytes)
        except (DecodeError, RuntimeError, ValueError):
            raise malformed("manifest is not a valid protobuf message", footer.manifest_offset)
        self._read_manifest(manifest, footer.manifest_offset, limits)
        entries = decode_entries(manifest.tensors, footer.manifest_offset, limits)
        validate_directory(entries, footer, self.required_features, limits)
        self.tensors = {e.name: e for e in entries}

    def _read_manifest(self, manifest, offset, limits):
        strings = _Strings(offset, limits)
        if not manifest.HasField("provenance"):
            raise malformed("manifest has no provenance", offset)
        if not manifest.HasField("architecture"):
            raise malformed("manifest has no architecture", offset)
        self.provenance = strings.provenance(manifest.provenance, "provenance")
        self.metadata = {}
        for index, entry in enumerate(manifest.metadata):
            key = strings.check(entry.key, "metadata[%d].key" % index)
            if key in self.metadata:
                raise malformed('metadata key "%s" appears twice' % key, offset)
            self.metadata[key] = strings.check(entry.value, "metadata[%d].value" % index, limits.max_metadata_value_bytes)
        self.is_delta = manifest.HasField("delta")
        if bool(self.required_features & FEATURE_DELTA) != self.is_delta:
            raise malformed("the header's delta feature bit and the manifest's delta section disagree", 16)
        self.delta = self._read_delta(manifest.delta, strings, offset, limits) if self.is_delta else None
        for index, name in enumerate(manifest.architecture.groups):
            strings.check(name, "architecture.groups[%d]" % index)
        for index, t in enumerate(manifest.tensors):
            strings.check(t.name, "tensors[%d].name" % index)
        self._config = _config.from_proto(manifest.architecture)

    @staticmethod
    def _read_delta(d, strings, offset, limits):
        if not d.HasField("new_provenance"):
            raise malformed("manifest has no delta.new_provenance", offset)
        if len(d.tensors) > limits.max_tensor_count:
            raise malformed("delta lists %d tensors, more than the limit of %d" % (len(d.tensors), limits.max_tensor_count), offset)
        tensors = []
        for index, t in enumerate(d.tensors):
            name = strings.check(t.name, "delta.tensors[%d].name" % index)
            if t.dtype not in DTYPES or t.role not in ROLES or t.source not in DELTA_SOURCES:
                raise malformed("delta entry has an unknown dtype, role or source", offset, name)
            if len(t.shape) > limits.max_rank:
                raise malformed("delta entry of rank %d" % len(t.shape), offset, name)
            tensors.append({"name": name, "dtype": DTYPES[t.dtype].name, "shape": tuple(t.shape),
                            "role": ROLES[t.role], "source": DELTA_SOURCES[t.source]})
        return {"base_content_hash": d.base_content_hash, "tensors": tensors,
                "new_provenance": strings.provenance(d.new_provenance, "delta.new_provenance")}

    # ---- what the file says ----------------------------------------------------------------

    @property
    def config(self):
        """The architecture as MODEL.md's config dict, every default explicit (a copy)."""
        import copy
        return copy.deepcopy(self._config)

    @property
    def form(self):
        """"training" when the file holds training state (optimizer slots, step, loss.log_var,
        row counts), "serving" otherwise; "delta" for a delta file."""
        if self.is_delta:
            return "delta"
        return "training" if any(t.role in TRAINING_ROLES for t in self.tensors.values()) else "serving"

    def keys(self):
        return self.tensors.keys()

    def __iter__(self):
        return iter(self.tensors)

    def __len__(self):
        return len(self.tensors)

    def __contains__(self, name):
        return name in self.tensors

    def __repr__(self):
        return "<mtl_model.Model %s: format %s, %s form, %d tensors>" % (self.path, self.version, self.form, len(self.tensors))

    # ---- tensors ---------------------------------------------------------------------------

    def __getitem__(self, name):
        """The stored elements of tensor ``name`` as a read-only numpy array in its shape:
        zero copy (a view of the mapped file) when stored uncompressed. float32, float16, int64
        and uint64 as they are; bfloat16 as its uint16 bits (`decode` gives float32). A
        quantized tensor has no element array: use `decode`."""
        info = self._info(name)
        if info.dtype.is_quantized:
            raise MTLModelError("invalid_argument", "is %s (quantized, rows with their own scales): m.decode(name) "
                                "gives its float32 values" % info.dtype, file=self.path, tensor=name)
        array = np.frombuffer(self._logical(info), dtype=info.dtype.numpy).reshape(info.shape)
        array.flags.writeable = False
        return array

    def decode(self, name):
        """float32 values of float tensor ``name`` whatever its dtype (float16, bfloat16,
        int8 / int4 row-wise, int8 symmetric): bit-identical to what `mtl-model dequantize` writes.
        A new, writable array."""
        info = self._info(name)
        if not info.dtype.is_float:
            raise MTLModelError("invalid_argument", "tensor is %s, not a float type: m[name] gives its values" % info.dtype,
                                file=self.path, tensor=name)
        return _decode(self._logical(info), info)

    def _info(self, name):
        if self._mm is None:
            raise MTLModelError("invalid_argument", "the model is closed", file=self.path)
        info = self.tensors.get(name)
        if info is None:
            raise MTLModelError("invalid_argument", 'no tensor named "%s" (the file has %d tensors%s)'
                                % (name, len(self.tensors), _closest(name, self.tensors)), file=self.path, tensor=name)
        return info

    def _logical(self, info):
        """The logical bytes: a memoryview of the mapped file, or the inflated chunks."""
        if info.nbytes == 0:
            return b""
        if self._check_checksums and info.name not in self._checked:
            problems = self.chunk_problems(info)
            if problems:
                problem = problems[0]
                raise MTLModelError("malformed", problem.message, file=self.path, offset=problem.offset, tensor=info.name)
            with self._lock:
                self._checked.add(info.name)
        if info.compression == "none":
            return memoryview(self._mm)[info.offset:info.offset + info.nbytes]
        out = bytearray(info.nbytes)
        for index, chunk in self.logical_chunks(info):
            start = index * info.chunk_bytes
            out[start:start + len(chunk)] = chunk
        return out  # read-only once wrapped: __getitem__ clears the flag, decode copies

    def chunk_problems(self, info, first=0, stop=None):
        """Each chunk of ``info`` (those from ``first`` to ``stop``) whose stored bytes fail their
        CRC-32, as a list of `Problem`s in order. Several chunks are checked on the shared pool's
        threads (zlib releases the GIL while it checksums): a 2 GiB model's every tensor read
        in 1.06 s on one thread took 0.7 s of CRC-32."""
        ranges = info.stored_ranges()[first:stop]
        check = lambda item: self.chunk_problem(info, item[0], *item[1])  # noqa: E731
        threads = thread_count()
        if len(ranges) < 4 or threads == 1:
            return [problem for problem in map(check, enumerate(ranges, first)) if problem is not None]
        # A window of chunks at a time: a tensor of a million chunks is not a million futures.
        problems, window = [], 16 * threads
        for start in range(0, len(ranges), window):
            found = shared_pool().map(check, enumerate(ranges[start:start + window], first + start))
            problems += [problem for problem in found if problem is not None]
        return problems

    def chunk_problem(self, info, index, start, end):
        """The `Problem` of chunk ``index`` (stored at ``[start, end)`` of the tensor) when its
        CRC-32 does not match, else None."""
        from ._verify import Problem
        computed = crc32(memoryview(self._mm)[info.offset + start:info.offset + end])
        if computed == info.chunk_crc32[index]:
            return None
        return Problem("checksum", info.name, info.offset + start, "chunk %d checksum mismatch (stored 0x%08x, computed 0x%08x)"
                       % (index, info.chunk_crc32[index], computed))

    def logical_chunks(self, info):
        """(index, logical bytes) of each chunk, inflated when compressed (checksums are the
        caller's: `chunk_problems`); raises on a chunk that does not inflate to its size."""
        for index, (start, end) in enumerate(info.stored_ranges()):
            stored = memoryview(self._mm)[info.offset + start:info.offset + end]
            where = info.offset + start
            if info.compression == "none":
                yield index, stored
                continue
            logical = min(info.chunk_bytes, info.nbytes - index * info.chunk_bytes)
            try:
                inflater = zlib.decompressobj()
                chunk = inflater.decompress(stored, logical)
                whole = len(chunk) == logical and inflater.eof and not inflater.unconsumed_tail and not inflater.unused_data
            except zlib.error:
                whole = False
            if not whole:
                raise MTLModelError("malformed", "chunk %d does not inflate to its %d bytes" % (index, logical),
                                    file=self.path, offset=where, tensor=info.name)
            yield index, chunk

    def _release(self, offset, length):
        """Drops this process's pages of ``[offset, offset + length)`` of the mapping (the page
        cache keeps them): what verify has read stops counting in the resident set."""
        if length <= 0 or not hasattr(mmap, "MADV_DONTNEED"):
            return
        start = offset // mmap.PAGESIZE * mmap.PAGESIZE
        end = min(offset + length, len(self._mm))
        try:
            self._mm.madvise(mmap.MADV_DONTNEED, start, end - start)
        except (OSError, ValueError):
            pass  # advice only

    def verify(self):
        """Every check of `mtl-model verify`: chunk checksums, zero padding, the structure the
        architecture calls for, NaN / Inf and other impossible values, distinct keys. Returns a
        `VerifyReport` listing every problem (``report.valid`` when there is none)."""
        from ._verify import verify
        return verify(self)

    # ---- closing ---------------------------------------------------------------------------

    def close(self):
        """Unmaps the file. Arrays still referring to it keep their pages until they go."""
        mm, self._mm = self._mm, None
        if mm is not None:
            try:
                mm.close()
            except BufferError:
                pass  # an array still views the mapping: it is unmapped when the last one goes

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Strings:
    """Manifest strings: bounded length, no NUL (protobuf already refused invalid UTF-8)."""

    def __init__(self, offset, limits):
        self.offset, self.limits = offset, limits

    def check(self, text, key, limit=None):
        limit = limit or self.limits.max_name_bytes
        size = len(text.encode("utf-8"))
        if size > limit:
            raise malformed("string of %d bytes exceeds the limit of %d (%s)" % (size, limit, key), self.offset)
        if "\x00" in text:
            raise malformed("string contains a NUL byte (%s)" % key, self.offset)
        return text

    def provenance(self, p, key):
        big = self.limits.max_metadata_value_bytes
        return {"producer": self.check(p.producer, key + ".producer"),
                "producer_version": self.check(p.producer_version, key + ".producer_version"),
                "created_unix_seconds": p.created_unix_seconds, "source": self.check(p.source, key + ".source", big)}


def _open_regular(path):
    """A descriptor of ``path`` if it is a regular file. Opened non-blocking, so that a FIFO
    cannot hang the open, and checked before anything is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise MTLModelError("io", "cannot open: %s" % error.strerror, file=path)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
                "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode) else
                "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise MTLModelError("invalid_argument", "is %s, not a model file" % kind, file=path)
    return fd


def _closest(name, names):
    match = _config.closest(name, list(names))
    return '; did you mean "%s"?' % match if match else ""
