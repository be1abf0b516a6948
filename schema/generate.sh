#!/usr/bin/env bash
# Regenerates the committed protobuf-c code: the manifest (schema/mtl_model.proto) and the
# ONNX model schema that `export` writes (schema/onnx/onnx-ml.proto, vendored unchanged from
# onnx 1.23.2, Apache-2.0) — and the manifest's Python module of the mtl_model package
# (python/mtl_model/_proto/mtl_model_pb2.py). Needs protoc-c (apt-get install
# protobuf-c-compiler) and protoc (protobuf-compiler).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
generate() {  # proto_path proto output_dir stem
  protoc-c --proto_path="$1" --c_out="$tmp" "$1/$2"
  mv "$tmp/$4.pb-c.c" "$3/$4.pb-c.c"
  mv "$tmp/$4.pb-c.h" "$3/include/$4.pb-c.h"
  echo "generated $3/$4.pb-c.c and include/$4.pb-c.h ($(protoc-c --version | head -1))"
}
generate "$here" mtl_model.proto "$here/../Sources/CMTLManifest" mtl_model
generate "$here/onnx" onnx-ml.proto "$here/../Sources/CONNXProto" onnx-ml
protoc --proto_path="$here" --python_out="$tmp" "$here/mtl_model.proto"
mv "$tmp/mtl_model_pb2.py" "$here/../python/mtl_model/_proto/mtl_model_pb2.py"
echo "generated python/mtl_model/_proto/mtl_model_pb2.py ($(protoc --version))"
