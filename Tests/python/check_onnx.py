"""Checks that an ONNX export computes what `mtl-model predict` computes, within MODEL.md's
tolerance, by running docs/examples/onnxruntime_predict.py (the documented example) on DATA.

usage: check_onnx.py MTL_MODEL_EXECUTABLE MODEL.mtlm DATA.txt WORK_DIRECTORY
"""
import math
import os
import subprocess
import sys

import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "docs", "examples", "onnxruntime_predict.py")


def table(text):
    lines = text.strip().split("\n")
    return lines[0].split("\t"), [[float(x) for x in line.split("\t")] for line in lines[1:]]


def run(arguments):
    result = subprocess.run(arguments, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(arguments)} failed: {result.stderr}")
    return result.stdout


def main(executable, model, data, work):
    exported = os.path.join(work, os.path.basename(model) + ".onnx")
    run([executable, "export", model, exported])
    onnx.checker.check_model(exported)
    fusion = onnx.load(exported, load_external_data=False).metadata_props
    config = {p.key: p.value for p in fusion}["mtl_model.config"]
    lexicographic = '"lexicographic"' in config
    worst = {"logit": 0.0, "p": 0.0, "fused": 0.0}
    for flag, kind in [([], "p"), (["--logits"], "logit")]:
        header, expected = table(run([executable, "predict", model, data] + flag))
        header2, actual = table(run([sys.executable, EXAMPLE, exported, data, "--batch-size", "97"] + flag))
        assert header == header2, f"headers differ: {header} {header2}"
        assert len(expected) == len(actual), f"{len(expected)} != {len(actual)} samples"
        tasks = len(header) - 1
        for line, (want, got) in enumerate(zip(expected, actual), 1):
            for t in range(tasks):
                if kind == "p":
                    error = abs(want[t] - got[t])
                    assert error <= 1e-5, f"sample {line} task {header[t]}: p {got[t]} != {want[t]}"
                else:
                    error = abs(want[t] - got[t]) / max(1.0, abs(want[t]))
                    assert error <= 1e-4, f"sample {line} task {header[t]}: logit {got[t]} != {want[t]}"
                worst[kind] = max(worst[kind], error)
            error = abs(want[-1] - got[-1]) / max(1.0, abs(want[-1]))
            # A lexicographic score may jump by one bucket for p_0 at a bucket edge (MODEL.md).
            if not (lexicographic and abs(abs(want[-1] - got[-1]) - 1) <= 1e-4):
                assert error <= 1e-4, f"sample {line}: fused {got[-1]} != {want[-1]}"
                worst["fused"] = max(worst["fused"], error)
    print(f"onnx ok: {os.path.basename(model)} {len(expected)} samples, worst |Δp| {worst['p']:.2e}, "
          f"relative Δlogit {worst['logit']:.2e}, Δfused {worst['fused']:.2e}")


if __name__ == "__main__":
    main(*sys.argv[1:])
