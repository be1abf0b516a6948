"""Checks an .npz written by `mtl-model export` against the safetensors export of the same
model, read by the safetensors package: the same tensors with the same values (float16 stays
float16 in the .npz, every other float type is float32 in both), the same config and metadata,
and every member's CRC-32.

usage: check_npz.py MODEL.safetensors MODEL.npz
"""
import json
import sys
import zipfile

import numpy as np
from safetensors import safe_open


def main(reference_path, npz_path):
    with zipfile.ZipFile(npz_path) as members:
        bad = members.testzip()  # every member's CRC-32 against its bytes
        assert bad is None, f"{bad}: CRC-32 does not match"
    archive = np.load(npz_path)
    with safe_open(reference_path, "np") as reference:
        metadata = dict(reference.metadata())
        config = json.loads(metadata.pop("mtl_model.config"))
        names = set(reference.keys())
        arrays = {name for name in archive.files if not name.endswith(".json")}
        assert arrays == names, f"tensors differ: {sorted(arrays ^ names)[:5]}"
        for name in sorted(names):
            expected, actual = reference.get_tensor(name), archive[name]
            assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
            if actual.dtype == np.float16:
                actual = actual.astype(np.float32)
            assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}"
            assert np.array_equal(actual, expected), f"{name}: values differ"
    assert json.loads(archive["mtl_model.config.json"]) == config, "config differs"
    stored = json.loads(archive["mtl_model.metadata.json"]) if "mtl_model.metadata.json" in archive.files else {}
    assert stored == metadata, f"metadata differs: {stored} != {metadata}"
    print(f"npz ok: {len(names)} tensors")


if __name__ == "__main__":
    main(*sys.argv[1:])
