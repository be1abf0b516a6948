"""An independent numpy implementation of ../shared/MODEL.md, written from the spec alone:
config defaults, the dataset text format and the forward pass, in float64.

Used by crosscheck.py to check `mtl-model predict` (it shares no code with the Swift side).
"""
import itertools
import json
import math

import numpy as np


def normalize_config(config):
    """The config with MODEL.md's defaults filled in."""
    c = json.loads(json.dumps(config))
    for f in c["fields"]:
        f.setdefault("mapping", "modulo")
        f.setdefault("combiner", "sum")
        f.setdefault("group", f["name"])
    if "groups" not in c:
        c["groups"] = [f["name"] for f in c["fields"]]
    inter = c.setdefault("interaction", {})
    for key in ("intra", "half_factor", "field_bias"):
        inter.setdefault(key, False)
    inter.setdefault("dice_scale", 1.0)
    c.setdefault("linear", False)
    c.setdefault("bottom_input", "interaction")
    c.setdefault("layer_order", "linear_bn_act")
    c.setdefault("bn_eps", 1e-5)
    for layer in c.setdefault("shared", []):
        layer.setdefault("activation", "relu")
        layer.setdefault("batch_norm", False)
    for task in c["tasks"]:
        task.setdefault("tower", [])
        for layer in task["tower"]:
            layer.setdefault("activation", "relu")
            layer.setdefault("batch_norm", False)
        task.setdefault("use_linear", False)
        task.setdefault("logit_offset", 0.0)
    t = len(c["tasks"])
    fusion = c.setdefault("fusion", {"type": "weighted_sum"})
    fusion.setdefault("weights", [1.0] * t)
    fusion.setdefault("biases", [0.0] * t)
    fusion.setdefault("exponents", [1.0] * t)
    return c


