"""`Model.verify`: what a reader does not check on open — every chunk checksum, zero padding,
the tensors the architecture calls for, impossible values, distinct keys — with the verdicts
and messages of `mtl-model verify`. Memory stays bounded by a stretch of the file (16 MiB),
except for keys, whose duplicate check takes up to 7 bytes a key (`first_duplicate`)."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import config as _config
from ._codec import bfloat16_to_float32, quantized_parameters, rows_view
from ._errors import MTLModelError
from ._threads import thread_count

STRETCH_BYTES = 16 << 20
HUGE = np.float32(2.0 ** 64)


class Problem:
    """One thing wrong: ``kind`` is checksum, padding, structure, values or keys."""

    __slots__ = ("kind", "tensor", "offset", "message")

    def __init__(self, kind, tensor, offset, message):
        self.kind, self.tensor, self.offset, self.message = kind, tensor, offset, message

    def as_dict(self):
        return {"kind": self.kind, "tensor": self.tensor, "byteOffset": self.offset, "message": self.message}

    def __str__(self):
        place = [p for p in ('tensor "%s"' % self.tensor if self.tensor else None,
                             "at byte %d" % self.offset if self.offset is not None else None) if p]
        return "%s%s" % (", ".join(place) + ": " if place else "", self.message)

    __repr__ = __str__


class VerifyReport:
    def __init__(self, path, version, tensor_count, checked_bytes, problems):
        self.path, self.version, self.tensor_count = path, version, tensor_count
        self.checked_bytes, self.problems = checked_bytes, problems

    @property
    def valid(self):
        return not self.problems

    def __bool__(self):
        return self.valid

    def __repr__(self):
        return "<VerifyReport %s: %s>" % (self.path, "valid" if self.valid else "%d problems" % len(self.problems))


def verify(model):
    problems, checked = [], 0
    mm = model._mm
    cursor = model._footer.data_offset
    for info in sorted(model.tensors.values(), key=lambda t: (t.offset, t.stored_bytes)):
        problems += _padding(mm, cursor, info.offset)
        problems += _check_tensor(model, info)
        checked += info.stored_bytes
        cursor = info.offset + info.stored_bytes
    problems += _padding(mm, cursor, model._footer.manifest_offset)
    problems += delta_structure(model) if model.is_delta else structure(model.config, model.tensors)
    return VerifyReport(model.path, model.version, len(model.tensors), checked, problems)


def _padding(mm, start, end):
    if end <= start:
        return []
    gap = np.frombuffer(mm, dtype=np.uint8, count=end - start, offset=start)
    bad = np.flatnonzero(gap)
    return [Problem("padding", None, start + int(bad[0]), "padding byte is not zero")] if bad.size else []


def _check_tensor(model, info):
    """Checksums and values of one tensor in one pass over its bytes, a stretch of about
    16 MiB at a time, each stretch's pages released behind (the resident set stays bounded);
    values are reported only for a tensor whose checksums all hold."""
    if info.nbytes == 0:
        return []
    scan = _Scan(info)
    if info.compression == "zlib":
        problems = model.chunk_problems(info)
        if not problems:
            try:
                for _, chunk in model.logical_chunks(info):
                    scan.feed(chunk)
            except MTLModelError as error:  # a chunk that does not inflate
                problems.append(Problem("checksum", info.name, error.offset, error.message))
        model._release(info.offset, info.stored_bytes)
    else:
        problems = []
        view = memoryview(model._mm)
        per_stretch = max(1, STRETCH_BYTES // info.chunk_bytes)
        ranges = info.stored_ranges()
        for first in range(0, len(ranges), per_stretch):
            stretch = ranges[first:first + per_stretch]
            problems += model.chunk_problems(info, first, first + per_stretch)
            if not problems and info.role != "keys":
                scan.feed(view[info.offset + stretch[0][0]:info.offset + stretch[-1][1]])
            model._release(info.offset + stretch[0][0], stretch[-1][1] - stretch[0][0])
    if problems:
        return problems
    model._checked.add(info.name)
    if info.role == "keys" and info.dtype.name in ("int64", "uint64"):
        return _duplicate_keys(model, info)
    return scan.problems()


def _duplicate_keys(model, info):
    duplicate = first_duplicate(model[info.name])
    model._release(info.offset, info.stored_bytes)
    return [] if duplicate is None else [Problem("keys", info.name, None, "duplicate key %d" % duplicate)]


def first_duplicate(keys):
    """The smallest id (in int64 order) stored twice in ``keys`` (int64 bits of uint64 ids), as
    an unsigned integer, or None. Many keys are split by a multiplicative hash into partitions
    (equal keys fall in the same one), each sorted on one of up to four threads (numpy releases
    the GIL while it sorts): 8M keys in 0.32 s on two cores, where one sort of them all took
    0.53 s. Memory: a byte a key for the partition numbers, and a thread's mask (a byte a key)
    and partition (8 bytes a key of its quarter or less): at most 7 bytes a key, as the one
    sorted copy took 8 — which is why it has a pool of its own, of at most four threads."""
    flat = np.asarray(keys).reshape(-1)
    threads = min(thread_count(), 4)
    if flat.size < _PARTITIONED_FROM or threads == 1:
        return _smallest_duplicate(np.sort(flat))
    bits = (4 * threads - 1).bit_length()
    which = _partition_numbers(flat, bits)

    def partition(number):
        part = flat[which == number]
        part.sort()
        return _smallest_duplicate(part)
    with ThreadPoolExecutor(threads) as pool:
        found = [d for d in pool.map(partition, range(1 << bits)) if d is not None]
    return min(found, key=lambda d: d - (1 << 64) if d >= 1 << 63 else d) if found else None


_PARTITIONED_FROM = 1 << 20


def _partition_numbers(flat, bits):
    """Each key's partition, 0 to 2^bits - 1 (bits ≤ 8): the top bits of a multiplicative hash."""
    return ((flat.view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits)).astype(np.uint8)


