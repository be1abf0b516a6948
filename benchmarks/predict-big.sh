#!/usr/bin/env bash
# predict on a model whose table is larger than what a batch touches (#17): MODEL.md's example
# config with a 16M-row user_id table (1.1 GB file), samples of uniformly random ids.
#
# - 10 samples: wall time and max RSS of `mtl-model predict` (the latency of a small request
#   against a big model: what is read and checked must grow with the ids, not the table);
# - 100k samples, 1 thread: `mtl-model predict` end to end against onnxruntime on the exported
#   model, timed as session creation (it maps the external data) + `run` on pre-built arrays.
# Medians of 5, page cache warm (the file is read once before). Usage:
#   benchmarks/predict-big.sh [WORK_DIR]      (needs ~2.5 GB free, onnxruntime in .venv)
source "$(dirname "$0")/common.sh"
python=${PYTHON:-$root/.venv/bin/python3}
if [ ! -f "$work/big-serving.mtlm" ]; then
  "$python" - "$root/fixtures/configs/model-md-example.json" "$work/big-serving.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["fields"][0]["vocab_size"] = 16_000_000
json.dump(config, open(sys.argv[2], "w"))
PY
  "$bin" synth "$work/big-serving.json" "$work/big-serving.mtlm" --seed 1 >/dev/null
fi
[ -f "$work/big-serving.onnx" ] || "$bin" export "$work/big-serving.mtlm" "$work/big-serving.onnx" >/dev/null 2>&1
"$python" - "$bin" "$work" "$root" <<'PY'
import os, random, resource, statistics, subprocess, sys, time
binary, work, root = sys.argv[1:4]
sys.path.insert(0, root + "/docs/examples")
random.seed(7)
fields = ["user_id", "item_id", "tags", "hour"]
def write_samples(path, count):
    with open(path, "w") as f:
        for _ in range(count):
            f.write("%d,%d user_id:%d item_id:%d tags:%d tags:%d hour:%d\n" % (
                random.random() < 0.1, random.random() < 0.01, random.randrange(16_000_000),
                random.randrange(1 << 40), random.randrange(2000), random.randrange(2000), random.randrange(24)))
small, large = work + "/big-10.txt", work + "/big-100k.txt"
write_samples(small, 10)
write_samples(large, 100_000)
model = work + "/big-serving.mtlm"
subprocess.run(["cat", model], stdout=subprocess.DEVNULL, check=True)  # page cache warm
def timed(args):
    start = time.perf_counter()
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, args
    return time.perf_counter() - start, usage.ru_maxrss / 1024
def median_of(args, runs=5):
    results = [timed(args) for _ in range(runs)]
    return statistics.median(t for t, _ in results), max(m for _, m in results)
seconds, peak = median_of([binary, "predict", model, small, "--threads", "1"])
print("predict 10 samples, 1 thread       %.3f s  %4.0f MiB max RSS   target ≤ 0.050 s, ≤ 64 MiB  %s"
      % (seconds, peak, "yes" if seconds <= 0.05 and peak <= 64 else "NO"))
seconds, peak = median_of([binary, "predict", model, large, "--threads", "1"])
import numpy as np, onnxruntime as ort
from onnxruntime_predict import feeds, read_bags
samples = list(read_bags(large, fields))
batches = [feeds(samples[i:i + 4096], fields) for i in range(0, len(samples), 4096)]
times = []
for _ in range(5):
    start = time.perf_counter()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(work + "/big-serving.onnx", options, providers=["CPUExecutionProvider"])
    for batch in batches:
        session.run(["logits", "probabilities", "fused"], batch)
    times.append(time.perf_counter() - start)
    del session
theirs = statistics.median(times)
print("predict 100k samples, 1 thread     %.3f s  %4.0f MiB max RSS   onnxruntime %s %.3f s   ratio %.2f  target ≥ 1.5  %s"
      % (seconds, peak, ort.__version__, theirs, theirs / seconds, "yes" if theirs / seconds >= 1.5 else "NO"))
PY
