"""`Model.decode` gives the float32 values `mtl-model dequantize` writes, bit for bit, for
every stored dtype: float16, bfloat16, int8 / int4 row-wise, int8 symmetric."""
import numpy as np
import pytest

import mtl_model
from conftest import fixture

# quantize arguments → the dtypes they produce
PLANS = [
    ("--embeddings", "fp16", "--dense", "fp16"),
    ("--embeddings", "bf16", "--dense", "bf16"),
    ("--embeddings", "int8", "--dense", "int8"),
    ("--embeddings", "int4", "--dense", "fp32"),
]


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p[1] + "-" + p[3])
def test_decode_matches_dequantize(plan, cli, tmp_path):
    quantized, dequantized = tmp_path / "q.mtlm", tmp_path / "d.mtlm"
    status, _, err = cli("quantize", fixture("v1.0", "small-training.mtlm"), quantized, *plan)
    assert status == 0, err
    status, _, err = cli("dequantize", quantized, dequantized)
    assert status == 0, err
    q, d = mtl_model.load(quantized), mtl_model.load(dequantized)
    assert q.verify().valid
    seen = set()
    for name, info in q.tensors.items():
        if not info.dtype.is_float:
            continue
        seen.add(info.dtype.name)
        decoded = q.decode(name)
        assert decoded.dtype == np.float32 and decoded.shape == info.shape
        assert decoded.tobytes() == d[name].tobytes(), name
    wanted = {"fp16": "float16", "bf16": "bfloat16", "int8": "int8-rowwise", "int4": "int4-rowwise"}[plan[1]]
    assert wanted in seen
    if plan[3] == "int8":
        assert "int8-symmetric" in seen


def test_bfloat16_reads_as_its_bits(cli, tmp_path):
    path = tmp_path / "bf16.mtlm"
    assert cli("quantize", fixture("v1.0", "small.mtlm"), path, "--embeddings", "bf16")[0] == 0
    m = mtl_model.load(path)
    name = "embedding.user_id.weight"
    assert m.tensors[name].dtype.name == "bfloat16"
    bits = m[name]
    assert bits.dtype == np.uint16
    assert np.array_equal((bits.astype(np.uint32) << 16).view(np.float32), m.decode(name))


def test_decoded_quantized_values_are_close_to_the_originals():
    m = mtl_model.load(fixture("v1.1", "small-int8.mtlm"))
    original = mtl_model.load(fixture("v1.0", "small.mtlm"))
    for name, info in m.tensors.items():
        if info.dtype.name == "int8-rowwise":
            error = np.abs(m.decode(name) - original[name]).max()
            assert error <= np.abs(original[name]).max() / 100, name
