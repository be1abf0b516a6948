#!/usr/bin/env bash
# Installs the Debian packages mtl-model needs to build and test, if any is missing.
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail
# chromium: the tests render every --html report in a real browser, headless.
packages=(libprotobuf-c-dev zlib1g-dev protobuf-compiler pkg-config chromium)
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

# Python: a virtual environment inside the project (.venv/, git-ignored), because a stock
# Debian python3 refuses `pip install` into the system (PEP 668). It sees the system's site
# packages, so what is installed already is not fetched again. It holds the test
# dependencies — numpy, protobuf and pytest for the mtl_model package (python/, itself
# importable from the venv); safetensors for the numpy cross-check of MODEL.md; onnx and onnxruntime to run
# the ONNX exports (docs/ONNX.md); dask and distributed for the cluster driver
# (mtl_model.distributed, docs/SCALE.md) — and, where a CPU wheel can be had, torch, for the
# from_torch tests (they are skipped, saying so, without it). The tests use .venv/bin/python3.
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
if ! "$venv/bin/python3" -c "" 2>/dev/null; then
  rm -rf "$venv"
  if ! python3 -m venv --system-site-packages "$venv" 2>/dev/null; then
    # Debian ships venv's pip bootstrap separately.
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: python3-venv" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$venv"
    python3 -m venv --system-site-packages "$venv"
  fi
fi
pip=("$venv/bin/python3" -m pip install -q --disable-pip-version-check)
if ! "$venv/bin/python3" -c "import numpy, google.protobuf, pytest, safetensors, onnx, onnxruntime, dask.distributed" 2>/dev/null; then
  echo "installing into .venv: numpy protobuf pytest safetensors onnx onnxruntime dask distributed (pip)" >&2
  "${pip[@]}" numpy protobuf pytest safetensors onnx onnxruntime dask distributed
fi
# The package itself, editable: a .pth file naming python/ (what `pip install -e` writes),
# so that setting up needs neither a build backend nor the network.
site=$("$venv/bin/python3" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$root/python" > "$site/mtl_model-dev.pth"
if ! "$venv/bin/python3" -c "import torch" 2>/dev/null; then
  # Only a CPU wheel from pip's configured --find-links (PyPI's torch brings gigabytes of
  # CUDA libraries); its own dependencies from PyPI.
  if "${pip[@]}" --no-index --no-deps --only-binary :all: torch 2>/dev/null; then
    echo "installed into .venv: torch (a CPU wheel from pip's find-links)" >&2
    "${pip[@]}" filelock typing-extensions sympy networkx jinja2 fsspec "setuptools>=77"
  else
    echo "no CPU wheel of torch at hand: the from_torch tests will be skipped" >&2
  fi
fi