def tensor_shapes(config):
    """{name: (shape, dtype)} of a serving checkpoint, from MODEL.md's table."""
    c = normalize_config(config)
    k, m = c["embedding_dim"], len(c["groups"])
    shapes = {}
    for f in c["fields"]:
        shapes["embedding.%s.weight" % f["name"]] = ((f["vocab_size"], k), "f32")
        if f["mapping"] == "keyed":
            shapes["embedding.%s.keys" % f["name"]] = ((f["vocab_size"],), "i64")
        if c["linear"]:
            shapes["linear.%s.weight" % f["name"]] = ((f["vocab_size"], 1), "f32")
    if c["linear"]:
        shapes["linear.bias"] = ((1,), "f32")
    shapes["interaction.pair_weight"] = ((m * (m - 1) // 2,), "f32")
    if c["interaction"]["intra"]:
        shapes["interaction.intra_weight"] = ((m,), "f32")
    if c["interaction"]["field_bias"]:
        shapes["interaction.field_bias"] = ((m, k), "f32")
    width = {"interaction": k, "interaction+groups": k * (1 + m),
             "interaction+fields": k * (1 + len(c["fields"]))}[c["bottom_input"]]

    def dense(prefix, layers, width):
        for j, layer in enumerate(layers):
            shapes["%s.%d.weight" % (prefix, j)] = ((layer["units"], width), "f32")
            shapes["%s.%d.bias" % (prefix, j)] = ((layer["units"],), "f32")
            if layer["batch_norm"]:
                for part in ("weight", "bias", "running_mean", "running_var"):
                    shapes["%s.%d.bn.%s" % (prefix, j, part)] = ((layer["units"],), "f32")
            width = layer["units"]
        return width

    width = dense("shared", c["shared"], width)
    for task in c["tasks"]:
        w = dense("tower.%s" % task["name"], task["tower"], width)
        shapes["head.%s.weight" % task["name"]] = ((1, w), "f32")
        shapes["head.%s.bias" % task["name"]] = ((1,), "f32")
    return shapes


def parse_dataset(text, config):
    """[(labels or None per task, {field: [(id, value)]}, line_number)] per MODEL.md."""
    c = normalize_config(config)
    names = [f["name"] for f in c["fields"]]
    t = len(c["tasks"])
    samples = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        tokens = line.replace("\t", " ").split()
        if not tokens or tokens[0].startswith("#"):
            continue
        labels = [None] * t
        if ":" not in tokens[0]:
            parts = tokens[0].split(",")
            assert len(parts) == t, "line %d: label count" % number
            labels = [None if p == "-" else int(p) for p in parts]
            tokens = tokens[1:]
        bags = {name: [] for name in names}
        for token in tokens:
            pieces = token.split(":")
            assert pieces[0] in bags and len(pieces) in (2, 3), "line %d: %r" % (number, token)
            value = float(pieces[2]) if len(pieces) == 3 else 1.0
            bags[pieces[0]].append((int(pieces[1]), value))
        samples.append((labels, bags, number))
    return samples


def activation(name, x):
    return {"relu": lambda v: np.maximum(v, 0), "identity": lambda v: v,
            "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh}[name](x)


def forward(config, tensors, bags):
    """(logits per task, probabilities per task, fused) of one sample."""
    c = normalize_config(config)
    T = {name: np.asarray(value).astype(np.float64) if value.dtype != np.int64 else value for name, value in tensors.items()}
    k = c["embedding_dim"]
    groups = c["groups"]
    u = {}
    y_lin = float(T["linear.bias"][0]) if c["linear"] else 0.0
    for f in c["fields"]:
        n = f["vocab_size"]
        name = f["name"]
        if f["mapping"] == "keyed":
            keys = tensors["embedding.%s.keys" % name].view(np.uint64)
            position = {int(key): row for row, key in enumerate(keys)}
        pairs = []
        for ident, value in bags[name]:
            if f["mapping"] == "direct":
                row = ident if ident < n else None
            elif f["mapping"] == "modulo":
                row = ident % n
            else:
                row = position.get(ident)
            if row is not None:
                pairs.append((row, value))
        values = [v for _, v in pairs]
        z = {"sum": 1.0, "mean": sum(values), "sqrtn": math.sqrt(sum(v * v for v in values))}[f["combiner"]]
        if not pairs or z == 0:
            u[name] = np.zeros(k)
            continue
        table = T["embedding.%s.weight" % name]
        u[name] = sum(v * table[row] for row, v in pairs) / z
        if c["linear"]:
            w = T["linear.%s.weight" % name]
            y_lin += sum(v * w[row, 0] for row, v in pairs) / z
    members = {g: [f["name"] for f in c["fields"] if f["group"] == g] for g in groups}
    e, bi = [], []
    half = 0.5 if c["interaction"]["half_factor"] else 1.0
    for m, g in enumerate(groups):
        s = sum((u[name] for name in members[g]), np.zeros(k))
        sq = sum((u[name] ** 2 for name in members[g]), np.zeros(k))
        bi.append(half * (s * s - sq))
        if c["interaction"]["field_bias"]:
            s = s + T["interaction.field_bias"][m]
        e.append(s)
    h = np.zeros(k)
    for p, (a, b) in enumerate(itertools.combinations(range(len(groups)), 2)):
        h += T["interaction.pair_weight"][p] * e[a] * e[b]
    if c["interaction"]["intra"]:
        h += c["interaction"]["dice_scale"] * sum(T["interaction.intra_weight"][m] * bi[m] for m in range(len(groups)))
    z = {"interaction": [h], "interaction+groups": [h] + e,
         "interaction+fields": [h] + [u[f["name"]] for f in c["fields"]]}[c["bottom_input"]]
    x = np.concatenate(z)

    def dense(prefix, layers, x):
        for j, layer in enumerate(layers):
            a = T["%s.%d.weight" % (prefix, j)] @ x + T["%s.%d.bias" % (prefix, j)]

            def bn(v):
                if not layer["batch_norm"]:
                    return v
                p = "%s.%d.bn." % (prefix, j)
                return (v - T[p + "running_mean"]) / np.sqrt(T[p + "running_var"] + c["bn_eps"]) * T[p + "weight"] + T[p + "bias"]

            if c["layer_order"] == "linear_bn_act":
                x = activation(layer["activation"], bn(a))
            else:
                x = bn(activation(layer["activation"], a))
        return x

    shared = dense("shared", c["shared"], x)
    logits, probabilities = [], []
    for task in c["tasks"]:
        y = dense("tower.%s" % task["name"], task["tower"], shared)
        logit = float(T["head.%s.weight" % task["name"]][0] @ y + T["head.%s.bias" % task["name"]][0])
        if task["use_linear"]:
            logit += y_lin
        logit += task["logit_offset"]
        logits.append(logit)
        probabilities.append(1 / (1 + math.exp(-logit)))
    fusion = c["fusion"]
    if fusion["type"] == "lexicographic":
        fused = math.floor(probabilities[0] / fusion["bucket"]) + probabilities[1]
    elif fusion["type"] == "weighted_sum":
        fused = sum(w * p for w, p in zip(fusion["weights"], probabilities))
    else:
        fused = 1.0
        for w, b, a, p in zip(fusion["weights"], fusion["biases"], fusion["exponents"], probabilities):
            fused *= (b + w * p) ** a
    return logits, probabilities, fused
