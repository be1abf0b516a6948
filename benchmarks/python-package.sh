#!/usr/bin/env bash
# The Python package (docs/PYTHON.md) on a 1 GiB training model (MODEL.md's example config,
# 16M-row user table, Adagrad state), against the Swift CLI and the safetensors package in the
# same run: verify, read every tensor, save. Medians of 3, wall seconds and peak RSS.
# Usage: benchmarks/python-package.sh [WORK_DIR]   (needs ~4 GB free; scripts/install-deps.sh first)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root="$here/.."
work=${1:-$(mktemp -d)}
mkdir -p "$work"
python="$root/.venv/bin/python3"
(cd "$root" && swift build -c release --static-swift-stdlib --product mtl-model >/dev/null)  # as README installs it
cli="$root/.build/release/mtl-model"
if [ ! -f "$work/big.mtlm" ]; then
  "$python" - "$root/fixtures/configs/model-md-example.json" "$work/big.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["fields"][0]["vocab_size"] = 16_000_000
json.dump(config, open(sys.argv[2], "w"))
PY
  "$cli" synth "$work/big.json" "$work/big.mtlm" --seed 1 --training >/dev/null
  "$cli" export "$work/big.mtlm" "$work/big.safetensors" >/dev/null
fi
PYTHONPATH="$root/python" "$python" "$here/python_package.py" "$cli" "$work"
