#!/usr/bin/env bash
# Predict throughput of the release CLI (#3's target: ≥ 50k samples/s per core) on the
# model of the target: 40 fields (4 of 1M rows, one keyed), K = 16, 3 groups, bottom input
# interaction+groups, shared [512, 256, 128, 64], towers [64]; 100k samples, ids uniform
# (the worst case for caches). Reports the median of 5 runs at 1 and 2 threads, parsing,
# model load and output included.
# Usage: benchmarks/predict-cli.sh [WORK_DIR]   (needs ~400 MB free)
source "$(dirname "$0")/common.sh"
python3 - "$work" <<'PY'
import json, os, random, sys
work = sys.argv[1]
random.seed(1)
fields = [{"name": "f%d" % i, "vocab_size": 1000000 if i < 4 else 10000, "mapping": "keyed" if i == 1 else "modulo",
           "group": ["user", "item", "context"][i % 3]} for i in range(40)]
config = {"embedding_dim": 16, "groups": ["user", "item", "context"], "fields": fields, "interaction": {"intra": True},
          "linear": True, "bottom_input": "interaction+groups",
          "shared": [{"units": 512, "batch_norm": True}, {"units": 256}, {"units": 128}, {"units": 64}],
          "tasks": [{"name": "ctr", "tower": [{"units": 64}], "use_linear": True}, {"name": "follow", "tower": [{"units": 64}]}],
          "fusion": {"type": "lexicographic", "bucket": 0.01}}
json.dump(config, open(os.path.join(work, "p40.json"), "w"))
if not os.path.exists(os.path.join(work, "p40.txt")):
    with open(os.path.join(work, "p40.txt"), "w") as f:
        for _ in range(100000):
            tokens = ["%d,%d" % (random.random() < 0.1, random.random() < 0.01)]
            for i in range(40):
                for _ in range(2 if i % 4 == 0 else 1):
                    tokens.append("f%d:%d" % (i, random.randrange(2000000)))
            f.write(" ".join(tokens) + "\n")
PY
[ -f "$work/p40.mtlm" ] || "$bin" synth "$work/p40.json" "$work/p40.mtlm" --seed 3 >/dev/null
for threads in 1 2; do
  python3 - "$bin" "$work" "$threads" <<'PY'
import statistics, subprocess, sys, time
binary, work, threads = sys.argv[1], sys.argv[2], sys.argv[3]
times = []
for _ in range(5):
    start = time.perf_counter()
    subprocess.run([binary, "predict", work + "/p40.mtlm", work + "/p40.txt", "--threads", threads], check=True, stdout=subprocess.DEVNULL)
    times.append(time.perf_counter() - start)
median = statistics.median(times)
print("predict, %s thread(s): median %.2f s for 100000 samples = %.0f samples/s (min %.2f s)" % (threads, median, 100000 / median, min(times)))
PY
done
