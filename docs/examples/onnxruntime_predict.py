"""Scores a dataset in MODEL.md's text format with a model exported by `mtl-model export
MODEL.mtlm MODEL.onnx`, through onnxruntime: the inputs a serving engine passes (docs/ONNX.md).

usage: python3 onnxruntime_predict.py MODEL.onnx DATA.txt [--logits] [--batch-size N] [--threads N]

Prints what `mtl-model predict` prints: a header (task names, then fused) and one line per
sample with each task's probability (or logit, with --logits) and the fused score.
"""
import argparse
import json
import sys

import numpy as np
import onnxruntime as ort


def read_bags(path, fields):
    """Yields each sample as {field: [(id, value), ...]} (labels, if any, are skipped)."""
    with open(path) as lines:
        for line in lines:
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            tokens = text.split()
            if ":" not in tokens[0]:
                tokens = tokens[1:]  # the labels
            bags = {field: [] for field in fields}
            for token in tokens:
                parts = token.split(":")
                value = float(parts[2]) if len(parts) == 3 else 1.0
                bags[parts[0]].append((int(parts[1]), value))
            yield bags


def feeds(samples, fields):
    """One padded [batch, L] pair of arrays per field: ids (uint64 bits as int64) and values,
    padding with value 0 (a pair of value 0 adds nothing to any combiner)."""
    inputs = {}
    for field in fields:
        width = max(1, max(len(sample[field]) for sample in samples))
        ids = np.zeros((len(samples), width), dtype=np.uint64)
        values = np.zeros((len(samples), width), dtype=np.float32)
        for row, sample in enumerate(samples):
            for column, (id_, value) in enumerate(sample[field]):
                ids[row, column] = id_
                values[row, column] = value
        inputs[f"{field}_ids"] = ids.view(np.int64)
        inputs[f"{field}_values"] = values
    return inputs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("--logits", action="store_true")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    config = json.loads(session.get_modelmeta().custom_metadata_map["mtl_model.config"])
    fields = [field["name"] for field in config["fields"]]
    tasks = [task["name"] for task in config["tasks"]]
    output = "logits" if args.logits else "probabilities"

    out = sys.stdout
    out.write("\t".join(tasks + ["fused"]) + "\n")
    batch = []
    for sample in read_bags(args.data, fields):
        batch.append(sample)
        if len(batch) == args.batch_size:
            write(out, session.run([output, "fused"], feeds(batch, fields)))
            batch = []
    if batch:
        write(out, session.run([output, "fused"], feeds(batch, fields)))


def write(out, results):
    scores, fused = results
    for row, value in zip(scores, fused):
        out.write("\t".join(repr(float(x)) for x in row) + "\t" + repr(float(value)) + "\n")


if __name__ == "__main__":
    main()
