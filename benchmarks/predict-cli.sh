#!/usr/bin/env bash
# Predict throughput of the release CLI (#3's target: ≥ 50k samples/s per core) on the
# model of the target: 40 fields (4 of 1M rows, one keyed), K = 16, 3 groups, bottom input
# interaction+groups, shared [512, 256, 128, 64], towers [64]; 100k samples, ids uniform
# (the worst case for caches). Reports the median of 5 runs at 1 and 2 threads, parsing,
# model load and output included.
# Usage: benchmarks/predict-cli.sh [WORK_DIR]   (needs ~400 MB free)
source "$(dirname "$0")/common.sh"
python3 "$(dirname "$0")/make-p40.py" "$work"
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
