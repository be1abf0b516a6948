#!/usr/bin/env bash
# predict on a model with a large keyed table (#17): MODEL.md's example config with 8M keys in
# item_id (64 MB of keys, 512 MB of rows), samples whose item ids are the model's keys (one in
# ten out of vocabulary).
#
# - 10 samples (a small request: the keys looked up for the batch by one pass over them);
# - 100k samples, 1 and 2 threads (a table past the whole index's 128 MiB budget: one pass a
#   batch of 4096, on the parsing thread).
# Wall time (median of 5) and max RSS, page cache warm; with OLD_BIN set, that binary is run
# alternately with this one on the same inputs. Usage:
#   [OLD_BIN=path/to/mtl-model] benchmarks/predict-keyed.sh [WORK_DIR]   (~1 GB free; .venv)
source "$(dirname "$0")/common.sh"
python=${PYTHON:-$root/.venv/bin/python3}
if [ ! -f "$work/keyed.mtlm" ]; then
  "$python" - "$root/fixtures/configs/model-md-example.json" "$work/keyed.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
for field in config["fields"]:
    if field["name"] == "item_id": field["vocab_size"] = 8 << 20
json.dump(config, open(sys.argv[2], "w"))
PY
  "$bin" synth "$work/keyed.json" "$work/keyed.mtlm" --seed 1 >/dev/null
fi
# The samples are written by one process and timed by another: a child's max RSS counts the
# process it was forked from, here the 64 MB of keys the writer reads.
PYTHONPATH="$root/python" "$python" - "$work" <<'PY'
import sys
import numpy as np
import mtl_model
work = sys.argv[1]
keys = np.asarray(mtl_model.load(work + "/keyed.mtlm")["embedding.item_id.keys"]).view(np.uint64)
rng = np.random.default_rng(7)
def write_samples(path, count):
    items = keys[rng.integers(0, len(keys), count)]
    items[::10] = rng.integers(0, 1 << 62, (count + 9) // 10).astype(np.uint64)
    with open(path, "w") as f:
        for i in range(count):
            f.write("%d,0 user_id:%d item_id:%d tags:%d hour:%d\n" % (
                i % 2, rng.integers(100_000), items[i], rng.integers(2000), rng.integers(24)))
write_samples(work + "/keyed-10.txt", 10)
write_samples(work + "/keyed-100k.txt", 100_000)
PY
"$python" - "$bin" "${OLD_BIN:-}" "$work" "$root" <<'PY'
import statistics, subprocess, sys
binary, old, work, root = sys.argv[1:5]
sys.path.insert(0, root + "/benchmarks")
from peers import timed_process as timed  # (wall seconds, max RSS in MiB)
model = work + "/keyed.mtlm"
small, large = work + "/keyed-10.txt", work + "/keyed-100k.txt"
subprocess.run(["cat", model], stdout=subprocess.DEVNULL, check=True)  # page cache warm
binaries = [("this build", binary)] + ([("OLD_BIN", old)] if old else [])
for name, data, threads in [("10 samples", small, 1), ("100k samples", large, 1), ("100k samples", large, 2)]:
    results = {label: [] for label, _ in binaries}
    for _ in range(5):
        for label, path in binaries:
            results[label].append(timed([path, "predict", model, data, "--threads", str(threads)]))
    for label, _ in binaries:
        print("predict %-12s %d thread%s  %-10s  %.3f s  %5.0f MiB max RSS" % (
            name, threads, "" if threads == 1 else "s", label,
            statistics.median(t for t, _ in results[label]), max(m for _, m in results[label])))
PY
