"""The architecture config of MODEL.md: defaults applied and every rule checked (`normalize`),
the manifest's `Architecture` message to and from it, and the tensors it calls for
(`tensor_specs`). A second implementation of the Swift `Architecture`; the tests compare them.

The normalized config is a plain dict, every default explicit, the form `Model.config` gives.
"""
import math

from ._errors import config_error
from ._format import is_valid_name

MAX_WIDTH = 1 << 20
MAX_VOCAB = 1 << 40
MAX_NAME_BYTES = 256

MAPPINGS = ["direct", "modulo", "keyed"]
COMBINERS = ["sum", "mean", "sqrtn"]
ACTIVATIONS = ["relu", "identity", "sigmoid", "tanh"]
BOTTOM_INPUTS = ["interaction", "interaction+groups", "interaction+fields"]
LAYER_ORDERS = ["linear_bn_act", "linear_act_bn"]
FUSIONS = ["weighted_sum", "lexicographic", "weighted_product"]
OPTIMIZERS = ["adagrad", "adam", "ftrl", "sgd"]
OPTIMIZER_SLOTS = {"adagrad": ["sum"], "adam": ["exp_avg", "exp_avg_sq"], "ftrl": ["z", "n"], "sgd": []}
OPTIMIZER_PARAMETERS = {
    "adagrad": ["lr", "initial_accumulator", "eps", "weight_decay", "lr_decay"],
    "adam": ["lr", "beta1", "beta2", "eps", "weight_decay"],
    "ftrl": ["lr", "alpha", "beta", "l1", "l2", "lr_power", "initial_accumulator"],
    "sgd": ["lr", "momentum", "weight_decay"],
}
LOSS_WEIGHTINGS = ["none", "fixed", "uncertainty"]
LOSS_PARAMETERIZATIONS = ["", "log_var"]
LOSS_CONVENTIONS = ["", "exp(-s)*L+s", "0.5*exp(-s)*L+0.5*s"]
# Training-state groups, each present completely or not at all, in file order.
TRAINING_GROUPS = ["optimizer slots", "optimizer step", "loss.log_var", "row counts"]


