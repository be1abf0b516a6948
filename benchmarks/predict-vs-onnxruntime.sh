#!/usr/bin/env bash
# mtl-model predict against onnxruntime running the same model exported to ONNX (#6): the
# predict benchmark's model (benchmarks/make-p40.py) and its 100k samples, at 1 and 2
# threads, medians of 5 runs.
#
# - mtl-model: the release CLI end to end (parse the text, compute, write the TSV).
# - onnxruntime: InferenceSession.run alone on the same samples already parsed into the
#   padded arrays of docs/ONNX.md, batches of 4096 (parsing and writing excluded: the
#   runtime's best case).
# Usage: benchmarks/predict-vs-onnxruntime.sh [WORK_DIR]   (needs ~500 MB free)
source "$(dirname "$0")/common.sh"
python3 "$root/benchmarks/make-p40.py" "$work"
[ -f "$work/p40.mtlm" ] || "$bin" synth "$work/p40.json" "$work/p40.mtlm" --seed 3 >/dev/null
"$bin" export "$work/p40.mtlm" "$work/p40.onnx" 2>/dev/null
python3 - "$bin" "$work" "$root" <<'PY'
import statistics, subprocess, sys, time
import numpy as np, onnxruntime as ort
binary, work, root = sys.argv[1:4]
sys.path.insert(0, root + "/docs/examples")
from onnxruntime_predict import feeds, read_bags
import json
fields = [f["name"] for f in json.load(open(work + "/p40.json"))["fields"]]
samples = list(read_bags(work + "/p40.txt", fields))
batches = [feeds(samples[i:i + 4096], fields) for i in range(0, len(samples), 4096)]
print("ratio = mtl-model samples/s / onnxruntime samples/s (> 1: mtl-model faster)")
for threads in (1, 2):
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([binary, "predict", work + "/p40.mtlm", work + "/p40.txt", "--threads", str(threads)], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    ours = len(samples) / statistics.median(times)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(work + "/p40.onnx", options, providers=["CPUExecutionProvider"])
    session.run(["fused"], batches[0])  # warm up
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for batch in batches:
            session.run(["logits", "probabilities", "fused"], batch)
        times.append(time.perf_counter() - start)
    theirs = len(samples) / statistics.median(times)
    print("%d thread(s): mtl-model predict %.0f samples/s, onnxruntime %s %.0f samples/s, ratio %.2f"
          % (threads, ours, ort.__version__, theirs, ours / theirs))
PY
