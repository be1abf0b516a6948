#!/usr/bin/env bash
# diff of two ~1.1 GB models (#5: ≥ 1 GB/s with bounded memory): K = 16, an 8 Mi-row modulo
# table and an 8 Mi-row keyed table. Two pairs: seeds 1 and 2 (every row differs, no key in
# common) and a model against its int8 round trip (same keys, every row slightly changed).
# Medians of 3 runs at 1 and 2 threads: seconds, GB/s of both inputs, max RSS.
# Usage: benchmarks/diff-cli.sh [WORK_DIR]   (needs ~3.5 GB free)
source "$(dirname "$0")/common.sh"
cat > "$work/1gib.json" <<'JSON'
{"embedding_dim": 16, "groups": ["user", "item"],
 "fields": [{"name": "user_id", "vocab_size": 8388608, "group": "user"},
            {"name": "item_id", "vocab_size": 8388608, "mapping": "keyed", "group": "item"}],
 "shared": [{"units": 64}], "tasks": [{"name": "ctr"}, {"name": "follow"}]}
JSON
[ -f "$work/1gib-a.mtlm" ] || "$bin" synth "$work/1gib.json" "$work/1gib-a.mtlm" --seed 1 >/dev/null
[ -f "$work/1gib-b.mtlm" ] || "$bin" synth "$work/1gib.json" "$work/1gib-b.mtlm" --seed 2 >/dev/null
if [ ! -f "$work/1gib-c.mtlm" ]; then
  "$bin" quantize "$work/1gib-a.mtlm" "$work/1gib-q.mtlm" --embeddings int8 >/dev/null
  "$bin" dequantize "$work/1gib-q.mtlm" "$work/1gib-c.mtlm" >/dev/null
  rm "$work/1gib-q.mtlm"
fi
python3 - "$bin" "$work" <<'PY'
import os, statistics, subprocess, sys
binary, work = sys.argv[1:3]
a = work + "/1gib-a.mtlm"
for pair in ("b", "c"):
    b = work + "/1gib-%s.mtlm" % pair
    size = os.path.getsize(a) + os.path.getsize(b)
    for threads in (1, 2):
        runs = []
        for _ in range(3):
            result = subprocess.run(["/usr/bin/time", "-f", "%e %M", binary, "diff", a, b, "--rows", "--threads", str(threads)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            seconds, kilobytes = result.stderr.strip().split("\n")[-1].split()
            runs.append((float(seconds), int(kilobytes)))
        seconds = statistics.median(r[0] for r in runs)
        print("diff a %s, %d thread(s): median %.2f s = %.2f GB/s, max RSS %d MiB (runs: %s)"
              % (pair, threads, seconds, size / seconds / 1e9, max(r[1] for r in runs) // 1024,
                 ", ".join("%.2f s" % r[0] for r in runs)))
PY
