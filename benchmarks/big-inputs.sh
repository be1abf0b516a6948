# Sourced by ab.sh and writers.sh: makes their inputs in $work once (kept for the next run)
# with the CLI $new: the p40 predict model and samples, the 1 GiB-table training model of
# MODEL.md's example config (2.3 GB on disk with its optimizer state) and a second one,
# big-edit.mtlm (1% of the user table changed), the delta between them, big.safetensors and
# big-int8.mtlm (its tables in int8).
python3 "$here/make-p40.py" "$work"
[ -f "$work/p40.mtlm" ] || "$new" synth "$work/p40.json" "$work/p40.mtlm" --seed 3 >/dev/null
if [ ! -f "$work/big.mtlm" ]; then
  python3 - "$here/../fixtures/configs/model-md-example.json" "$work/big.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["fields"][0]["vocab_size"] = 16_000_000
json.dump(config, open(sys.argv[2], "w"))
PY
  "$new" synth "$work/big.json" "$work/big.mtlm" --seed 1 --training >/dev/null
  "$new" synth "$work/big.json" "$work/big2.mtlm" --seed 2 --training >/dev/null
fi
if [ ! -f "$work/big-edit.mtlm" ]; then
  # The same model with 1% of the user table's rows changed (a day of training on a few users):
  # what `delta` and `apply` of a small delta are measured on. Written by the Python package.
  PYTHONPATH="$here/../python" "${PYTHON:-$here/../.venv/bin/python3}" - "$work" <<'PY'
import sys, numpy as np, mtl_model
work = sys.argv[1]
with mtl_model.load(work + "/big.mtlm") as m:
    tensors = {name: np.array(m[name]) for name in m.tensors}
    config = m.config
rows = np.random.default_rng(1).choice(tensors["embedding.user_id.weight"].shape[0], 160_000, replace=False)
tensors["embedding.user_id.weight"][rows] += np.float32(1e-3)
mtl_model.save(work + "/big-edit.mtlm", tensors, config, fsync=False)
PY
fi
[ -f "$work/big.delta.mtlmd" ] || "$new" delta "$work/big.mtlm" "$work/big-edit.mtlm" "$work/big.delta.mtlmd" >/dev/null
[ -f "$work/big.safetensors" ] || "$new" export "$work/big.mtlm" "$work/big.safetensors" >/dev/null
[ -f "$work/big-int8.mtlm" ] || "$new" quantize "$work/big.mtlm" "$work/big-int8.mtlm" --quiet >/dev/null
