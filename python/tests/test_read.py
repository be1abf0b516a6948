"""Every golden fixture of every format version, read by the package and compared with what the
Swift tool says of it: the config (`inspect --json`), every tensor bit for bit (`export`
to .npz), the verdict of `verify`."""
import glob
import json
import os
import time

import numpy as np
import pytest

import mtl_model
from conftest import fixture

# Sharded models (1.3) and sharded deltas (1.4) are not read by this package yet: their
# fixtures are refused by name.
SHARDED = sorted(glob.glob(fixture("v1.3", "*.mtlm")) + glob.glob(fixture("v1.4", "*.mtlm")))
SHARDED_DELTAS = sorted(glob.glob(fixture("v1.4", "*.mtlmd")))
GOLDEN = sorted(set(glob.glob(fixture("v1.*", "*.mtlm"))) - set(SHARDED))
DELTAS = sorted(set(glob.glob(fixture("v1.*", "*.mtlmd"))) - set(SHARDED_DELTAS))


def test_there_are_fixtures_of_every_version():
    assert {os.path.basename(os.path.dirname(p)) for p in GOLDEN} == {"v1.0", "v1.1", "v1.2"}
    assert DELTAS
    assert len(SHARDED) == 8 and len(SHARDED_DELTAS) == 4  # roots with three shards each


@pytest.mark.parametrize("path", SHARDED, ids=os.path.basename)
def test_sharded_fixtures_are_refused_by_name(path):
    with pytest.raises(mtl_model.MTLModelError, match="sharded model .*--shards 1"):
        mtl_model.load(path)


@pytest.mark.parametrize("path", SHARDED_DELTAS, ids=os.path.basename)
def test_sharded_deltas_are_refused_by_name(path):
    with pytest.raises(mtl_model.MTLModelError, match="sharded delta .*mtl-model apply"):
        mtl_model.load(path)


@pytest.mark.parametrize("path", GOLDEN, ids=os.path.basename)
def test_golden_config_and_tensors_match_the_swift_tool(path, cli, tmp_path):
    m = mtl_model.load(path)
    status, out, err = cli("inspect", path, "--json")
    assert status == 0, err
    inspected = json.loads(out)
    assert m.config == inspected["config"]
    status, _, err = cli("export", path, tmp_path / "m.npz")
    assert status == 0, err
    exported = np.load(tmp_path / "m.npz")
    assert sorted(m) == sorted(n for n in exported.files if not n.startswith("mtl_model."))
    for name, info in m.tensors.items():
        swift = exported[name]
        ours = m.decode(name) if info.dtype.is_quantized or info.dtype.name == "bfloat16" else m[name]
        assert ours.dtype == swift.dtype and ours.shape == swift.shape, name
        assert ours.tobytes() == swift.tobytes(), name
    assert json.loads(bytes(exported["mtl_model.config.json"]).decode()) == m.config


@pytest.mark.parametrize("path", GOLDEN + DELTAS, ids=os.path.basename)
def test_golden_files_verify_as_the_swift_tool_says(path, cli):
    report = mtl_model.load(path).verify()
    status, out, err = cli("verify", path)
    assert report.valid and status == 0, (report.problems, out, err)


def test_tensors_are_read_only_zero_copy_views():
    m = mtl_model.load(fixture("v1.0", "small.mtlm"))
    w = m["embedding.user_id.weight"]
    assert not w.flags.writeable and not w.flags.owndata
    with pytest.raises(ValueError):
        w[0, 0] = 1
    assert w.dtype == np.float32 and w.shape == (20, 4)
    assert m.tensors["embedding.user_id.weight"].offset % 64 == 0


def test_what_the_file_says():
    m = mtl_model.load(fixture("v1.0", "small-training.mtlm"))
    assert m.form == "training" and m.version == "1.0" and not m.is_delta
    assert m.provenance["producer"] == "mtl-model"
    assert "optimizer.step" in m and len(m) == len(m.tensors)
    keys = m["embedding.item_id.keys"]
    assert keys.dtype == np.int64 and len(set(keys.tolist())) == keys.size
    assert mtl_model.load(fixture("v1.0", "small.mtlm")).form == "serving"
    assert mtl_model.load(fixture("v1.2", "small-edited.mtlmd")).form == "delta"


def test_compressed_tensors_inflate():
    m = mtl_model.load(fixture("v1.0", "edge-cases-training-zlib.mtlm"))
    assert any(t.compression == "zlib" for t in m.tensors.values())
    for name, info in m.tensors.items():
        if info.dtype.is_quantized:
            continue
        array = m[name]
        assert array.shape == info.shape and not array.flags.writeable
        assert np.array_equal(array, mtl_model.load(fixture("v1.0", "edge-cases-training-zlib.mtlm"), check_checksums=False)[name])


def test_a_quantized_tensor_says_to_decode():
    m = mtl_model.load(fixture("v1.1", "small-int8.mtlm"))
    name = next(n for n, t in m.tensors.items() if t.dtype.is_quantized)
    with pytest.raises(mtl_model.MTLModelError, match="m.decode"):
        m[name]
    assert m.decode(name).dtype == np.float32


