#!/usr/bin/env python3
"""Two builds' writers side by side, in a shuffled order each round (this VM's page cost
depends on what ran just before, so a fixed order favours whichever runs second):

- `quantize --embeddings int8` of MODEL at 1 and 2 threads, a new output each run (fsync'd,
  the CLI's default): seconds, and each build's 1 → 2 threads ratio;
- save of CHECKPOINT's tensors from memory without fsync (`PeerTimings save`, median of 3 a
  round) against `np.save` of the same arrays (as benchmarks/peers.py runs it);
- reading back what each wrote, from the page cache: every byte checked by NEW's `PeerTimings
  read` (2 threads) of each build's saved file, against numpy's `np.load(mmap_mode="r")` + a
  sum of its saved arrays (as peers.py). The reader is the same for both builds: a difference
  is the page cache's layout that the writes left (docs/PERFORMANCE.md, "writes cut at 2 MiB
  file boundaries").

Usage: benchmarks/writers-ab.py OLD_ROOT NEW_ROOT MODEL CHECKPOINT WORK_DIR [ROUNDS]
OLD_ROOT and NEW_ROOT are checkouts with release builds of `mtl-model` and of the benchmarks'
`PeerTimings`; CHECKPOINT is MODEL exported as .safetensors (peers.sh leaves both in its work
directory); python3 needs numpy and safetensors.
"""
import json, os, random, shutil, statistics, subprocess, sys, time
from peers import NUMPY_READ, timed_python

NUMPY_SAVE = r'''
import numpy as np, os, shutil, sys, time, json
from safetensors.numpy import load_file
tensors = {name: array.copy() for name, array in load_file(sys.argv[1]).items()}
times = []
for _ in range(3):
    shutil.rmtree(sys.argv[2], ignore_errors=True); os.makedirs(sys.argv[2])
    start = time.perf_counter()
    for name, array in tensors.items(): np.save(os.path.join(sys.argv[2], name + ".npy"), array)
    times.append(time.perf_counter() - start)
print(json.dumps({"seconds": sorted(times)[1]}))
'''


def main():
    old, new, model, checkpoint, work = sys.argv[1:6]
    rounds = int(sys.argv[6]) if len(sys.argv) > 6 else 9
    builds = {"old": old, "new": new}
    output = os.path.join(work, "writers-ab.mtlm")
    saved = {build: os.path.join(work, f"writers-ab-{build}.mtlm") for build in builds}
    saved["numpy"] = os.path.join(work, "writers-ab-npy")
    times = {}

    def quantize(build, threads):
        if os.path.exists(output): os.remove(output)
        binary = os.path.join(builds[build], ".build/release/mtl-model")
        start = time.perf_counter()
        subprocess.run([binary, "quantize", model, output, "--embeddings", "int8", "--threads", str(threads), "--quiet"],
                       stdout=subprocess.DEVNULL, check=True)
        return time.perf_counter() - start

    def timings(build, *arguments):
        binary = os.path.join(builds[build], "benchmarks/.build/release/PeerTimings")
        result = subprocess.run([binary] + [str(a) for a in arguments], capture_output=True, text=True, check=True)
        return json.loads(result.stdout)["seconds"]

    def save(build):
        if build == "numpy":
            result = subprocess.run([sys.executable, "-c", NUMPY_SAVE, checkpoint, saved["numpy"]],
                                    capture_output=True, text=True, check=True)
            return json.loads(result.stdout)["seconds"]
        return timings(build, "save", checkpoint, saved[build], 3, 0)

    def read(build):
        if build == "numpy":
            return timed_python(NUMPY_READ, saved["numpy"])[0]
        return timings("new", "read", saved[build], 2, 3)

    writers = ("old", "new", "numpy")
    for build in writers:
        save(build)
    cases = ([("quantize", b, t) for b in builds for t in (1, 2)] + [("save", b, 0) for b in writers]
             + [("read", b, 0) for b in writers])
    for _ in range(rounds):
        random.shuffle(cases)
        for kind, build, threads in cases:
            seconds = quantize(build, threads) if kind == "quantize" else save(build) if kind == "save" else read(build)
            times.setdefault((kind, build, threads), []).append(seconds)
    for path in [output] + [saved[b] for b in builds]:
        if os.path.exists(path): os.remove(path)
    shutil.rmtree(saved["numpy"], ignore_errors=True)

    median = {key: statistics.median(values) for key, values in times.items()}
    for key in sorted(times):
        print("%-8s %-5s %-9s median %.3f s   %s" % (key[0], key[1], "%d thr" % key[2] if key[2] else "",
                                                      median[key], " ".join("%.3f" % v for v in times[key])))
    for build in builds:
        print("quantize %s: 1 → 2 threads %.2f×" % (build, median[("quantize", build, 1)] / median[("quantize", build, 2)]))
        print("save %s / np.save: %.2f" % (build, median[("save", build, 0)] / median[("save", "numpy", 0)]))
        print("read of %s's file / numpy's: %.2f" % (build, median[("read", build, 0)] / median[("read", "numpy", 0)]))


if __name__ == "__main__":
    main()