class _Object:
    """One JSON object read key by key, so that errors name the key path and unread keys are
    reported as unknown (a typo must not be silently ignored)."""

    def __init__(self, value, path):
        if not isinstance(value, dict):
            raise config_error(path or "(top level)", "expected an object, found %s" % _type_name(value))
        self.path, self.values, self.read = path, value, set()

    def key_path(self, key):
        return key if not self.path else self.path + "." + key

    def value(self, key):
        self.read.add(key)
        return self.values.get(key)

    def boolean(self, key, default):
        value = self.value(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise config_error(self.key_path(key), "expected true or false, found %s" % _type_name(value))
        return value

    def number(self, key, default=None):
        value = self.value(key)
        if value is None:
            if default is None:
                raise self.missing(key)
            return default
        return _number(value, self.key_path(key))

    def integer(self, key, low, high):
        value = self.value(key)
        if value is None:
            raise self.missing(key)
        number = _number(value, self.key_path(key))
        if number != math.floor(number) or not low <= number <= high:
            raise config_error(self.key_path(key), "expected a whole number in %d...%d, found %s" % (low, high, _show(number)))
        return int(number)

    def string(self, key, default=None):
        value = self.value(key)
        if value is None:
            if default is None:
                raise self.missing(key)
            return default
        if not isinstance(value, str):
            raise config_error(self.key_path(key), "expected a string, found %s" % _type_name(value))
        return value

    def choice(self, key, choices, default):
        if self.value(key) is None:
            return default
        name = self.string(key)
        if name not in choices:
            raise config_error(self.key_path(key), 'unknown value "%s" (expected one of: %s)' % (name, ", ".join(choices)))
        return name

    def list(self, key):
        value = self.value(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise config_error(self.key_path(key), "expected a list, found %s" % _type_name(value))
        return value

    def numbers(self, key, count):
        items = self.list(key)
        if items is None:
            return None
        values = [_number(item, "%s[%d]" % (self.key_path(key), i)) for i, item in enumerate(items)]
        if count is not None and len(values) != count:
            raise config_error(self.key_path(key), "expected %d values (one per task), found %d" % (count, len(values)))
        return values

    def unread(self):
        return sorted(k for k in self.values if k not in self.read)

    def reject_unknown(self, allowed=None):
        rest = self.unread()
        if rest:
            hint = " (expected one of: %s)" % ", ".join(allowed) if allowed else ""
            # The keys read are the ones this object knows: the closest is the likely intent.
            close = closest(rest[0], allowed or sorted(self.read))
            raise config_error(self.key_path(rest[0]), "unknown key" + hint + ('; did you mean "%s"?' % close if close else ""))

    def missing(self, key):
        """A required key is missing: a near miss among the object's keys is the likely cause."""
        near = closest(key, [k for k in self.values if k not in self.read])
        return config_error(self.key_path(key), "missing (required)" + ('; the config has "%s": a misspelling?' % near if near else ""))



def closest(name, candidates):
    """The candidate a misspelled ``name`` most likely meant, or None: a near one by
    similarity, else one that ``name`` begins ("vocab" for "vocab_size")."""
    import difflib
    candidates = [c for c in candidates if c != name]
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    if match:
        return match[0]
    return next((c for c in candidates if len(name) >= 3 and c.startswith(name)), None)


def _number(value, path):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise config_error(path, "expected a number, found %s" % _type_name(value))
    if not math.isfinite(value):
        raise config_error(path, "expected a finite number")
    return float(value)


def _show(number):
    return repr(float(number))


def _type_name(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def normalize(config):
    """The config with every default explicit; raises `MTLModelError` (code invalid_config)
    naming the key path of the first problem. Normalizing a normalized config gives it back."""
    top = _Object(config, "")
    embedding_dim = top.integer("embedding_dim", 1, MAX_WIDTH)
    groups_listed = top.value("groups") is not None
    groups = _groups(top)
    fields = _fields(top, groups if groups_listed else None)
    if not groups_listed:
        groups = [field["name"] for field in fields]
    interaction = _interaction(top)
    out = {"embedding_dim": embedding_dim}
    if groups_listed:
        out["groups"] = groups
    out.update({"fields": fields, "interaction": interaction, "linear": top.boolean("linear", False),
                "bottom_input": top.choice("bottom_input", BOTTOM_INPUTS, "interaction"),
                "layer_order": top.choice("layer_order", LAYER_ORDERS, "linear_bn_act"),
                "bn_eps": top.number("bn_eps", 1e-5), "shared": _dense(top.list("shared") or [], "shared")})
    out["tasks"] = _tasks(top)
    out["fusion"] = _fusion(top, len(out["tasks"]))
    for key, read in (("loss", _loss), ("reweight", _reweight), ("optimizer", _optimizer)):
        if top.value(key) is not None:
            out[key] = read(top.value(key), len(out["tasks"]))
    top.reject_unknown()
    _validate(out, groups)
    return out


def _groups(top):
    groups = []
    for index, item in enumerate(top.list("groups") or []):
        if not isinstance(item, str):
            raise config_error("groups[%d]" % index, "expected a string, found %s" % _type_name(item))
        groups.append(item)
    return groups


def _fields(top, groups):
    """The fields with their defaults; `groups`: the groups list, None when the config has none
    (each field is then its own group)."""
    field_items = top.list("fields")
    if field_items is None:
        raise top.missing("fields")
    fields = []
    for index, item in enumerate(field_items):
        f = _Object(item, "fields[%d]" % index)
        name = f.string("name")
        field = {"name": name, "vocab_size": f.integer("vocab_size", 1, MAX_VOCAB),
                 "mapping": f.choice("mapping", MAPPINGS, "modulo"), "combiner": f.choice("combiner", COMBINERS, "sum"),
                 "group": f.string("group", name)}
        f.reject_unknown()
        if groups is not None:
            if field["group"] not in groups:
                raise config_error(f.key_path("group"), 'group "%s" is not in the groups list' % field["group"])
        elif field["group"] != name:
            raise config_error(f.key_path("group"), 'group "%s" is not listed (the config has no groups list)' % field["group"])
        fields.append(field)
    return fields


def _interaction(top):
    if top.value("interaction") is None:
        return {"intra": False, "half_factor": False, "field_bias": False, "dice_scale": 1.0}
    i = _Object(top.value("interaction"), "interaction")
    interaction = {"intra": i.boolean("intra", False), "half_factor": i.boolean("half_factor", False),
                   "field_bias": i.boolean("field_bias", False), "dice_scale": i.number("dice_scale", 1.0)}
    i.reject_unknown()
    return interaction


def _tasks(top):
    task_items = top.list("tasks")
    if task_items is None:
        raise top.missing("tasks")
    tasks = []
    for index, item in enumerate(task_items):
        t = _Object(item, "tasks[%d]" % index)
        tasks.append({"name": t.string("name"), "tower": _dense(t.list("tower") or [], t.key_path("tower")),
                      "use_linear": t.boolean("use_linear", False), "logit_offset": t.number("logit_offset", 0.0)})
        t.reject_unknown()
    return tasks


def _dense(items, path):
    layers = []
    for index, item in enumerate(items):
        d = _Object(item, "%s[%d]" % (path, index))
        layers.append({"units": d.integer("units", 1, MAX_WIDTH), "activation": d.choice("activation", ACTIVATIONS, "relu"),
                       "batch_norm": d.boolean("batch_norm", False)})
        d.reject_unknown()
    return layers


def _fusion(top, count):
    if top.value("fusion") is None:
        return {"type": "weighted_sum", "weights": [1.0] * count}
    f = _Object(top.value("fusion"), "fusion")
    kind = f.choice("type", FUSIONS, "weighted_sum")
    fusion = {"type": kind}
    if kind == "lexicographic":
        fusion["bucket"] = f.number("bucket")
    else:
        fusion["weights"] = f.numbers("weights", count) or [1.0] * count
    if kind == "weighted_product":
        fusion["biases"] = f.numbers("biases", count) or [0.0] * count
        fusion["exponents"] = f.numbers("exponents", count) or [1.0] * count
    f.reject_unknown()
    return fusion


def _loss(value, count):
    o = _Object(value, "loss")
    loss = {"weighting": o.string("weighting"), "frozen": None}
    parameterization, convention = o.string("parameterization", ""), o.string("convention", "")
    loss["frozen"] = o.boolean("frozen", False)
    if parameterization:
        loss["parameterization"] = parameterization
    if convention:
        loss["convention"] = convention
    for key in ("values", "weights"):
        values = o.numbers(key, count)
        if values:
            loss[key] = values
    o.reject_unknown()
    return loss


def _reweight(value, _count):
    o = _Object(value, "reweight")
    reweight = {"scheme": o.string("scheme")}
    # Scheme parameters are scheme-specific: every other key must be a number.
    for key in o.unread():
        reweight[key] = o.number(key)
    return reweight


def _optimizer(value, _count):
    o = _Object(value, "optimizer")
    if o.value("type") is None:
        raise config_error("optimizer.type", "missing (required)")
    kind = o.choice("type", OPTIMIZERS, "adagrad")
    optimizer = {"type": kind}
    for key in OPTIMIZER_PARAMETERS[kind]:
        if o.value(key) is not None:
            optimizer[key] = o.number(key)
    o.reject_unknown(["type"] + OPTIMIZER_PARAMETERS[kind])
    return optimizer


def _validate(c, groups):
    def names(values, path, suffix=""):
        seen = set()
        for index, name in enumerate(values):
            if not is_valid_name(name, MAX_NAME_BYTES, dots=False):
                raise config_error("%s[%d]%s" % (path, index, suffix),
                                   'invalid name "%s": use 1 to %d letters, digits, \'_\' or \'-\'' % (name, MAX_NAME_BYTES))
            if name in seen:
                raise config_error("%s[%d]%s" % (path, index, suffix), 'duplicate name "%s"' % name)
            seen.add(name)
    if not c["fields"]:
        raise config_error("fields", "at least one field is required")
    names([f["name"] for f in c["fields"]], "fields", ".name")
    names(groups, "groups")
    if c["bn_eps"] < 0:
        raise config_error("bn_eps", "must be finite and not negative")
    if not c["tasks"]:
        raise config_error("tasks", "at least one task is required")
    names([t["name"] for t in c["tasks"]], "tasks", ".name")
    for index, task in enumerate(c["tasks"]):
        if task["use_linear"] and not c["linear"]:
            raise config_error("tasks[%d].use_linear" % index, 'the model has no first-order term ("linear": false)')
    fusion, count = c["fusion"], len(c["tasks"])
    if fusion["type"] == "lexicographic":
        if count < 2:
            raise config_error("fusion.type", "lexicographic fusion needs at least two tasks")
        if not fusion["bucket"] > 0:
            raise config_error("fusion.bucket", "must be a finite number > 0")
    if fusion["type"] == "weighted_product":
        for t in range(count):
            bias, weight = fusion["biases"][t], fusion["weights"][t]
            if bias < 0 or bias + weight < 0:
                raise config_error("fusion.biases[%d]" % t, "the base c + w·p can be negative (c = %s, w = %s)" % (bias, weight))
    loss = c.get("loss")
    if loss is not None:
        for key, allowed in (("weighting", LOSS_WEIGHTINGS), ("parameterization", LOSS_PARAMETERIZATIONS),
                             ("convention", LOSS_CONVENTIONS)):
            value = loss.get(key, "")
            if value not in allowed:
                raise config_error("loss." + key, 'unknown value "%s" (expected one of: %s)'
                                   % (value, ", ".join(a for a in allowed if a)))
    reweight = c.get("reweight")
    if reweight is not None:
        if not reweight["scheme"] or len(reweight["scheme"].encode()) > MAX_NAME_BYTES:
            raise config_error("reweight.scheme", "must be a non-empty string of at most %d bytes" % MAX_NAME_BYTES)
        for key in reweight:
            if key != "scheme" and not is_valid_name(key, MAX_NAME_BYTES, dots=False):
                raise config_error("reweight", 'invalid parameter name "%s"' % key)


# ---- the manifest's Architecture message ------------------------------------------------------

def _enum(names):
    return {name: index + 1 for index, name in enumerate(names)}, {index + 1: name for index, name in enumerate(names)}


_ENUMS = {
    "mapping": _enum(MAPPINGS), "combiner": _enum(COMBINERS),
    "activation": _enum(ACTIVATIONS), "bottom_input": _enum(BOTTOM_INPUTS),
    "layer_order": _enum(LAYER_ORDERS), "fusion": _enum(FUSIONS),
    "optimizer": _enum(OPTIMIZERS),
}


def to_proto(c, message):
    """Fills the manifest's `Architecture` ``message`` from a normalized config."""
    def dense(target, layers):
        for layer in layers:
            target.add(units=layer["units"], activation=_ENUMS["activation"][0][layer["activation"]],
                       batch_norm=layer["batch_norm"])
    groups = c["groups"] if "groups" in c else [f["name"] for f in c["fields"]]
    message.embedding_dim = c["embedding_dim"]
    message.groups.extend(groups)
    message.groups_listed = "groups" in c
    for f in c["fields"]:
        message.fields.add(name=f["name"], vocab_size=f["vocab_size"], mapping=_ENUMS["mapping"][0][f["mapping"]],
                           combiner=_ENUMS["combiner"][0][f["combiner"]], group=groups.index(f["group"]))
    i = c["interaction"]
    message.interaction.SetInParent()
    message.interaction.intra, message.interaction.half_factor = i["intra"], i["half_factor"]
    message.interaction.field_bias, message.interaction.dice_scale = i["field_bias"], i["dice_scale"]
    message.linear = c["linear"]
    message.bottom_input = _ENUMS["bottom_input"][0][c["bottom_input"]]
    message.layer_order = _ENUMS["layer_order"][0][c["layer_order"]]
    message.bn_eps = c["bn_eps"]
    dense(message.shared, c["shared"])
    for t in c["tasks"]:
        task = message.tasks.add(name=t["name"], use_linear=t["use_linear"], logit_offset=t["logit_offset"])
        dense(task.tower, t["tower"])
    fusion = c["fusion"]
    message.fusion.SetInParent()
    message.fusion.type = _ENUMS["fusion"][0][fusion["type"]]
    message.fusion.bucket = fusion.get("bucket", 0.0)
    for key in ("weights", "biases", "exponents"):
        getattr(message.fusion, key).extend(fusion.get(key, []))
    if "loss" in c:
        loss = c["loss"]
        message.loss.SetInParent()
        message.loss.weighting = loss["weighting"]
        message.loss.parameterization = loss.get("parameterization", "")
        message.loss.convention = loss.get("convention", "")
        message.loss.frozen = loss["frozen"]
        message.loss.values.extend(loss.get("values", []))
        message.loss.weights.extend(loss.get("weights", []))
    if "reweight" in c:
        message.reweight.SetInParent()
        message.reweight.scheme = c["reweight"]["scheme"]
        for key, value in c["reweight"].items():
            if key != "scheme":
                message.reweight.parameters.add(name=key, value=value)
    if "optimizer" in c:
        message.optimizer.SetInParent()
        message.optimizer.type = _ENUMS["optimizer"][0][c["optimizer"]["type"]]
        for key, value in c["optimizer"].items():
            if key != "type":
                message.optimizer.parameters.add(name=key, value=value)


def from_proto(a):
    """The normalized config of a manifest's `Architecture` message, every rule checked (a
    hostile manifest gets the errors a hostile config gets)."""
    enum = _enum_name

    def dense(layers, path):
        return [{"units": d.units, "activation": enum("activation", d.activation, "%s[%d].activation" % (path, i)),
                 "batch_norm": d.batch_norm} for i, d in enumerate(layers)]
    groups = list(a.groups)
    fields = []
    for index, f in enumerate(a.fields):
        if f.group >= len(groups):
            raise config_error("fields[%d].group" % index, "group index %d is not in the groups list" % f.group)
        fields.append({"name": f.name, "vocab_size": f.vocab_size, "mapping": enum("mapping", f.mapping, "fields[%d].mapping" % index),
                       "combiner": enum("combiner", f.combiner, "fields[%d].combiner" % index), "group": groups[f.group]})
    if not a.groups_listed and groups != [f["name"] for f in fields]:
        raise config_error("groups", "without a groups list every field must be its own group, in field order")
    if not a.HasField("interaction"):
        raise config_error("interaction", "missing from the manifest")
    if not a.HasField("fusion"):
        raise config_error("fusion", "missing from the manifest")
    c = {"embedding_dim": a.embedding_dim}
    if a.groups_listed:
        c["groups"] = groups
    i = a.interaction
    c.update({"fields": fields, "interaction": {"intra": i.intra, "half_factor": i.half_factor, "field_bias": i.field_bias,
                                                "dice_scale": i.dice_scale},
              "linear": a.linear, "bottom_input": enum("bottom_input", a.bottom_input, "bottom_input"),
              "layer_order": enum("layer_order", a.layer_order, "layer_order"), "bn_eps": a.bn_eps,
              "shared": dense(a.shared, "shared"),
              "tasks": [{"name": t.name, "tower": dense(t.tower, "tasks[%d].tower" % n), "use_linear": t.use_linear,
                         "logit_offset": t.logit_offset} for n, t in enumerate(a.tasks)]})
    c["fusion"] = _fusion_from_proto(a.fusion)
    if a.HasField("loss"):
        c["loss"] = _loss_from_proto(a.loss)
    if a.HasField("reweight"):
        c["reweight"] = _named({"scheme": a.reweight.scheme}, a.reweight.parameters, "reweight")
    if a.HasField("optimizer"):
        c["optimizer"] = _named({"type": enum("optimizer", a.optimizer.type, "optimizer.type")}, a.optimizer.parameters, "optimizer")
    normalized = normalize(c)
    _check_weighted_lists(c, normalized)
    return normalized


def _enum_name(kind, value, path):
    names = _ENUMS[kind][1]
    if value not in names:
        raise config_error(path, "unknown enum value %d" % value)
    return names[value]


def _fusion_from_proto(f):
    fusion = {"type": _enum_name("fusion", f.type, "fusion.type")}
    # Every list present is given to normalize(), which refuses those the type does not take.
    if f.bucket or fusion["type"] == "lexicographic":
        fusion["bucket"] = f.bucket
    for key in ("weights", "biases", "exponents"):
        if len(getattr(f, key)):
            fusion[key] = list(getattr(f, key))
    return fusion


def _loss_from_proto(l):
    loss = {"weighting": l.weighting, "frozen": l.frozen}
    for key in ("parameterization", "convention"):
        if getattr(l, key):
            loss[key] = getattr(l, key)
    for key in ("values", "weights"):
        if len(getattr(l, key)):
            loss[key] = list(getattr(l, key))
    return loss


def _named(section, parameters, path):
    for p in parameters:
        if p.name in section:
            raise config_error("%s.%s" % (path, p.name), "given twice")
        section[p.name] = p.value
    return section


def _check_weighted_lists(raw, normalized):
    # A manifest stores lists whole: one left empty is not "the default" but a broken manifest.
    fusion = raw["fusion"]
    for key in ("weights", "biases", "exponents"):
        if key in normalized["fusion"] and key not in fusion:
            raise config_error("fusion." + key, "expected %d values (one per task), found 0" % len(raw["tasks"]))


# ---- the tensors a config calls for -----------------------------------------------------------

class TensorSpec:
    """A tensor an architecture calls for: MODEL.md name, dtype name, shape and role."""

    __slots__ = ("name", "dtype", "shape", "role", "section")

    def __init__(self, name, dtype, shape, role, section):
        self.name, self.dtype, self.shape, self.role, self.section = name, dtype, tuple(shape), role, section

    def __repr__(self):
        return "TensorSpec(%r, %s, %s, %s)" % (self.name, self.dtype, list(self.shape), self.role)


def bottom_width(c):
    k, groups = c["embedding_dim"], len(c.get("groups") or c["fields"])
    return {"interaction": k, "interaction+groups": k * (1 + groups), "interaction+fields": k * (1 + len(c["fields"]))}[c["bottom_input"]]


def serving_specs(c):
    """Every tensor of the serving form, in file order (MODEL.md, "Tensor names and shapes")."""
    k = c["embedding_dim"]
    groups = len(c["groups"]) if "groups" in c else len(c["fields"])
    specs = []
    for f in c["fields"]:
        specs.append(TensorSpec("embedding.%s.weight" % f["name"], "float32", [f["vocab_size"], k], "parameter", "embeddings"))
        if f["mapping"] == "keyed":
            specs.append(TensorSpec("embedding.%s.keys" % f["name"], "int64", [f["vocab_size"]], "keys", "embeddings"))
    if c["linear"]:
        for f in c["fields"]:
            specs.append(TensorSpec("linear.%s.weight" % f["name"], "float32", [f["vocab_size"], 1], "parameter", "linear"))
        specs.append(TensorSpec("linear.bias", "float32", [1], "parameter", "linear"))
    specs.append(TensorSpec("interaction.pair_weight", "float32", [groups * (groups - 1) // 2], "parameter", "interaction"))
    if c["interaction"]["intra"]:
        specs.append(TensorSpec("interaction.intra_weight", "float32", [groups], "parameter", "interaction"))
    if c["interaction"]["field_bias"]:
        specs.append(TensorSpec("interaction.field_bias", "float32", [groups, k], "parameter", "interaction"))
    width = _dense_specs(c["shared"], "shared", bottom_width(c), specs)
    for t in c["tasks"]:
        out = _dense_specs(t["tower"], "tower.%s" % t["name"], width, specs)
        specs.append(TensorSpec("head.%s.weight" % t["name"], "float32", [1, out], "parameter", "dense"))
        specs.append(TensorSpec("head.%s.bias" % t["name"], "float32", [1], "parameter", "dense"))
    return specs


def _dense_specs(layers, prefix, width, specs):
    for index, layer in enumerate(layers):
        units, name = layer["units"], "%s.%d." % (prefix, index)
        specs.append(TensorSpec(name + "weight", "float32", [units, width], "parameter", "dense"))
        specs.append(TensorSpec(name + "bias", "float32", [units], "parameter", "dense"))
        if layer["batch_norm"]:
            for part, role in (("bn.weight", "parameter"), ("bn.bias", "parameter"),
                               ("bn.running_mean", "buffer"), ("bn.running_var", "buffer")):
                specs.append(TensorSpec(name + part, "float32", [units], role, "dense"))
        width = units
    return width


def training_specs(c, group):
    """The tensors of one training-state group (MODEL.md, "Training state")."""
    if group == "optimizer slots":
        if "optimizer" not in c:
            return []
        slots = OPTIMIZER_SLOTS[c["optimizer"]["type"]]
        return [TensorSpec("optimizer.%s.%s" % (p.name, slot), "float32", p.shape, "optimizer-slot", "training_state")
                for p in serving_specs(c) if p.role == "parameter" for slot in slots]
    if group == "optimizer step":
        return [TensorSpec("optimizer.step", "int64", [1], "optimizer-step", "training_state")]
    if group == "loss.log_var":
        return [TensorSpec("loss.log_var", "float32", [len(c["tasks"])], "loss-log-var", "training_state")]
    if group == "row counts":
        return [TensorSpec("stats.%s.count" % f["name"], "int64", [f["vocab_size"]], "row-count", "training_state")
                for f in c["fields"]]
    raise ValueError("unknown training-state group %r" % group)


def all_specs(c):
    """Serving tensors followed by every training-state group."""
    return serving_specs(c) + [s for g in TRAINING_GROUPS for s in training_specs(c, g)]
