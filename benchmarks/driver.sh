#!/usr/bin/env bash
# The cluster driver (#15): `quantize --embeddings int8` of the ≥ 4 GiB benchmark model in 16
# shards (benchmarks/big-sharded.json, as benchmarks/sharded.sh makes it) run by the single
# process at 1 and 2 threads, by plan / run-task / finish in a shell loop, and by the Dask
# driver (python -m mtl_model.distributed) on a LocalCluster of 1 and 2 worker processes; the
# driver's own cost (cluster start, plan, scheduling and the CLI's start per task, finish)
# measured on a 16-shard model of a few kilobytes, where the tasks do next to nothing.
# RUNS rounds (default 3), each running every config once in an order rotated from round to
# round (the VM's write costs drift), medians; inputs read into the page cache before each run.
# Usage: benchmarks/driver.sh [WORK_DIR]   (needs ~12 GB free; the Python of .venv)
source "$(dirname "$0")/common.sh"
[ -f "$work/one.mtlm" ] || "$bin" synth benchmarks/big-sharded.json "$work/one.mtlm" --seed 1 --training >/dev/null
[ -f "$work/s16.mtlm" ] || "$bin" shard "$work/one.mtlm" "$work/s16.mtlm" --shards 16 --threads 2 >/dev/null
"$bin" shard fixtures/v1.0/small-training.mtlm "$work/tiny16.mtlm" --shards 16 >/dev/null
PATH="$(dirname "$bin"):$PATH" "$root/.venv/bin/python3" benchmarks/driver_bench.py "$bin" "$work" "${RUNS:-3}"
