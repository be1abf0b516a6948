#!/usr/bin/env bash
# int8 row-wise quantization throughput, mtl-model against numpy in the same run (#4).
#   1. kernel only, in memory: numpy's vectorized version of the same scheme over 256 MiB of
#      float32 rows of 16, against `swift package benchmark --filter quantize` (library kernel);
#   2. end to end on a ~2 GiB model (K = 16): `mtl-model quantize` (read the mapped file, check
#      its checksums, quantize, write + checksum + fsync the new file) against numpy reading the
#      same tables through np.memmap and writing the same row layout to a file (fsync'd).
# Usage: benchmarks/quantize-vs-numpy.sh [WORK_DIR]   (needs ~3 GB free)
source "$(dirname "$0")/common.sh"
if [ ! -f "$work/2gib.mtlm" ]; then
  cat > "$work/2gib.json" <<'JSON'
{"embedding_dim": 16, "groups": ["user", "item", "context"],
 "fields": [{"name": "user_id", "vocab_size": 16777216, "group": "user"},
            {"name": "item_id", "vocab_size": 8388608, "mapping": "keyed", "group": "item"},
            {"name": "tags", "vocab_size": 8388608, "mapping": "direct", "combiner": "mean", "group": "item"},
            {"name": "hour", "vocab_size": 24, "mapping": "direct", "group": "context"}],
 "interaction": {"intra": true}, "bottom_input": "interaction+groups",
 "shared": [{"units": 512}, {"units": 256}, {"units": 128}, {"units": 64}],
 "tasks": [{"name": "ctr", "tower": [{"units": 64}]}, {"name": "follow", "tower": [{"units": 64}]}],
 "fusion": {"type": "lexicographic", "bucket": 0.01}}
JSON
  "$bin" synth "$work/2gib.json" "$work/2gib.mtlm" --seed 1 >/dev/null
fi
"$bin" inspect "$work/2gib.mtlm" --json --tensors > "$work/2gib.tensors.json"
printf 'numpy %s\n' "$(python3 -c 'import numpy; print(numpy.__version__)')"
python3 - "$bin" "$work" <<'PY'
import json, os, statistics, subprocess, sys, time
import numpy as np
binary, work = sys.argv[1], sys.argv[2]

def quantize(x, out=None):
    """The int8 row-wise scheme of mtl-model (FORMAT.md): q = trunc((x − min)/scale + ½)."""
    low, high = x.min(axis=1), x.max(axis=1)
    scale = ((high.astype(np.float64) - low) / 255).astype(np.float32)
    inverse = np.where(scale > 0, 1 / np.where(scale > 0, scale, 1), 0).astype(np.float32)
    q = np.minimum(((x - low[:, None]) * inverse[:, None] + np.float32(0.5)).astype(np.int32), 255).astype(np.uint8)
    rows = np.empty((x.shape[0], x.shape[1] + 8), dtype=np.uint8)
    rows[:, :x.shape[1]] = q
    rows[:, x.shape[1]:x.shape[1] + 4] = scale.view(np.uint8).reshape(-1, 4)
    rows[:, x.shape[1] + 4:] = low.view(np.uint8).reshape(-1, 4)
    if out is not None:
        rows.tofile(out)
    return rows

# 1. Kernel in memory: 256 MiB of float32 rows of 16.
rng = np.random.default_rng(0)
x = (rng.integers(-1000, 1001, size=((256 << 20) // 64, 16)) / 20000).astype(np.float32)
times = []
for _ in range(5):
    start = time.perf_counter()
    quantize(x)
    times.append(time.perf_counter() - start)
print("numpy kernel, 256 MiB in memory: median %.3f s = %.2f GB/s" % (statistics.median(times), x.nbytes / statistics.median(times) / 1e9))

# 2. End to end over the embedding tables of the 2 GiB model.
tensors = [t for t in json.load(open(work + "/2gib.tensors.json"))["tensors"] if t["name"].startswith("embedding.") and t["name"].endswith(".weight")]
total = sum(t["byteCount"] for t in tensors)
numpy_times, tool_times = [], []
for _ in range(3):
    start = time.perf_counter()
    with open(work + "/numpy-int8.bin", "wb") as out:
        for t in tensors:
            table = np.memmap(work + "/2gib.mtlm", dtype=np.float32, mode="r", offset=t["offset"], shape=tuple(t["shape"]))
            for begin in range(0, table.shape[0], 1 << 20):  # windows of 1 Mi rows: bounded memory
                quantize(np.asarray(table[begin:begin + (1 << 20)]), out)
        out.flush()
        os.fsync(out.fileno())
    numpy_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    subprocess.run([binary, "quantize", work + "/2gib.mtlm", work + "/tool-int8.mtlm", "--embeddings", "int8", "--dense", "fp32"], check=True, stdout=subprocess.DEVNULL)
    tool_times.append(time.perf_counter() - start)
n, t = statistics.median(numpy_times), statistics.median(tool_times)
print("end to end, %.2f GB of float32 tables: numpy %.2f s = %.2f GB/s; mtl-model quantize %.2f s = %.2f GB/s (%.2fx numpy)" % (total / 1e9, n, total / n / 1e9, t, total / t / 1e9, n / t))
os.remove(work + "/numpy-int8.bin")
PY
