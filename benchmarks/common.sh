# Sourced by the benchmark scripts: builds the release CLI, sets $bin, $work (the first
# argument, or a new temporary directory) and prints the machine line.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
cd "$root"
# The binary as README's "Installing the binary" builds it (the Swift runtime linked in).
swift build -c release --static-swift-stdlib --product mtl-model >/dev/null
bin="$(swift build -c release --static-swift-stdlib --show-bin-path)/mtl-model"
printf 'machine: %s, %s cores, %s\n' "$(uname -m)" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
