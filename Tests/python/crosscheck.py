#!/usr/bin/env python3
"""Cross-checks mtl-model against nfwfm_reference.py, an independent numpy implementation of
MODEL.md: for models that together use every flag and every config default, it writes a
PyTorch-style checkpoint with the `safetensors` package, imports it with `mtl-model import`,
scores a dataset full of edge cases with `mtl-model predict` and `eval`, and compares with
MODEL.md's tolerance. It also checks that `export` gives back every tensor bit for bit.

Usage: crosscheck.py MTL_MODEL_BINARY [WORK_DIR]. Exit 0 when everything agrees.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nfwfm_reference as ref  # noqa: E402

BIG = 1 << 63

CONFIGS = {
    # MODEL.md's example, smaller: groups, keyed, mean, intra, linear, BN, lexicographic.
    "model_md": {
        "embedding_dim": 8, "groups": ["user", "item", "context"],
        "fields": [
            {"name": "user_id", "vocab_size": 50, "mapping": "modulo", "combiner": "sum", "group": "user"},
            {"name": "item_id", "vocab_size": 40, "mapping": "keyed", "combiner": "sum", "group": "item"},
            {"name": "tags", "vocab_size": 30, "mapping": "direct", "combiner": "mean", "group": "item"},
            {"name": "hour", "vocab_size": 24, "mapping": "direct", "combiner": "sum", "group": "context"}],
        "interaction": {"intra": True, "half_factor": False, "field_bias": False, "dice_scale": 1.0},
        "linear": True, "bottom_input": "interaction+groups", "layer_order": "linear_bn_act", "bn_eps": 1e-5,
        "shared": [{"units": 32, "activation": "relu", "batch_norm": True}, {"units": 16, "activation": "relu"}],
        "tasks": [{"name": "ctr", "tower": [{"units": 8, "activation": "relu"}], "use_linear": True, "logit_offset": 0.0},
                  {"name": "follow", "tower": [{"units": 8, "activation": "relu"}], "use_linear": False, "logit_offset": 0.0}],
        "fusion": {"type": "lexicographic", "bucket": 0.01},
        "loss": {"weighting": "uncertainty", "parameterization": "log_var", "convention": "exp(-s)*L+s", "frozen": True, "values": [0.0, 0.0]},
        "reweight": {"scheme": "follow_upweights_click_positives", "alpha": 5.0},
        "optimizer": {"type": "adagrad", "lr": 0.04, "initial_accumulator": 0.001},
    },
    # Every default: no groups (one per field), modulo, sum, no interaction flags, no linear,
    # bottom input "interaction", weighted_sum with weights 1, relu, no BN.
    "defaults": {
        "embedding_dim": 4,
        "fields": [{"name": "a", "vocab_size": 7}, {"name": "b", "vocab_size": 5}, {"name": "c", "vocab_size": 3}],
        "shared": [{"units": 6}],
        "tasks": [{"name": "ctr"}, {"name": "follow", "tower": [{"units": 3}]}],
    },
    # The other side of every switch: half factor, field bias, dice scale, bottom input fields,
    # linear_act_bn, bn_eps, every activation, sqrtn, keyed ids ≥ 2^63, no shared layers,
    # three tasks, weighted_product, logit offsets, use_linear on two tasks.
    "switches": {
        "embedding_dim": 5, "groups": ["g1", "g2"],
        "fields": [
            {"name": "k1", "vocab_size": 20, "mapping": "keyed", "combiner": "sqrtn", "group": "g1"},
            {"name": "d1", "vocab_size": 9, "mapping": "direct", "combiner": "mean", "group": "g1"},
            {"name": "m1", "vocab_size": 11, "mapping": "modulo", "combiner": "sqrtn", "group": "g2"}],
        "interaction": {"intra": True, "half_factor": True, "field_bias": True, "dice_scale": 0.6},
        "linear": True, "bottom_input": "interaction+fields", "layer_order": "linear_act_bn", "bn_eps": 0.001,
        "shared": [],
        "tasks": [
            {"name": "ctr", "tower": [{"units": 6, "activation": "sigmoid", "batch_norm": True},
                                      {"units": 4, "activation": "tanh", "batch_norm": True}], "use_linear": True, "logit_offset": -0.7},
            {"name": "follow", "tower": [{"units": 3, "activation": "identity"}], "logit_offset": 0.4},
            {"name": "share", "use_linear": True}],
        "fusion": {"type": "weighted_product", "weights": [1.0, 2.0, 0.5], "biases": [0.0, 0.1, 1.0], "exponents": [1.0, 0.5, 2.0]},
    },
    # weighted_sum with explicit weights, interaction+groups with a single group (P = 0 pairs).
    "single_group": {
        "embedding_dim": 3, "groups": ["all"],
        "fields": [{"name": "x", "vocab_size": 6, "group": "all"}, {"name": "y", "vocab_size": 4, "mapping": "direct", "group": "all"}],
        "interaction": {"intra": True},
        "bottom_input": "interaction+groups",
        "shared": [{"units": 4, "activation": "tanh", "batch_norm": True}],
        "tasks": [{"name": "ctr"}, {"name": "follow"}],
        "fusion": {"type": "weighted_sum", "weights": [0.3, 5.0]},
    },
}


def weights(config, rng, training=False):
    c = ref.normalize_config(config)
    tensors = {}
    for name, (shape, dtype) in ref.tensor_shapes(config).items():
        if dtype == "i64":
            # Distinct keys, half of them ≥ 2^63 (stored as int64 bit patterns).
            keys = rng.choice(1 << 62, size=shape[0], replace=False).astype(np.uint64)
            keys[::2] |= np.uint64(BIG)
            tensors[name] = keys.view(np.int64)
        elif name.endswith("running_var"):
            tensors[name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif name.startswith("embedding."):
            tensors[name] = rng.normal(0, 0.4, shape).astype(np.float32)
        elif name.endswith(".weight") and len(shape) == 2 and not name.startswith("linear."):
            tensors[name] = rng.normal(0, 1 / math.sqrt(shape[1]), shape).astype(np.float32)
        else:
            tensors[name] = rng.normal(0, 0.3, shape).astype(np.float32)
    if training:
        t = len(c["tasks"])
        tensors["loss.log_var"] = rng.normal(0, 0.1, (t,)).astype(np.float32)
        tensors["optimizer.step"] = np.array([12345], dtype=np.int64)
        for name in list(tensors):
            if tensors[name].dtype == np.float32 and not name.endswith(("running_mean", "running_var")) and not name.startswith(("loss.", "optimizer.")):
                tensors["optimizer.%s.sum" % name] = rng.uniform(0, 1, tensors[name].shape).astype(np.float32)
        for f in c["fields"]:
            tensors["stats.%s.count" % f["name"]] = rng.integers(0, 100, (f["vocab_size"],)).astype(np.int64)
    return tensors


def dataset(config, tensors, rng, count=300):
    """Random samples plus every edge case of MODEL.md's text format."""
    c = ref.normalize_config(config)
    t = len(c["tasks"])
    lines = ["# comment line", "   # indented comment", "", "\t "]

    def ident(f):
        n = f["vocab_size"]
        if f["mapping"] == "keyed":
            keys = tensors["embedding.%s.keys" % f["name"]].view(np.uint64)
            return int(keys[rng.integers(n)]) if rng.random() < 0.8 else int(rng.integers(0, 1 << 63)) | (BIG if rng.random() < 0.5 else 0)
        if rng.random() < 0.1:
            return int(rng.integers(0, 1 << 62)) | BIG  # ≥ 2^63: OOV for direct, wraps for modulo
        return int(rng.integers(0, n + 3))  # some ids ≥ vocab: OOV for direct

    for i in range(count):
        labels = ",".join(rng.choice(["0", "1", "-"], p=[0.6, 0.3, 0.1]) for _ in range(t))
        tokens = []
        for f in c["fields"]:
            bag = rng.integers(0, 4)  # empty bags too
            for _ in range(bag):
                if rng.random() < 0.5:
                    tokens.append("%s:%d" % (f["name"], ident(f)))
                else:
                    tokens.append("%s:%d:%.6g" % (f["name"], ident(f), rng.normal(0.5, 1.0)))
        rng.shuffle(tokens)
        separator = "\t" if i % 7 == 0 else " "
        line = separator.join([labels] + tokens)
        if i % 11 == 0:
            line += "\r"  # CRLF
        lines.append(line)
    f0 = c["fields"][0]["name"]
    mean_fields = [f["name"] for f in c["fields"] if f["combiner"] == "mean"]
    lines.append(",".join(["1"] * t))  # every bag empty
    lines.append("%s:1 %s:2:0.25" % (f0, f0))  # no labels: the first token has a colon
    if mean_fields:
        m = mean_fields[0]
        lines.append(",".join(["0"] * t) + " %s:1:1 %s:2:-1" % (m, m))  # mean bag summing to zero
    lines.append(",".join(["-"] * t) + " %s:%d:1e-3 %s:%d" % (f0, (1 << 64) - 1, f0, BIG))
    return "\n".join(lines) + "\n"


