#!/usr/bin/env bash
# Format benchmarks of the release CLI, as a user runs it (process start included):
#   - `inspect` time for a ~2 MiB and a ~2 GiB model (median of 21 runs; must be flat, < 50 ms)
#   - peak memory (max RSS) and time of `synth` for both (must stay < 256 MiB at 2 GiB)
#   - `verify` of the 2 GiB model: time, throughput, max RSS; and `cat` of the same bytes
# Usage: benchmarks/format-cli.sh [WORK_DIR]   (needs ~2.2 GB free in WORK_DIR)
source "$(dirname "$0")/common.sh"

config() {  # config ROWS: K = 16, three large fields (half, quarter, quarter of ROWS)
  cat <<JSON
{"embedding_dim": 16, "groups": ["user", "item", "context"],
 "fields": [{"name": "user_id", "vocab_size": $(($1 / 2)), "group": "user"},
            {"name": "item_id", "vocab_size": $(($1 / 4)), "mapping": "keyed", "group": "item"},
            {"name": "tags", "vocab_size": $(($1 / 4)), "mapping": "direct", "combiner": "mean", "group": "item"},
            {"name": "hour", "vocab_size": 24, "mapping": "direct", "group": "context"}],
 "interaction": {"intra": true}, "bottom_input": "interaction+groups",
 "shared": [{"units": 512}, {"units": 256}, {"units": 128}, {"units": 64}],
 "tasks": [{"name": "ctr", "tower": [{"units": 64}]}, {"name": "follow", "tower": [{"units": 64}]}],
 "fusion": {"type": "lexicographic", "bucket": 0.01}}
JSON
}

measure() {  # measure LABEL COMMAND...: wall seconds and max RSS from /usr/bin/time
  local label=$1 out
  shift
  out=$( { /usr/bin/time -f "%e %M" "$@" >/dev/null; } 2>&1 | tail -1)
  printf '%s\t%s s\t%s MiB\n' "$label" "${out% *}" "$(( ${out#* } / 1024 ))"
}

printf 'binary: %s\n\n' "$bin"
for size in 2mib:32768 2gib:33554432; do
  name=${size%%:*}; rows=${size##*:}
  config "$rows" > "$work/$name.json"
  rm -f "$work/$name.mtlm"
  printf 'synth %s\t' "$name"; measure "" "$bin" synth "$work/$name.json" "$work/$name.mtlm" --seed 1 | cut -f2-
  printf '  size: %s bytes\n' "$(stat -c %s "$work/$name.mtlm")"
done
echo
python3 - "$bin" "$work" <<'PY'
import statistics, subprocess, sys, time
binary, work = sys.argv[1], sys.argv[2]
for name in ("2mib", "2gib"):
    times = []
    for _ in range(21):
        start = time.perf_counter()
        subprocess.run([binary, "inspect", f"{work}/{name}.mtlm", "--json"], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    print(f"inspect {name}\tmedian {statistics.median(times) * 1000:.1f} ms\tmin {min(times) * 1000:.1f} ms\tmax {max(times) * 1000:.1f} ms")
PY
echo
bytes=$(stat -c %s "$work/2gib.mtlm")
cat "$work/2gib.mtlm" > /dev/null  # warm the page cache: both sides read from memory
for tool in cat verify; do
  if [ $tool = cat ]; then cmd=(cat "$work/2gib.mtlm"); else cmd=("$bin" verify "$work/2gib.mtlm"); fi
  line=$(measure "$tool 2gib" "${cmd[@]}")
  seconds=$(echo "$line" | cut -f2 | cut -d' ' -f1)
  printf '%s\t%s GB/s\n' "$line" "$(python3 -c "print(f'{$bytes / max($seconds, 0.01) / 1e9:.2f}')")"
done
