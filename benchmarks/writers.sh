#!/usr/bin/env bash
# The writing commands against `dd conv=fsync` of the same bytes (#17): export .safetensors,
# import .safetensors and apply of a small delta, on the training model of big-inputs.sh
# (2.3 GB). Each run is followed by dd copying the output it wrote to a new file with fsync
# (mtl-model fsyncs too: durable, then renamed); medians of 5, GB/s of output written.
# Usage: benchmarks/writers.sh [WORK_DIR]   (needs ~14 GB free; shares ab.sh's inputs)
source "$(dirname "$0")/common.sh"
new=$bin here="$root/benchmarks"
source "$here/big-inputs.sh"
python3 - "$bin" "$work" <<'PY'
import os, statistics, subprocess, sys, time
binary, work = sys.argv[1:3]
w = lambda f: os.path.join(work, f)
def timed(args):
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start
cases = [("export .safetensors", ["export", w("big.mtlm"), w("out.safetensors")], w("out.safetensors")),
         ("import .safetensors", ["import", w("big.safetensors"), w("out.mtlm")], w("out.mtlm")),
         ("apply a small delta", ["apply", w("big.mtlm"), w("big.delta.mtlmd"), w("out.mtlm")], w("out.mtlm"))]
print("| command | output GB | mtl-model s (GB/s) | dd conv=fsync s (GB/s) | ratio | ≤ 1.2 |")
print("|---|---|---|---|---|---|")
for name, args, out in cases:
    ours, dd = [], []
    for _ in range(5):
        for f in (out, w("dd.out")):
            if os.path.exists(f): os.remove(f)
        ours.append(timed([binary] + args))
        dd.append(timed(["dd", "if=" + out, "of=" + w("dd.out"), "bs=1M", "conv=fsync"]))
    size = os.path.getsize(out) / 1e9
    a, b = statistics.median(ours), statistics.median(dd)
    print("| %s | %.2f | %.2f (%.2f) | %.2f (%.2f) | %.2f | %s |" % (name, size, a, size / a, b, size / b, a / b, "yes" if a / b <= 1.2 else "NO"))
    for f in (out, w("dd.out")):
        if os.path.exists(f): os.remove(f)
PY
