#!/usr/bin/env bash
# Sharded models (#14): a ≥ 4 GiB training checkpoint (MODEL.md's example architecture with a
# 20 Mi-row modulo user_id table and a 10 Mi-row keyed item_id table, adagrad slots and row
# counts) as one file and in 16 shards. Each command runs on the sharded model and on the same
# model as one file, side by side: wall seconds (median of RUNS runs, default 3) and the largest
# max RSS of the runs. Target: max RSS ≤ 256 MiB for every command whatever N and size.
#
#   shard 1 → 16, reshard 16 → 7, consolidate 16 → 1 (against rewriting the one file, 1 → 1),
#   verify, quantize --embeddings int8, diff (16 against 7 shards; the one file against its
#   consolidation).
# Usage: benchmarks/sharded.sh [WORK_DIR]   (needs ~25 GB free; RUNS=1 for a quick look)
source "$(dirname "$0")/common.sh"
[ -f "$work/one.mtlm" ] || "$bin" synth benchmarks/big-sharded.json "$work/one.mtlm" --seed 1 --training >/dev/null
python3 - "$bin" "$work" "${RUNS:-3}" <<'PY'
import glob, os, statistics, subprocess, sys
binary, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
one = work + "/one.mtlm"

def files(root):
    """A model's files: its root and its shards."""
    return [root] + sorted(glob.glob(root[:-len(".mtlm")] + "-*-of-*.mtlm"))

def size(root):
    return sum(os.path.getsize(p) for p in files(root))

def warm(paths):
    """Reads the inputs once, untimed: every command is timed from the page cache (the files of
    the run do not all fit in it, and the one left out would be read from disk)."""
    for path in paths:
        with open(path, "rb") as f:
            while f.read(64 << 20):
                pass

def measure(args, inputs):
    """Median wall seconds and the largest max RSS (MiB) of `runs` runs of the CLI."""
    times, peaks = [], []
    for _ in range(runs):
        warm([p for root in inputs for p in files(root)])
        result = subprocess.run(["/usr/bin/time", "-f", "%e %M", binary] + args,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if result.returncode not in (0, 1):  # diff exits 1 when the models differ
            sys.exit("failed: %s\n%s" % (" ".join(args), result.stderr))
        seconds, kilobytes = result.stderr.strip().split("\n")[-1].split()
        times.append(float(seconds))
        peaks.append(int(kilobytes) // 1024)
    return statistics.median(times), max(peaks)

def row(name, sharded, single, volume):
    (s_time, s_rss), (o_time, o_rss) = sharded, single
    ok = "holds" if max(s_rss, o_rss) <= 256 else "MISSES"
    print("%-34s %7.2f s %6.2f GB/s %5d MiB | %7.2f s %6.2f GB/s %5d MiB | RSS ≤ 256 MiB %s"
          % (name, s_time, volume / s_time / 1e9, s_rss, o_time, volume / o_time / 1e9, o_rss, ok))

def out(name):
    return work + "/" + name + ".mtlm"

volume = size(one)
print("model: %.2f GiB; %d run(s) each, median wall time, largest max RSS" % (volume / 2**30, runs))
print("%-34s %-30s | %-30s" % ("command", "16 shards", "one file"))
rewrite = measure(["shard", one, out("copy"), "--shards", "1"], [one])  # the one-file peer of the three
row("shard 1 → 16 (rewrite 1 → 1)",
    measure(["shard", one, out("s16"), "--shards", "16", "--threads", "2"], [one]), rewrite, volume)
row("reshard 16 → 7 (rewrite 1 → 1)",
    measure(["shard", out("s16"), out("s7"), "--shards", "7", "--threads", "2"], [out("s16")]), rewrite, volume)
row("consolidate 16 → 1 (rewrite 1 → 1)",
    measure(["shard", out("s16"), out("c1"), "--shards", "1"], [out("s16")]), rewrite, volume)
row("verify", measure(["verify", out("s16"), "--threads", "2"], [out("s16")]),
    measure(["verify", one, "--threads", "2"], [one]), volume)
row("quantize --embeddings int8",
    measure(["quantize", out("s16"), out("q16"), "--embeddings", "int8", "--threads", "2"], [out("s16")]),
    measure(["quantize", one, out("q1"), "--embeddings", "int8", "--threads", "2"], [one]), volume)
row("diff (16 vs 7 shards / 1 vs 1)",
    measure(["diff", out("s16"), out("s7"), "--threads", "2"], [out("s16"), out("s7")]),
    measure(["diff", one, out("c1"), "--threads", "2"], [one, out("c1")]), 2 * volume)
PY
