#!/usr/bin/env bash
# eval's memory against the dataset's size: the demo model (../shared/data/demo, imported) on
# its test set repeated — 5M samples from a file, 20M from standard input (the file four
# times) — with --group-by user_id (each copy's users renamed, so groups stay small) and
# --html (the curves read the sorted scores again). Wall time and max RSS of one run each;
# with OLD_BIN set, that binary is run first on the same inputs. Usage:
#   [OLD_BIN=path/to/mtl-model] benchmarks/eval-memory.sh [WORK_DIR]   (~0.5 GB free; .venv)
source "$(dirname "$0")/common.sh"
python=${PYTHON:-$root/.venv/bin/python3}
demo="$root/../shared/data/demo"
[ -f "$work/demo.mtlm" ] || "$bin" import "$demo/serving.safetensors" "$work/demo.mtlm" >/dev/null
if [ ! -f "$work/eval-5m.txt" ]; then
  gzip -dc "$demo/test.txt.gz" | grep -v '^#' > "$work/eval-one.txt"
  for copy in $(seq 0 249); do sed "s/user_id:/user_id:${copy}0/" "$work/eval-one.txt"; done > "$work/eval-5m.txt"
fi
"$python" - "$bin" "${OLD_BIN:-}" "$work" "$root" <<'PY'
import sys
binary, old, work, root = sys.argv[1:5]
sys.path.insert(0, root + "/benchmarks")
from peers import timed_process as timed  # (wall seconds, max RSS in MiB)
data = work + "/eval-5m.txt"
binaries = ([("OLD_BIN", old)] if old else []) + [("this build", binary)]
for label, path in binaries:
    common = [work + "/demo.mtlm", "--group-by", "user_id", "--html", work + "/eval.html"]
    for name, command in [("5M samples ", [path, "eval", common[0], data] + common[1:]),
                          ("20M, stdin", ["sh", "-c", 'cat "$1" "$1" "$1" "$1" | "$0" eval "$2" - --group-by user_id --html "$3"',
                                          path, data, common[0], work + "/eval.html"])]:
        seconds, rss = timed(command)
        print("eval %s  %-10s  %6.1f s  %5.0f MiB max RSS" % (name, label, seconds, rss), flush=True)
PY
