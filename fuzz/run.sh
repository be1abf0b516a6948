#!/usr/bin/env bash
# Builds the libFuzzer targets (with AddressSanitizer) and fuzzes each for SECONDS (default 30)
# from the seed corpus: the .mtlm fixtures (golden and corrupt), safetensors and dataset seeds.
# New inputs go to a scratch corpus; a crash stops with exit 1 and leaves crash-* files in
# the scratch directory (make each one a fixture with a test). Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(FuzzModelReader FuzzModelStructure FuzzShardedModel FuzzSafetensors FuzzDataset)
cd "$here"
swift build -c release --sanitize=fuzzer --sanitize=address >/dev/null
bin=$(swift build -c release --sanitize=fuzzer --sanitize=address --show-bin-path)
scratch=${FUZZ_SCRATCH:-$(mktemp -d)}
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1
for target in "${targets[@]}"; do
  case $target in
    FuzzModelReader) seeds=("$here/../fixtures/v1.0" "$here/../fixtures/v1.1" "$here/../fixtures/v1.2" "$here/../fixtures/v1.3" "$here/../fixtures/v1.4" "$here/../fixtures/corrupt") ;;
    FuzzModelStructure) seeds=("$here/seeds/structure") ;;
    FuzzShardedModel) seeds=("$here/seeds/sharded") ;;
    FuzzSafetensors) seeds=("$here/seeds/safetensors") ;;
    FuzzDataset) seeds=("$here/seeds/dataset" "$here/../fixtures/predict") ;;
  esac
  mkdir -p "$scratch/$target"
  echo "fuzzing $target for $seconds s" >&2
  (cd "$scratch" && "$bin/$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$scratch/$target-" "$scratch/$target" "${seeds[@]}" 2>&1 | grep -E "stat::number_of_executed_units|Done|ERROR|SUMMARY|crash" >&2) || {
    echo "fuzz/run.sh: $target found a crash: see $scratch/$target-crash-*" >&2
    exit 1
  }
done