def _smallest_duplicate(ordered):
    same = np.flatnonzero(ordered[1:] == ordered[:-1])
    return int(ordered[same[0]:same[0] + 1].view(np.uint64)[0]) if same.size else None


# ---- values -----------------------------------------------------------------------------------

class _Counts:
    def __init__(self):
        self.nan = self.inf = self.huge = 0
        self.first_nonfinite = self.first_negative = self.bad_row = None


class _Scan:
    """The values of one tensor, fed in order in pieces of any size: a unit (an element, or a
    row of a quantized type) that straddles two pieces is carried over."""

    def __init__(self, info):
        self.info, self.counts, self.carry, self.seen = info, _Counts(), b"", 0
        self.unit = info.dtype.numpy.itemsize if info.dtype.numpy is not None else info.dtype.row_bytes(info.shape[-1])
        self.is_running_var = info.name.endswith(".bn.running_var")

    def feed(self, piece):
        data = self.carry + bytes(piece) if self.carry else piece
        whole = len(data) // self.unit * self.unit
        if whole:
            self._scan(self.seen, data[:whole])
            self.seen += whole // self.unit
        self.carry = bytes(data[whole:])

    def problems(self):
        return _value_problems(self.counts, self.info, self.is_running_var)

    def _scan(self, first, data):
        info, counts, name = self.info, self.counts, self.info.dtype.name
        if info.dtype.is_quantized:
            rows, _ = rows_view(data, info)
            scale, bias = quantized_parameters(rows, info)
            ok = np.isfinite(scale) & (np.isfinite(bias) if bias is not None else True)
            if counts.bad_row is None and not ok.all():
                counts.bad_row = first + int(np.flatnonzero(~ok)[0])
        elif name in ("float32", "float16", "bfloat16"):
            values = np.frombuffer(data, dtype=info.dtype.numpy)
            if name == "bfloat16":
                values = bfloat16_to_float32(values)
            # Two reductions in the common case: every value within ±2^64 (NaN fails both);
            # no temporary array, where `abs` wrote one (0.20 → 0.10 s for 2 GiB).
            clean = bool(np.isfinite(values).all()) if name == "float16" else bool(values.max() < HUGE and values.min() > -HUGE)
            if not clean:
                self._count_bad(first, values)
            if self.is_running_var and name == "float32" and counts.first_negative is None:
                negative = np.flatnonzero(values < 0)
                if negative.size:
                    counts.first_negative = first + int(negative[0])
        elif name == "int64" and info.role in ("row-count", "optimizer-step") and counts.first_negative is None:
            negative = np.flatnonzero(np.frombuffer(data, dtype="<i8") < 0)
            if negative.size:
                counts.first_negative = first + int(negative[0])

    def _count_bad(self, first, values):
        counts = self.counts
        nan, inf = np.isnan(values), np.isinf(values)
        counts.nan += int(nan.sum())
        counts.inf += int(inf.sum())
        if counts.first_nonfinite is None and (nan.any() or inf.any()):
            counts.first_nonfinite = first + int(np.flatnonzero(nan | inf)[0])
        if self.info.dtype.name != "float16":
            counts.huge += int((np.isfinite(values) & (np.abs(values.astype(np.float32)) >= HUGE)).sum())