def run(binary, *args, stdin=None):
    result = subprocess.run([binary] + list(args), capture_output=True, text=True, input=stdin)
    if result.returncode != 0:
        raise SystemExit("FAILED: %s %s\n%s" % (binary, " ".join(args), result.stderr))
    return result.stdout


def auc(scores, labels):
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    p, n = labels.sum(), (~labels).sum()
    return (ranks[labels].sum() - p * (p + 1) / 2) / (p * n) if p and n else None


def check_model(binary, work, name, config, seed, problems):
    rng = np.random.default_rng(seed)
    training = name == "model_md"
    tensors = weights(config, rng, training=training)
    checkpoint = os.path.join(work, name + ".safetensors")
    save_file(tensors, checkpoint, metadata={"mtl_model.config": json.dumps(config), "trainer": "crosscheck"})
    model = os.path.join(work, name + ".mtlm")
    run(binary, "import", checkpoint, model)
    run(binary, "verify", model)

    # export(import(x)) reproduces every tensor bit for bit, and an equivalent config.
    exported = os.path.join(work, name + ".exported.safetensors")
    run(binary, "export", model, exported)
    back = load_file(exported)
    if set(back) != set(tensors):
        problems.append("%s: exported tensors differ: %s" % (name, set(back) ^ set(tensors)))
    for key, value in tensors.items():
        if key in back and (back[key].dtype != value.dtype or back[key].shape != value.shape or back[key].tobytes() != value.tobytes()):
            problems.append("%s: exported %s is not bit-identical" % (name, key))
    with open(exported, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    metadata = header["__metadata__"]
    if ref.normalize_config(json.loads(metadata["mtl_model.config"])) != ref.normalize_config(config):
        problems.append("%s: exported config is not equivalent" % name)
    if metadata.get("trainer") != "crosscheck":
        problems.append("%s: metadata was not carried through" % name)

    text = dataset(config, tensors, rng)
    data = os.path.join(work, name + ".txt")
    with open(data, "w", newline="") as f:
        f.write(text)
    samples = ref.parse_dataset(text, config)
    expected = [ref.forward(config, tensors, bags) for _, bags, _ in samples]
    c = ref.normalize_config(config)
    tasks = [t["name"] for t in c["tasks"]]

    probabilities = [line.split("\t") for line in run(binary, "predict", model, data).strip().split("\n")]
    logits = [line.split("\t") for line in run(binary, "predict", model, "-", "--logits", stdin=text).strip().split("\n")]
    json_lines = [json.loads(line) for line in run(binary, "predict", model, data, "--json", "--threads", "2", "--batch-size", "7").strip().split("\n")]
    if probabilities[0] != tasks + ["fused"] or logits[0] != tasks + ["fused"]:
        problems.append("%s: bad header %s" % (name, probabilities[0]))
    if not (len(probabilities) - 1 == len(logits) - 1 == len(json_lines) == len(samples)):
        problems.append("%s: %d samples expected, got %d / %d / %d" % (name, len(samples), len(probabilities) - 1, len(logits) - 1, len(json_lines)))
        return
    worst = 0.0
    for i, ((want_logits, want_p, want_fused), (_, _, line)) in enumerate(zip(expected, samples)):
        got_p = [float(v) for v in probabilities[i + 1]]
        got_logits = [float(v) for v in logits[i + 1]]
        if json_lines[i]["line"] != line:
            problems.append("%s: JSON line %d has line %s, expected %d" % (name, i, json_lines[i]["line"], line))
        for t, task in enumerate(tasks):
            dl = abs(got_logits[t] - want_logits[t]) / max(1.0, abs(want_logits[t]))
            dp = abs(got_p[t] - want_p[t])
            dj = abs(json_lines[i][task] - want_p[t])
            worst = max(worst, dl)
            if dl > 1e-4 or dp > 1e-5 or dj > 1e-5:
                problems.append("%s line %d task %s: logit %r vs %r, p %r vs %r" % (name, line, task, got_logits[t], want_logits[t], got_p[t], want_p[t]))
        near_edge = c["fusion"]["type"] == "lexicographic" and abs(want_p[0] / c["fusion"]["bucket"] - round(want_p[0] / c["fusion"]["bucket"])) * c["fusion"]["bucket"] < 1e-5
        if not near_edge and abs(float(probabilities[i + 1][-1]) - want_fused) > 1e-4 * max(1.0, abs(want_fused)):
            problems.append("%s line %d: fused %s vs %r" % (name, line, probabilities[i + 1][-1], want_fused))

    # eval: per task samples, positives, AUC, logloss, calibration, fused AUC.
    report = json.loads(run(binary, "eval", model, data, "--json"))
    for t, task in enumerate(tasks):
        known = [(s[0][t], e[0][t], e[2]) for s, e in zip(samples, expected) if s[0][t] is not None]
        labels = [k[0] for k in known]
        x = np.array([k[1] for k in known])
        got = report["tasks"][t]
        want = {"samples": len(known), "positives": sum(labels), "auc": auc(x, labels),
                "fusedAUC": auc([k[2] for k in known], labels),
                "logloss": float(np.mean(np.logaddexp(0, np.where(labels, -x, x)))) if known else None}
        for key, value in want.items():
            have = got.get(key)
            if (value is None) != (have is None) or (value is not None and abs(have - value) > 1e-4 * max(1, abs(value)) + (1e-3 if "AUC" in key or key == "auc" else 0)):
                problems.append("%s eval %s %s: %r vs %r" % (name, task, key, have, value))
    print("%-13s %4d samples, %d tasks: worst relative logit difference %.2e" % (name, len(samples), len(tasks), worst))


def main():
    binary = os.path.abspath(sys.argv[1])
    work = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="mtlm-crosscheck-")
    os.makedirs(work, exist_ok=True)
    problems = []
    for seed, (name, config) in enumerate(CONFIGS.items()):
        check_model(binary, work, name, config, seed, problems)
    for problem in problems[:50]:
        print(problem)
    print("%d passed, %d failed" % (len(CONFIGS) - len({p.split()[0].rstrip(":") for p in problems}), len({p.split()[0].rstrip(":") for p in problems})))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
