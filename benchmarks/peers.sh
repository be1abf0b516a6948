#!/usr/bin/env bash
# The peer comparison of #7 in one command: mtl-model against safetensors, numpy and `cat`
# on the same models (4 MiB, 256 MiB, 2 GiB), printing one table of ratios and the peak
# memory of each command (benchmarks/peers.py says what each row measures).
# Usage: benchmarks/peers.sh [WORK_DIR] [--sizes 4mib,256mib,2gib] [--runs N]
#        (the 2 GiB size needs about 12 GB free in WORK_DIR)
source "$(dirname "$0")/common.sh"
python3 -c "import numpy, safetensors" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check numpy safetensors
printf 'python %s, numpy %s, safetensors %s, %s\n' "$(python3 -c 'import platform; print(platform.python_version())')" \
  "$(python3 -c 'import numpy; print(numpy.__version__)')" "$(python3 -c 'import safetensors; print(safetensors.__version__)')" \
  "$(free -g | awk '/Mem:/ {print $2 " GiB of memory"}')"
(cd "$root/benchmarks" && swift build -c release --product PeerTimings >/dev/null)
timings="$(cd "$root/benchmarks" && swift build -c release --show-bin-path)/PeerTimings"
python3 "$root/benchmarks/peers.py" "$bin" "$timings" "$work" "${@:2}"
