#!/usr/bin/env bash
# Installs the Debian packages mtl-model needs to build and test, if any is missing.
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail
packages=(libprotobuf-c-dev zlib1g-dev protobuf-compiler pkg-config)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python packages of the cross-check tests: an independent numpy implementation of MODEL.md
# that writes its checkpoints with the safetensors package, and onnx + onnxruntime to run the
# ONNX exports (docs/ONNX.md).
if ! python3 -c "import numpy, safetensors, onnx, onnxruntime" 2>/dev/null; then
  echo "installing: numpy safetensors onnx onnxruntime (pip)" >&2
  python3 -m pip install -q --disable-pip-version-check numpy safetensors onnx onnxruntime
fi