def _value_problems(c, info, is_running_var):
    problems = []
    if c.nan + c.inf:
        columns = max(info.shape[-1], 1) if info.shape else 1
        place = (" (the first at row %d, column %d)" % (c.first_nonfinite // columns, c.first_nonfinite % columns)
                 if len(info.shape) >= 2 else " (the first at element %d)" % c.first_nonfinite)
        problems.append(Problem("values", info.name, None, "%d NaN and %d Inf values%s" % (c.nan, c.inf, place)))
    if c.huge:
        problems.append(Problem("values", info.name, None, "%d values of magnitude ≥ 2^64 (1.8e19): their squares overflow "
                                "float32, so predictions become Inf or NaN" % c.huge))
    if c.bad_row is not None:
        problems.append(Problem("values", info.name, None, "row %d has a scale or bias that is NaN or Inf" % c.bad_row))
    if c.first_negative is not None:
        why = ": a variance must be finite and not negative" if is_running_var else ""
        problems.append(Problem("values", info.name, None, "negative value at element %d%s" % (c.first_negative, why)))
    return problems


# ---- structure --------------------------------------------------------------------------------

def _shape(shape):
    return "[%s]" % ", ".join(str(d) for d in shape)


def structure(config, tensors):
    """Every tensor the architecture needs is there with its dtype, shape and role, nothing
    else is, and each training-state group is complete or absent (MODEL.md)."""
    problems, explained = [], set()

    def check(spec):
        explained.add(spec.name)
        entry = tensors.get(spec.name)
        if entry is None:
            problems.append(Problem("structure", spec.name, None, "missing (the architecture needs %s %s)" % (spec.dtype, _shape(spec.shape))))
            return
        # Parameters may be stored in any float or quantized type (quantize writes them so).
        any_float = spec.role == "parameter" and spec.dtype == "float32"
        fits = entry.dtype.name == spec.dtype or (any_float and entry.dtype.is_float)
        if not fits or tuple(entry.shape) != spec.shape:
            hint = (" (transposed? PyTorch's nn.Linear stores [out, in])"
                    if len(entry.shape) == 2 and tuple(entry.shape) == spec.shape[::-1] and tuple(entry.shape) != spec.shape else "")
            problems.append(Problem("structure", spec.name, None, "is %s %s, the architecture needs %s %s%s" % (
                entry.dtype.name, _shape(entry.shape), "a float type" if any_float else spec.dtype, _shape(spec.shape), hint)))
        if entry.role != spec.role:
            problems.append(Problem("structure", spec.name, None, "has role %s, expected %s" % (entry.role, spec.role)))

    for spec in _config.serving_specs(config):
        check(spec)
    for group in _config.TRAINING_GROUPS:
        specs = _config.training_specs(config, group)
        if any(s.name in tensors for s in specs):
            for spec in specs:
                check(spec)
    for name in tensors:
        if name not in explained:
            problems.append(Problem("structure", name, None, _unexplained(name, config)))
    return problems


def _unexplained(name, config):
    message = "not part of the architecture"
    parts = name.split(".")
    fields = {f["name"]: f for f in config["fields"]}
    if name.startswith("optimizer.") and name != "optimizer.step":
        optimizer = config.get("optimizer")
        return message + (" (a %s optimizer has slots %s)" % (optimizer["type"], ", ".join(_config.OPTIMIZER_SLOTS[optimizer["type"]]))
                          if optimizer else " (the architecture has no optimizer section)")
    if len(parts) == 3 and parts[0] == "embedding" and parts[2] == "keys" and parts[1] in fields:
        return message + ' (field "%s" is %s, and only keyed fields have keys)' % (parts[1], fields[parts[1]]["mapping"])
    table = (len(parts) == 3 and ((parts[0] in ("embedding", "linear") and parts[2] in ("weight", "keys"))
                                  or (parts[0] == "stats" and parts[2] == "count")))
    if table and parts[1] not in fields:
        message += ' (the architecture has no field "%s")' % parts[1]
    return message


def delta_structure(model):
    """The tensors a delta's recipe needs (docs/FORMAT.md, "Deltas"), and nothing else."""
    stored = dict(model.tensors)
    problems = []

    def need(name, dtype, fits, what):
        entry = stored.pop(name, None)
        if entry is None:
            problems.append(Problem("structure", name, None, "missing (the delta needs it for %s)" % what))
        elif entry.dtype.name != dtype or not fits(entry.shape):
            problems.append(Problem("structure", name, None, "is %s %s, which does not fit %s" % (entry.dtype.name, _shape(entry.shape), what)))
        return entry

    for t in model.delta["tensors"]:
        if t["source"] == "full":
            need(t["name"], t["dtype"], lambda s, t=t: tuple(s) == t["shape"], "the whole tensor")
        elif t["source"] == "rows":
            rows = need("delta.rows." + t["name"], "uint64", lambda s: len(s) == 1, "the rows of " + t["name"])
            count = rows.shape[0] if rows is not None and len(rows.shape) == 1 else None
            need("delta.values." + t["name"], t["dtype"],
                 lambda s, t=t: len(s) >= 1 and s[0] == count and tuple(s[1:]) == t["shape"][1:], "the rows of " + t["name"])
    for name in sorted(stored):
        problems.append(Problem("structure", name, None, "not used by the delta"))
    return problems

