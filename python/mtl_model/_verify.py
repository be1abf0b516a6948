"""`Model.verify`: what a reader does not check on open — every chunk checksum, zero padding,
the tensors the architecture calls for, impossible values, distinct keys — with the verdicts
and messages of `mtl-model verify`. Memory stays bounded by a stretch of the file (16 MiB),
except for keys, whose duplicate check sorts a copy (8 bytes per row)."""
import numpy as np

from . import config as _config
from ._codec import bfloat16_to_float32, quantized_parameters, rows_view
from ._errors import MTLModelError

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
        chunk_problems = list(model.chunk_problems(info))
        problems += chunk_problems
        if not chunk_problems:
            model._checked.add(info.name)
            try:
                problems += _values(model, info)
            except MTLModelError as error:  # a chunk that does not inflate
                problems.append(Problem("checksum", info.name, error.offset, error.message))
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


# ---- values -----------------------------------------------------------------------------------

class _Counts:
    def __init__(self):
        self.nan = self.inf = self.huge = 0
        self.first_nonfinite = self.first_negative = self.bad_row = None


def _units(model, info):
    """(first unit index, array of whole units) over the tensor, a stretch at a time; a unit is
    an element, or a row of a quantized type (which may straddle chunks: carried over)."""
    unit = info.dtype.numpy.itemsize if info.dtype.numpy else info.dtype.row_bytes(info.shape[-1])
    carry, seen = b"", 0
    if info.compression == "none":
        step = max(unit, STRETCH_BYTES // unit * unit)
        pieces = ((None, memoryview(model._mm)[info.offset + s:info.offset + min(s + step, info.nbytes)])
                  for s in range(0, info.nbytes, step))
    else:
        pieces = model.logical_chunks(info, checksums=False)
    for _, piece in pieces:
        data = carry + bytes(piece) if carry else piece
        whole = len(data) // unit * unit
        if whole:
            yield seen, data[:whole]
            seen += whole // unit
        carry = bytes(data[whole:])


def _values(model, info):
    if info.nbytes == 0:
        return []
    if info.role == "keys" and info.dtype.name in ("int64", "uint64"):
        keys = model[info.name]
        ordered = np.sort(keys, kind="stable")
        same = np.flatnonzero(ordered[1:] == ordered[:-1])
        return [Problem("keys", info.name, None, "duplicate key %d" % int(np.uint64(ordered[same[0]].view(np.uint64))))] if same.size else []
    counts = _Counts()
    is_running_var = info.name.endswith(".bn.running_var")
    for first, data in _units(model, info):
        name = info.dtype.name
        if info.dtype.is_quantized:
            rows, _ = rows_view(data, info)
            scale, bias = quantized_parameters(rows, info)
            ok = np.isfinite(scale) & (np.isfinite(bias) if bias is not None else True)
            if counts.bad_row is None and not ok.all():
                counts.bad_row = first + int(np.flatnonzero(~ok)[0])
            continue
        if name in ("float32", "float16", "bfloat16"):
            values = np.frombuffer(data, dtype=info.dtype.numpy)
            if name == "bfloat16":
                values = bfloat16_to_float32(values)
            nan, inf = np.isnan(values), np.isinf(values)
            counts.nan += int(nan.sum())
            counts.inf += int(inf.sum())
            if counts.first_nonfinite is None and (nan.any() or inf.any()):
                counts.first_nonfinite = first + int(np.flatnonzero(nan | inf)[0])
            if name != "float16":
                counts.huge += int((np.isfinite(values) & (np.abs(values.astype(np.float32)) >= HUGE)).sum())
            if name == "float32" and is_running_var and counts.first_negative is None:
                negative = np.flatnonzero(values < 0)
                if negative.size:
                    counts.first_negative = first + int(negative[0])
        elif name == "int64" and info.role in ("row-count", "optimizer-step") and counts.first_negative is None:
            negative = np.flatnonzero(np.frombuffer(data, dtype="<i8") < 0)
            if negative.size:
                counts.first_negative = first + int(negative[0])
    return _value_problems(counts, info, is_running_var)


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

