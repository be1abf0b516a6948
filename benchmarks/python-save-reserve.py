"""`mtl_model.save` with its blocks reserved before each tensor (the default) against the same
save with the reservation turned off, fsync'd and not, in a shuffled order round by round (this
VM's cost for a page depends on what ran before). The model's arrays are copied into memory
first, as a trainer holds them.

usage: .venv/bin/python benchmarks/python-save-reserve.py MODEL WORK_DIR [ROUNDS]
"""
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import numpy as np  # noqa: E402
import mtl_model  # noqa: E402
from mtl_model import _writer  # noqa: E402


def main():
    model, work = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    with mtl_model.load(model) as m:
        tensors, config = {name: np.array(m[name]) for name in m.tensors}, m.config
    out, fallocate = os.path.join(work, "python-save.mtlm"), _writer._fallocate
    results = {(reserve, fsync): [] for reserve in (True, False) for fsync in (False, True)}
    for _ in range(rounds):
        for reserve, fsync in random.sample(list(results), len(results)):
            _writer._fallocate = fallocate if reserve else None
            if os.path.exists(out):
                os.remove(out)  # a new file each run, as a trainer's checkpoint is
            start = time.perf_counter()
            mtl_model.save(out, tensors, config, fsync=fsync)
            results[(reserve, fsync)].append(time.perf_counter() - start)
    os.remove(out)
    for (reserve, fsync), seconds in results.items():
        print("%-22s %-9s median %.3f s  (%s)" % ("blocks reserved" if reserve else "reservation off",
                                                  "fsync'd" if fsync else "no fsync", statistics.median(seconds),
                                                  " ".join("%.2f" % s for s in seconds)))


if __name__ == "__main__":
    main()
