"""Every file of the corrupt corpus (damaged containers) and of the broken corpus (valid
checksums, wrong structure or values) gets the verdict the Swift `verify` gives: unreadable
(an exception naming the file), invalid (the problems listed) or valid — never a Python
crash. The expected messages are those the corpora's expected.json files name."""
import glob
import json
import os

import pytest

import mtl_model
from conftest import fixture

CORRUPT = json.load(open(fixture("corrupt", "expected.json")))
BROKEN = json.load(open(fixture("broken", "expected.json")))


def verdict(path):
    """(0 valid | 1 invalid | 2 unreadable, message)."""
    try:
        model = mtl_model.load(path)
    except mtl_model.MTLModelError as error:
        return 2, str(error)
    report = model.verify()
    return (0, "") if report.valid else (1, "; ".join(str(p) for p in report.problems))


def test_the_corpora_are_complete():
    for folder, expected in (("corrupt", CORRUPT), ("broken", BROKEN)):
        on_disk = {os.path.basename(p) for p in glob.glob(fixture(folder, "*.mtlm"))}
        assert on_disk == {case["file"] for case in expected}, folder


@pytest.mark.parametrize("case", CORRUPT, ids=lambda c: c["file"])
def test_corrupt_file(case, cli):
    path = fixture("corrupt", case["file"])
    status, message = verdict(path)
    assert status == case["verifyExit"], message
    assert case["message"] in message
    if status == 2:
        assert message.startswith(path + ": ")  # the file named first, then the place
    swift, out, err = cli("verify", path)
    assert swift == status, (out, err)


@pytest.mark.parametrize("case", BROKEN, ids=lambda c: c["file"])
def test_broken_model(case, cli):
    path = fixture("broken", case["file"])
    status, message = verdict(path)
    assert status == 1, message
    assert case["message"] in message
    swift, out, err = cli("verify", path)
    assert swift == 1, (out, err)


def test_load_with_verify_raises_on_an_invalid_model():
    with pytest.raises(mtl_model.MTLModelError, match="NaN"):
        mtl_model.load(fixture("broken", "nan-in-embedding.mtlm"), verify=True)
    assert mtl_model.load(fixture("v1.0", "small.mtlm"), verify=True)


def test_a_damaged_chunk_fails_on_first_access(tmp_path):
    data = bytearray(open(fixture("v1.0", "small.mtlm"), "rb").read())
    data[64] ^= 0x01  # the first payload byte: the first tensor's first chunk
    path = tmp_path / "flipped.mtlm"
    path.write_bytes(bytes(data))
    m = mtl_model.load(path)
    first = min(m.tensors.values(), key=lambda t: t.offset).name
    with pytest.raises(mtl_model.MTLModelError, match="chunk 0 checksum mismatch") as error:
        m[first]
    assert error.value.offset == 64 and error.value.tensor == first
    assert mtl_model.load(path, check_checksums=False)[first].shape  # read anyway, on request


def test_every_truncation_and_every_flipped_byte_is_caught(tmp_path):
    """As the Swift tests do for two fixtures: no prefix of a file opens, and no byte can be
    flipped without verify (or opening) noticing."""
    data = open(fixture("v1.0", "small.mtlm"), "rb").read()
    path = tmp_path / "cut.mtlm"
    for size in range(0, len(data), 7):
        path.write_bytes(data[:size])
        assert verdict(str(path))[0] == 2, size
    for offset in range(0, len(data), 3):
        flipped = bytearray(data)
        flipped[offset] ^= 0x40
        path.write_bytes(bytes(flipped))
        assert verdict(str(path))[0] != 0, offset


@pytest.mark.parametrize("kind", ["directory", "fifo", "device"])
def test_what_is_not_a_file_is_refused_without_hanging(kind, tmp_path):
    path = {"directory": str(tmp_path), "device": "/dev/null"}.get(kind)
    if kind == "fifo":
        path = str(tmp_path / "pipe")
        os.mkfifo(path)
    with pytest.raises(mtl_model.MTLModelError, match="not a model file"):
        mtl_model.load(path)


def test_the_wrong_kind_of_file_says_what_it_is(tmp_path):
    import numpy as np
    np.savez(tmp_path / "w.npz", a=np.zeros(3))
    with pytest.raises(mtl_model.MTLModelError, match="ZIP archive"):
        mtl_model.load(tmp_path / "w.npz")
    (tmp_path / "d.txt").write_text("1,0 user_id:3 item_id:7\n")
    with pytest.raises(mtl_model.MTLModelError, match="text file"):
        mtl_model.load(tmp_path / "d.txt")
    header = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    (tmp_path / "c.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(4))
    with pytest.raises(mtl_model.MTLModelError, match="mtl-model import"):
        mtl_model.load(tmp_path / "c.safetensors")
    with pytest.raises(mtl_model.MTLModelError, match="cannot open"):
        mtl_model.load(tmp_path / "missing.mtlm")
