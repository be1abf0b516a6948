#!/usr/bin/env bash
# Regenerates docs/reports/: the --html reports of the PyTorch-trained demo model
# (../shared/data/demo), and a screenshot of the deploy review for the README, by headless
# chromium. Run after a change to a report: scripts/make-sample-reports.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
demo="$root/../shared/data/demo"
out="$root/docs/reports"
cd "$root"
swift build --product mtl-model >/dev/null
bin="$(swift build --show-bin-path)/mtl-model"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
# Paths relative to the work directory: the reports name their inputs as given.
cd "$work"
"$bin" import "$demo/training.safetensors" model.mtlm >/dev/null
gzip -dc "$demo/test.txt.gz" > test.txt
"$bin" inspect model.mtlm --html "$out/inspect.html" >/dev/null
"$bin" eval model.mtlm test.txt --group-by user_id --html "$out/eval.html" >/dev/null
# The deploy of README's first version, which fails its gate: the report names the step.
"$bin" convert model.mtlm serving.mtlm --to serving --fold-batch-norm --prune-unseen --embeddings int8 --dense fp16 \
    --eval test.txt --max-auc-drop 0.0005 --html "$out/convert.html" >/dev/null || [ $? -eq 1 ]
# The checkpoint against its int8 tables (training state and row counts kept, so the change
# of rows by training count shows).
"$bin" quantize model.mtlm int8.mtlm --embeddings int8 --dense fp32 >/dev/null
"$bin" diff model.mtlm int8.mtlm --rows --data test.txt --html "$out/diff.html" >/dev/null || [ $? -eq 1 ]
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,800 \
    --screenshot="$out/convert.png" "file://$out/convert.html" 2>/dev/null
echo "wrote $(ls "$out" | tr '\n' ' ')"
