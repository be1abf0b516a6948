#!/usr/bin/env bash
# Regenerates the committed protobuf-c code from schema/mtl_model.proto.
# Needs protoc-c (apt-get install protobuf-c-compiler). Run from anywhere.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../Sources/CMTLManifest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
protoc-c --proto_path="$here" --c_out="$tmp" "$here/mtl_model.proto"
mv "$tmp/mtl_model.pb-c.c" "$out/mtl_model.pb-c.c"
mv "$tmp/mtl_model.pb-c.h" "$out/include/mtl_model.pb-c.h"
# The .c includes its header by the name protoc-c gave it; it lives in include/.
echo "generated $out/mtl_model.pb-c.c and include/mtl_model.pb-c.h ($(protoc-c --version | head -1))"
