#!/usr/bin/env bash
# Two builds of the CLI side by side in one run, on the same inputs: the p40 predict model and
# 100k samples (benchmarks/make-p40.py) at 1 and 2 threads, its int4 quantization (4M rows of
# 16 in its tables, 274 MiB) at 1 and 2 threads, and verify, quantize, convert
# --to serving, diff, export, inspect --stats, delta, apply and import of the training model of MODEL.md's example
# config with a 16M-row (1 GiB) user table, 2.3 GB on disk (big-inputs.sh), its split into 8
# shards at one thread and its int8 copy dequantized. Medians of 3 (5 for predict; 5 for export,
# apply, import: the disk is noisy) of wall and CPU seconds (user + system: a thread spinning on
# a lock shows there), and peak RSS. Used to
# check that a change keeps every command's speed and memory (a redesign, a refactoring).
# Usage: [AB_ONLY=SUBSTRING] benchmarks/ab.sh OLD_BINARY NEW_BINARY [WORK_DIR]   (needs ~18 GB free)
set -euo pipefail
old=$1 new=$2 work=${3:-$(mktemp -d)}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
printf 'machine: %s, %s cores, %s\n' "$(uname -m)" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
source "$here/big-inputs.sh"
python3 - "$old" "$new" "$work" <<'PY'
import os, shutil, statistics, subprocess, sys, time
old, new, work = sys.argv[1:4]
def run(binary, args, repeat):
    times, cpu, peaks = [], [], []
    for _ in range(repeat):
        for f in ("out.mtlm", "out.safetensors"):
            if os.path.exists(os.path.join(work, f)): os.remove(os.path.join(work, f))
        shutil.rmtree(os.path.join(work, "out-shards"), ignore_errors=True)
        os.makedirs(os.path.join(work, "out-shards"))
        start = time.perf_counter()
        p = subprocess.Popen([binary] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)  # this child's own CPU time and peak RSS
        times.append(time.perf_counter() - start)
        if os.waitstatus_to_exitcode(status) not in (0, 1): sys.exit("%s %s failed" % (binary, args))
        cpu.append(usage.ru_utime + usage.ru_stime)
        peaks.append(usage.ru_maxrss / 1024)
    return statistics.median(times), statistics.median(cpu), max(peaks)
w = lambda f: os.path.join(work, f)
cases = [("predict p40, 1 thread", ["predict", w("p40.mtlm"), w("p40.txt"), "--threads", "1"], 5),
         ("predict p40, 2 threads", ["predict", w("p40.mtlm"), w("p40.txt"), "--threads", "2"], 5),
         ("verify 2.3 GB", ["verify", w("big.mtlm")], 3),
         ("quantize 2.3 GB (int8)", ["quantize", w("big.mtlm"), w("out.mtlm")], 3),
         ("quantize 2.3 GB --embeddings fp16, 1 thread", ["quantize", w("big.mtlm"), w("out.mtlm"), "--embeddings", "fp16", "--threads", "1"], 5),
         ("quantize 2.3 GB --embeddings bf16, 1 thread", ["quantize", w("big.mtlm"), w("out.mtlm"), "--embeddings", "bf16", "--threads", "1"], 5),
         ("quantize p40 --embeddings int4, 1 thread", ["quantize", w("p40.mtlm"), w("out.mtlm"), "--embeddings", "int4", "--threads", "1"], 3),
         ("quantize p40 --embeddings int4, 2 threads", ["quantize", w("p40.mtlm"), w("out.mtlm"), "--embeddings", "int4", "--threads", "2"], 3),
         ("convert --to serving 2.3 GB", ["convert", w("big.mtlm"), w("out.mtlm"), "--to", "serving"], 3),
         ("diff two 2.3 GB", ["diff", w("big.mtlm"), w("big2.mtlm")], 3),
         ("export .safetensors 2.3 GB", ["export", w("big.mtlm"), w("out.safetensors")], 5),
         ("inspect --stats 2.3 GB", ["inspect", w("big.mtlm"), "--stats"], 3),
         ("delta of two 2.3 GB (1% of a table changed)", ["delta", w("big.mtlm"), w("big-edit.mtlm"), w("out.mtlm")], 3),
         ("apply that delta", ["apply", w("big.mtlm"), w("big.delta.mtlmd"), w("out.mtlm")], 5),
         ("import .safetensors 2.3 GB", ["import", w("big.safetensors"), w("out.mtlm")], 5),
         ("shard 2.3 GB into 8, --threads 1", ["shard", w("big.mtlm"), w("out-shards/m.mtlm"), "--shards", "8", "--threads", "1"], 5),
         ("dequantize 2.3 GB int8 → float32", ["dequantize", w("big-int8.mtlm"), w("out.mtlm")], 5)]
print("| command | old s | new s | new / old | old CPU s | new CPU s | old peak MiB | new peak MiB |")
print("|---|---|---|---|---|---|---|---|")
only = os.environ.get("AB_ONLY")  # a substring of the rows to run, e.g. AB_ONLY=predict
for name, args, repeat in cases:
    if only and only not in name: continue
    # Alternate the two builds so that drift of the machine hits both alike.
    (to, _, mo), (tn, _, mn) = run(old, args, 1), run(new, args, 1)
    (to, co, _), (tn, cn, _) = run(old, args, repeat), run(new, args, repeat)
    print("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f |" % (name, to, tn, tn / to, co, cn, mo, mn))
PY