def test_an_unknown_name_gets_the_closest_one():
    m = mtl_model.load(fixture("v1.0", "small.mtlm"))
    with pytest.raises(mtl_model.MTLModelError, match='did you mean "embedding.user_id.weight"'):
        m["embedding.userid.weight"]
    with pytest.raises(mtl_model.MTLModelError, match="not a float type"):
        mtl_model.load(fixture("v1.0", "small-training.mtlm")).decode("embedding.item_id.keys")


def test_a_closed_model_refuses_access():
    with mtl_model.load(fixture("v1.0", "small.mtlm")) as m:
        pass
    with pytest.raises(mtl_model.MTLModelError, match="closed"):
        m["linear.bias"]


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_bad_chunks_of_a_tensor_checked_on_threads_are_reported_in_order(compression, tmp_path, monkeypatch):
    from mtl_model import _model
    monkeypatch.setattr(_model, "thread_count", lambda: 2)  # the pool's path, whatever the machine
    source = mtl_model.load(fixture("v1.0", "small-training.mtlm"))
    path = mtl_model.save(tmp_path / "m.mtlm", {n: np.array(source[n]) for n in source}, source.config,
                          compression=compression, chunk_bytes=64)
    name = "embedding.user_id.weight"  # 320 bytes: five chunks of 64
    info = mtl_model.load(path).tensors[name]
    ranges = info.stored_ranges()
    assert len(ranges) == 5
    data = bytearray(open(path, "rb").read())
    for chunk in (1, 3):
        data[info.offset + ranges[chunk][0]] ^= 0xFF
    open(path, "wb").write(bytes(data))
    bad = [p for p in mtl_model.load(path).verify().problems if p.tensor == name]
    assert [(p.kind, p.offset) for p in bad] == [("checksum", info.offset + ranges[c][0]) for c in (1, 3)]
    assert "chunk 1 " in bad[0].message and "chunk 3 " in bad[1].message
    with pytest.raises(mtl_model.MTLModelError, match="chunk 1 checksum mismatch") as error:
        mtl_model.load(path)[name]
    assert error.value.offset == info.offset + ranges[1][0]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX's")
def test_a_forked_child_checks_chunks_on_threads_of_its_own(tmp_path):
    """A DataLoader worker forked after the parent used the pool must not wait on the parent's
    threads, which the child does not have."""
    source = mtl_model.load(fixture("v1.0", "small-training.mtlm"))
    path = mtl_model.save(tmp_path / "m.mtlm", {n: np.array(source[n]) for n in source}, source.config, chunk_bytes=64)
    mtl_model.load(path).verify()  # the parent's pool exists now
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(0 if mtl_model.load(path).verify().valid else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung checking chunks")


@pytest.mark.parametrize("value", [np.float32(-1e20), np.float32(1e20), np.float32(np.nan), np.float32(-np.inf), np.float32(-1.8e19)])
def test_the_value_scan_catches_what_a_magnitude_check_catches(value):
    from mtl_model._verify import _Scan
    info = mtl_model.load(fixture("v1.0", "small.mtlm")).tensors["embedding.user_id.weight"]
    values = np.arange(80, dtype=np.float32).reshape(20, 4) - 40
    scan = _Scan(info)
    scan.feed(values.tobytes())
    assert scan.problems() == []
    values[7, 2] = value
    scan = _Scan(info)
    scan.feed(values.tobytes())
    assert len(scan.problems()) == (0 if value == np.float32(-1.8e19) else 1)  # 2^64 is 1.845e19


def test_chunks_checked_in_windows_report_every_bad_one(tmp_path, monkeypatch):
    from mtl_model import _model
    monkeypatch.setattr(_model, "thread_count", lambda: 2)  # windows of 32 chunks
    config = {"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1000}], "tasks": [{"name": "t"}]}
    rng = np.random.default_rng(5)
    tensors = {"embedding.a.weight": rng.standard_normal((1000, 4)).astype(np.float32),
               "head.t.weight": rng.standard_normal((1, 4)).astype(np.float32), "head.t.bias": np.zeros(1, np.float32),
               "interaction.pair_weight": np.zeros(0, np.float32)}
    path = mtl_model.save(tmp_path / "m.mtlm", tensors, config, chunk_bytes=64)  # 250 chunks
    info = mtl_model.load(path).tensors["embedding.a.weight"]
    ranges = info.stored_ranges()
    data = bytearray(open(path, "rb").read())
    bad = [0, 31, 32, 100, 249]  # either side of a window's end, and the last
    for chunk in bad:
        data[info.offset + ranges[chunk][0] + 5] ^= 1
    open(path, "wb").write(bytes(data))
    model = mtl_model.load(path)
    assert [p.offset for p in model.chunk_problems(info)] == [info.offset + ranges[c][0] for c in bad]
    assert [p.offset for p in model.chunk_problems(info, 32, 101)] == [info.offset + ranges[c][0] for c in (32, 100)]
