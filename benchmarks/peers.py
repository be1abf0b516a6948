"""mtl-model against its peers on the same data, in one run (issue #7), as a table of ratios.

Run through benchmarks/peers.sh, which builds the release CLI and installs the Python peers.
For each model size (K = 16, three large fields, written by `mtl-model synth`):

- read: open and read every byte of every tensor. mtl-model: open + `ModelVerifier` (every
  chunk's CRC-32, the NaN/Inf scan, keys distinct) on 2 threads, in process; safetensors:
  `safe_open` + `get_tensor` of every tensor; numpy: `np.load(mmap_mode="r")` of one .npy per
  tensor + a sum over every element; the page-cache limit: `cat` of the .mtlm to /dev/null.
  Page cache warm for all.
- save: the same tensors, held in memory, written to a new file (each run's previous output
  removed first, untimed, for every writer alike). mtl-model: `ModelWriter` (checksums, atomic
  rename), fsync'd (its default) and not; safetensors: `save_file`; numpy: `np.save` of each
  (neither syncs). Replacing a file instead is not the same work for all: `np.save` truncates
  the old file first, reusing its page-cache pages (and losing it if the save fails), where
  an atomic writer keeps it whole until the rename and needs fresh pages for the new one —
  on this VM, 2.8–6.3 s against 0.6–0.9 s for 2 GiB. Peak memory: `import` of the checkpoint against the
  Python process of `save_file`.
- inspect: metadata read, flat across sizes.
- verify, quantize (int8 tables), diff (against a model of another seed): GB/s at 1 and 2
  threads.
- peak memory (max RSS) of synth, import, quantize, convert, diff, verify.

Peers are timed inside Python around the operation only (interpreter start and imports
excluded); mtl-model is timed as a process, start-up included. Every figure is the median of
`--runs` runs. Ratios are mtl-model / peer (for time: < 1 means mtl-model is faster).

usage: peers.py MTL_MODEL PEER_TIMINGS WORK_DIR [--sizes 4mib,256mib,2gib] [--runs N]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SIZES = {"4mib": 1 << 16, "256mib": 1 << 22, "2gib": 1 << 25}  # total rows of the large fields


def config(rows):
    return {"embedding_dim": 16, "groups": ["user", "item", "context"],
            "fields": [{"name": "user_id", "vocab_size": rows // 2, "group": "user"},
                       {"name": "item_id", "vocab_size": rows // 4, "mapping": "keyed", "group": "item"},
                       {"name": "tags", "vocab_size": rows // 4, "mapping": "direct", "combiner": "mean", "group": "item"},
                       {"name": "hour", "vocab_size": 24, "mapping": "direct", "group": "context"}],
            "interaction": {"intra": True}, "bottom_input": "interaction+groups",
            "shared": [{"units": 512}, {"units": 256}, {"units": 128}, {"units": 64}],
            "tasks": [{"name": "ctr", "tower": [{"units": 64}]}, {"name": "follow", "tower": [{"units": 64}]}],
            "fusion": {"type": "lexicographic", "bucket": 0.01}}


def timed_process(arguments):
    """(wall seconds, max RSS in MiB) of one run of a command (wait4's resource usage)."""
    start = time.perf_counter()
    process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        sys.exit(f"{' '.join(arguments)} failed: {process.stderr.read().decode()}")
    process.stderr.close()
    return elapsed, usage.ru_maxrss / 1024


def timed_python(code, *arguments):
    """(seconds of the timed part, max RSS in MiB) of a Python snippet run in its own process;
    the snippet sets `elapsed`."""
    script = ("import resource, sys, time\n" + code +
              "\nprint(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n")
    result = subprocess.run([sys.executable, "-c", script] + list(arguments), capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"python peer failed: {result.stderr}")
    seconds, mebibytes = result.stdout.strip().split("\n")[-1].split()
    return float(seconds), float(mebibytes)


def median_of(runs, measure):
    return interleaved(runs, {"": measure})[""]


def interleaved(runs, measures):
    """(median seconds, max MiB) of each of `measures` (name → a function returning seconds and
    MiB), run round by round in a rotating order: this VM's cost for a page depends on what ran
    just before (on a fresh VM, the first writer into memory the host has not backed yet pays
    for it), so no peer runs first, or after the same one, every round."""
    names, results = list(measures), {name: [] for name in measures}
    for r in range(runs):
        for name in names[r % len(names):] + names[:r % len(names)]:
            results[name].append(measures[name]())
    return {name: (statistics.median(r[0] for r in rs), max(r[1] for r in rs)) for name, rs in results.items()}


SAFETENSORS_READ = """
from safetensors import safe_open
start = time.perf_counter()
with safe_open(sys.argv[1], "np") as f:
    for name in f.keys():
        f.get_tensor(name)
elapsed = time.perf_counter() - start
"""

NUMPY_READ = """
import numpy as np, os
directory = sys.argv[1]
start = time.perf_counter()
for name in sorted(os.listdir(directory)):
    array = np.load(os.path.join(directory, name), mmap_mode="r")
    array.sum()
elapsed = time.perf_counter() - start
"""

SAFETENSORS_SAVE = """
import os
from safetensors.numpy import load_file, save_file
tensors = {name: array.copy() for name, array in load_file(sys.argv[1]).items()}
if os.path.exists(sys.argv[2]): os.remove(sys.argv[2])
start = time.perf_counter()
save_file(tensors, sys.argv[2])
elapsed = time.perf_counter() - start
"""

NUMPY_SAVE = """
import numpy as np, os, shutil
from safetensors.numpy import load_file
tensors = {name: array.copy() for name, array in load_file(sys.argv[1]).items()}
shutil.rmtree(sys.argv[2], ignore_errors=True)
os.makedirs(sys.argv[2])
start = time.perf_counter()
for name, array in tensors.items():
    np.save(os.path.join(sys.argv[2], name + ".npy"), array)
elapsed = time.perf_counter() - start
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("timings")
    parser.add_argument("work")
    parser.add_argument("--sizes", default="4mib,256mib,2gib")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    binary, work, runs = args.binary, args.work, args.runs

    def in_process(*arguments):
        result = subprocess.run([args.timings] + [str(a) for a in arguments], capture_output=True, text=True, check=True)
        return json.loads(result.stdout)["seconds"]
    rows_out = []  # (metric, size, mtl-model, peer name, peer, ratio, target, holds)
    memory = []    # (command, size, MiB)

    def row(metric, size, ours, peer_name, theirs, target, holds, unit="s"):
        ratio = ours / theirs if theirs else float("nan")
        rows_out.append((metric, size, f"{ours:.3f} {unit}", peer_name, f"{theirs:.3f} {unit}" if theirs else "-",
                         f"{ratio:.2f}" if theirs else "-", target, holds))

    inspect_times = {}
    for size in args.sizes.split(","):
        rows = SIZES[size]
        prefix = os.path.join(work, f"peers-{size}")
        with open(prefix + ".json", "w") as f:
            json.dump(config(rows), f)
        model, other = prefix + ".mtlm", prefix + "-b.mtlm"
        if os.path.exists(model):
            os.remove(model)
        seconds, rss = timed_process([binary, "synth", prefix + ".json", model, "--seed", "1"])
        memory.append(("synth", size, rss))
        if not os.path.exists(other):
            timed_process([binary, "synth", prefix + ".json", other, "--seed", "2"])
        checkpoint = prefix + ".safetensors"
        if not os.path.exists(checkpoint):
            timed_process([binary, "export", model, checkpoint])
        npy = prefix + "-npy"
        if not os.path.isdir(npy):
            timed_python(NUMPY_SAVE.replace("start = time.perf_counter()", "start = 0"), checkpoint, npy)
        total = os.path.getsize(model)

        # Read every byte (page cache warm: one untimed pass of each first).
        for path in (model, checkpoint):
            subprocess.run(["cat", path], stdout=subprocess.DEVNULL)
        cat = median_of(runs, lambda: timed_process(["cat", model]))[0]
        verify1, rss1 = median_of(runs, lambda: timed_process([binary, "verify", model, "--threads", "1"]))
        verify2, rss2 = median_of(runs, lambda: timed_process([binary, "verify", model, "--threads", "2"]))
        memory.append(("verify", size, max(rss1, rss2)))
        reads = interleaved(runs, {"ours": lambda: (in_process("read", model, 2, 1), 0),
                                   "safetensors": lambda: timed_python(SAFETENSORS_READ, checkpoint),
                                   "numpy": lambda: timed_python(NUMPY_READ, npy)})
        read, safetensors_read, numpy_read = (reads[name][0] for name in ("ours", "safetensors", "numpy"))
        gbps = lambda seconds: total / seconds / 1e9
        rows_out.append(("read + checksums, vs cat", size, f"{gbps(read):.2f} GB/s", "cat", f"{gbps(cat):.2f} GB/s",
                         f"{cat / read:.2f}", "≥ 0.70", "yes" if cat / read >= 0.7 else "NO"))
        row("read + checksums (time)", size, read, "safetensors get_tensor", safetensors_read, "< 1",
            "yes" if read < safetensors_read else "NO")
        row("read + checksums (time)", size, read, "numpy load mmap + sum", numpy_read, "< 1",
            "yes" if read < numpy_read else "NO")
        rows_out.append(("verify CLI, 1 → 2 threads", size, f"{gbps(verify1):.2f} → {gbps(verify2):.2f} GB/s", "", "", f"{verify1 / verify2:.2f}×", "> 1", "yes" if verify1 > verify2 else "NO"))

        # Save the same tensors.
        imported = prefix + "-imported.mtlm"
        _, save_rss = median_of(runs, lambda: timed_process([binary, "import", checkpoint, imported]))
        memory.append(("import", size, save_rss))
        saved = prefix + "-saved.mtlm"
        saves = interleaved(runs, {"ours, fsync'd": lambda: (in_process("save", checkpoint, saved, 1, 1), 0),
                                   "ours": lambda: (in_process("save", checkpoint, saved, 1, 0), 0),
                                   "safetensors": lambda: timed_python(SAFETENSORS_SAVE, checkpoint, prefix + "-saved.safetensors"),
                                   "numpy": lambda: timed_python(NUMPY_SAVE, checkpoint, prefix + "-saved-npy")})
        save_sync, save, numpy_save = saves["ours, fsync'd"][0], saves["ours"][0], saves["numpy"][0]
        safetensors_save, safetensors_rss = saves["safetensors"]
        row("save (no fsync, as the peers)", size, save, "safetensors save_file", safetensors_save, "≤ 1",
            "yes" if save <= safetensors_save else "NO")
        row("save (no fsync, as the peers)", size, save, "numpy save", numpy_save, "≤ 1", "yes" if save <= numpy_save else "NO")
        row("save (fsync'd, the default)", size, save_sync, "safetensors save_file", safetensors_save, "", "")
        rows_out.append(("save, peak memory", size, f"{save_rss:.0f} MiB", "safetensors (tensors in memory)", f"{safetensors_rss:.0f} MiB",
                         f"{save_rss / safetensors_rss:.2f}", "bounded", "yes" if save_rss < 256 else "NO"))

        # Metadata read.
        inspect_times[size] = median_of(max(runs, 11), lambda: timed_process([binary, "inspect", model, "--json"]))[0]

        # quantize, convert, diff.
        quantized = prefix + "-q.mtlm"
        quantize1, rss1 = median_of(runs, lambda: timed_process([binary, "quantize", model, quantized, "--embeddings", "int8", "--threads", "1"]))
        quantize2, rss2 = median_of(runs, lambda: timed_process([binary, "quantize", model, quantized, "--embeddings", "int8", "--threads", "2"]))
        memory.append(("quantize", size, max(rss1, rss2)))
        rows_out.append(("quantize int8, 1 → 2 threads", size, f"{gbps(quantize1):.2f} → {gbps(quantize2):.2f} GB/s", "", "",
                         f"{quantize1 / quantize2:.2f}×", "> 1", "yes" if quantize1 > quantize2 else "NO"))
        _, rss = timed_process([binary, "convert", model, prefix + "-t.mtlm", "--to", "training", "--optimizer", "adam"])
        memory.append(("convert", size, rss))
        diff1, rss1 = median_of(runs, lambda: timed_process([binary, "diff", model, other, "--threads", "1"]))
        diff2, rss2 = median_of(runs, lambda: timed_process([binary, "diff", model, other, "--threads", "2"]))
        memory.append(("diff", size, max(rss1, rss2)))
        both = total + os.path.getsize(other)
        rows_out.append(("diff, 1 → 2 threads", size, f"{both / diff1 / 1e9:.2f} → {both / diff2 / 1e9:.2f} GB/s", "", "",
                         f"{diff1 / diff2:.2f}×", "≥ 1 GB/s", "yes" if both / diff2 / 1e9 >= 1 else "NO"))
        for path in (imported, quantized, saved, prefix + "-t.mtlm", prefix + "-saved.safetensors"):
            if os.path.exists(path):
                os.remove(path)
        subprocess.run(["rm", "-rf", prefix + "-saved-npy"])

    sizes = list(inspect_times)
    flat = max(inspect_times.values()) / min(inspect_times.values())
    rows_out.append(("inspect (metadata)", " → ".join(sizes), " → ".join(f"{inspect_times[s] * 1000:.0f} ms" for s in sizes), "", "",
                     f"{flat:.2f}×", "flat", "yes" if flat < 1.5 else "NO"))
    worst = max(m[2] for m in memory)
    rows_out.append(("peak memory (max RSS)", ", ".join(sizes), f"max {worst:.0f} MiB", "", "", "", "< 256 MiB", "yes" if worst < 256 else "NO"))

    header = ("metric", "size", "mtl-model", "peer", "peer value", "ratio", "target", "holds")
    widths = [max(len(str(r[i])) for r in rows_out + [header]) for i in range(len(header))]
    for line in [header, tuple("-" * w for w in widths)] + rows_out:
        print("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
    print()
    print("peak memory (MiB) by command and size:")
    commands = sorted({m[0] for m in memory})
    print("  " + "command".ljust(10) + "".join(s.rjust(10) for s in sizes))
    for command in commands:
        values = {m[1]: m[2] for m in memory if m[0] == command}
        print("  " + command.ljust(10) + "".join(f"{values[s]:10.0f}" if s in values else "         -" for s in sizes))


if __name__ == "__main__":
    main()
