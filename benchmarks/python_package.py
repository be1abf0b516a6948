"""Driven by python-package.sh: each case runs in its own process under /usr/bin/time, so its
peak RSS is its own; the median of 3 wall times and the largest peak RSS are printed."""
import os
import platform
import statistics
import subprocess
import sys
import time

cli, work = sys.argv[1:3]
model, checkpoint = os.path.join(work, "big.mtlm"), os.path.join(work, "big.safetensors")
py = sys.executable

READ = """
import sys, numpy as np, mtl_model
m = mtl_model.load(sys.argv[1])
total = sum(float(m[n].sum(dtype=np.float64)) for n in m)
"""
READ_PEER = """
import sys, numpy as np
from safetensors import safe_open
with safe_open(sys.argv[1], "np") as f:
    total = sum(float(f.get_tensor(n).sum(dtype=np.float64)) for n in f.keys())
"""
SAVE = """
import sys, mtl_model
m = mtl_model.load(sys.argv[1])
mtl_model.save(sys.argv[2], {n: m[n] for n in m}, m.config, fsync=False)
"""
SAVE_PEER = """
import sys
from safetensors.numpy import load_file, save_file
save_file(load_file(sys.argv[1]), sys.argv[2])
"""
CASES = [
    ("verify", "Swift CLI, 1 thread", [cli, "verify", model, "--threads", "1"]),
    ("verify", "Swift CLI, 2 threads", [cli, "verify", model]),
    ("verify", "python -m mtl_model verify", [py, "-m", "mtl_model", "verify", model]),
    ("read every tensor + sum", "mtl_model (zero-copy views, CRCs on access)", [py, "-c", READ, model]),
    ("read every tensor + sum", "safetensors safe_open.get_tensor", [py, "-c", READ_PEER, checkpoint]),
    ("save (no fsync)", "mtl_model.save of a loaded model", [py, "-c", SAVE, model, os.path.join(work, "saved.mtlm")]),
    ("save (no fsync)", "safetensors load_file + save_file", [py, "-c", SAVE_PEER, checkpoint, os.path.join(work, "saved.safetensors")]),
]


def measure(command):
    times, peaks = [], []
    for _ in range(3):
        start = time.perf_counter()
        result = subprocess.run(["/usr/bin/time", "-f", "%M"] + command, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit("failed: %s\n%s" % (" ".join(command[:3]), result.stderr))
        peaks.append(int(result.stderr.strip().splitlines()[-1]) // 1024)
    return statistics.median(times), max(peaks)


size = os.path.getsize(model) / 2**30
print("machine: %s, %d cores; python %s; model %.2f GiB (%s)" % (platform.machine(), os.cpu_count(), platform.python_version(),
                                                           size, os.path.basename(model)))
print("%-24s %-46s %9s %10s %9s" % ("what", "who", "seconds", "GiB/s", "peak MiB"))
for what, who, command in CASES:
    seconds, peak = measure(command)
    print("%-24s %-46s %9.2f %10.2f %9d" % (what, who, seconds, size / seconds, peak))
