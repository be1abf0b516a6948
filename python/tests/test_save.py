"""`save` writes what the Swift writer writes: files the Swift `verify` accepts, that predict
the same, with a data region byte-identical to `mtl-model import` of the same tensors and a
manifest that decodes equal but for provenance. Bad tensors are refused before anything is
written, every problem listed at once."""
import gzip
import json
import os
import shutil
import sys

import numpy as np
import pytest

import mtl_model
from mtl_model._format import Footer, ReadLimits
from mtl_model._proto import mtl_model_pb2 as pb
from mtl_model._writer import _AtomicFile
from conftest import DEMO, fixture

safetensors_numpy = pytest.importorskip("safetensors.numpy")


def tensors_of(path):
    m = mtl_model.load(path)
    return {name: np.array(m[name]) for name in m}, m.config


def regions(path):
    """(header, data region, manifest without provenance) of an .mtlm file."""
    data = open(path, "rb").read()
    footer = Footer.decode(data[-64:], len(data) - 64, len(data), ReadLimits())
    manifest = pb.Manifest()
    manifest.ParseFromString(data[footer.manifest_offset:footer.manifest_offset + footer.manifest_bytes])
    manifest.ClearField("provenance")
    return data[:64], data[64:footer.manifest_offset], manifest


def swift_import(cli, tmp_path, tensors, config, metadata, *flags):
    checkpoint, out = tmp_path / "ckpt.safetensors", tmp_path / "swift.mtlm"
    safetensors_numpy.save_file(tensors, str(checkpoint), metadata=dict(metadata, **{"mtl_model.config": json.dumps(config)}))
    status, _, err = cli("import", checkpoint, out, *flags)
    assert status == 0, err
    return out


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_byte_identical_to_the_swift_writer(compression, cli, tmp_path):
    tensors, config = tensors_of(fixture("v1.0", "small-training.mtlm"))
    metadata = {"team": "ranking", "data": "2026-12-01"}
    flags = ("--compression", "zlib") if compression else ()
    swift = swift_import(cli, tmp_path, tensors, config, metadata, *flags)
    ours = mtl_model.save(tmp_path / "py.mtlm", tensors, config, metadata=dict(sorted(metadata.items())), compression=compression)
    assert regions(ours) == regions(swift)
    status, out, err = cli("verify", ours)
    assert status == 0, out + err


def test_python_written_models_predict_as_swift_written_ones(cli, tmp_path):
    tensors, config = tensors_of(fixture("v1.0", "small.mtlm"))
    ours = mtl_model.save(tmp_path / "py.mtlm", tensors, config)
    data = fixture("predict", "small.txt")
    a, b = cli("predict", ours, data), cli("predict", fixture("v1.0", "small.mtlm"), data)
    assert a[0] == 0 and a == b


@pytest.mark.skipif(not os.path.exists(os.path.join(DEMO, "training.safetensors")), reason="../shared/data/demo is not here")
def test_the_demo_model_round_trips_python_swift_python(cli, tmp_path):
    """The PyTorch trainer's checkpoint: Python writes it as Swift's import does (byte for
    byte), and Python → Swift export → Swift import → Python gives every tensor back exactly."""
    from safetensors import safe_open
    path = os.path.join(DEMO, "training.safetensors")
    with safe_open(path, "np") as f:
        metadata = dict(f.metadata())
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    config = json.loads(metadata.pop("mtl_model.config"))
    ours = mtl_model.save(tmp_path / "py.mtlm", tensors, config, metadata=dict(sorted(metadata.items())))
    status, _, err = cli("import", path, tmp_path / "swift.mtlm")
    assert status == 0, err
    assert regions(ours) == regions(tmp_path / "swift.mtlm")
    assert cli("export", ours, tmp_path / "back.safetensors")[0] == 0
    assert cli("import", tmp_path / "back.safetensors", tmp_path / "back.mtlm")[0] == 0
    back = mtl_model.load(tmp_path / "back.mtlm")
    assert back.verify().valid and back.form == "training"
    assert back.config == mtl_model.normalize_config(config) and back.metadata == dict(sorted(metadata.items()))
    assert sorted(back) == sorted(tensors)
    for name, array in tensors.items():
        assert back[name].dtype == array.dtype and back[name].tobytes() == array.tobytes(), name
    # And it predicts what PyTorch predicted (MODEL.md's tolerance), read through Python's file.
    test = tmp_path / "test.txt"
    test.write_bytes(gzip.open(os.path.join(DEMO, "test.txt.gz")).read())
    status, out, err = cli("predict", ours, test)
    assert status == 0, err
    rows = [line.split("\t") for line in out.splitlines()[1:]]
    expected = [line.split("\t") for line in gzip.open(os.path.join(DEMO, "expected.tsv.gz"), "rt").read().splitlines()[1:]]
    ours_ctr = np.array([float(r[0]) for r in rows])
    torch_ctr = np.array([float(r[0]) for r in expected])
    assert len(ours_ctr) == len(torch_ctr) == 20000
    assert np.abs(ours_ctr - torch_ctr).max() < 1e-4


def small():
    return tensors_of(fixture("v1.0", "small-training.mtlm"))


def test_every_problem_is_listed_at_once(tmp_path):
    tensors, config = small()
    del tensors["head.ctr.bias"]
    tensors["embeding.user_id.weight"] = tensors.pop("embedding.user_id.weight")
    tensors["shared.0.weight"] = tensors["shared.0.weight"].T
    target = tmp_path / "m.mtlm"
    with pytest.raises(mtl_model.MTLModelError) as error:
        mtl_model.save(target, tensors, config)
    text = str(error.value)
    assert text.startswith("4 problems with the tensors")
    assert 'did you mean "embedding.user_id.weight"' in text
    assert "transposed?" in text and 'tensor "head.ctr.bias": missing' in text
    assert len(error.value.problems) == 4
    assert not os.listdir(tmp_path)  # nothing written, no temporary file left


def test_training_state_is_all_or_nothing(tmp_path):
    tensors, config = small()
    del tensors["optimizer.embedding.user_id.weight.sum"]
    with pytest.raises(mtl_model.MTLModelError, match="optimizer slots are given for"):
        mtl_model.save(tmp_path / "m.mtlm", tensors, config)
    serving = {n: a for n, a in tensors.items() if not n.startswith(("optimizer.", "stats.", "loss."))}
    path = mtl_model.save(tmp_path / "s.mtlm", serving, config)
    assert mtl_model.load(path).form == "serving"


def test_nonfinite_values_are_refused_unless_allowed(cli, tmp_path):
    tensors, config = small()
    tensors["shared.0.weight"] = tensors["shared.0.weight"].copy()
    tensors["shared.0.weight"][2, 3] = np.nan
    with pytest.raises(mtl_model.MTLModelError, match=r'"shared.0.weight": holds NaN or Inf \(the first at index \[2, 3\]'):
        mtl_model.save(tmp_path / "m.mtlm", tensors, config)
    path = mtl_model.save(tmp_path / "m.mtlm", tensors, config, allow_nonfinite=True)
    assert not mtl_model.load(path).verify().valid
    assert cli("verify", path)[0] == 1


def test_duplicate_keys_negative_counts_and_wrong_dtypes(tmp_path):
    tensors, config = small()
    keys = tensors["embedding.item_id.keys"].copy()
    keys[3] = keys[4]
    tensors["embedding.item_id.keys"] = keys
    tensors["stats.user_id.count"] = -tensors["stats.user_id.count"] - 1
    tensors["head.ctr.weight"] = tensors["head.ctr.weight"].astype(np.float64)
    with pytest.raises(mtl_model.MTLModelError) as error:
        mtl_model.save(tmp_path / "m.mtlm", tensors, config)
    text = str(error.value)
    assert "duplicate key %d" % keys.view(np.uint64)[3] in text and "negative count" in text and ".astype(np.float32)" in text


def test_what_trainers_hold_is_accepted(cli, tmp_path):
    """uint64 ids, int32 counts, float16 weights: stored as the format wants them."""
    tensors, config = small()
    tensors["embedding.item_id.keys"] = tensors["embedding.item_id.keys"].view(np.uint64)
    tensors["stats.tags.count"] = tensors["stats.tags.count"].astype(np.int32)
    tensors["embedding.user_id.weight"] = tensors["embedding.user_id.weight"].astype(np.float16)
    tensors["shared.0.weight"] = np.asfortranarray(tensors["shared.0.weight"])  # not C-contiguous
    path = mtl_model.save(tmp_path / "m.mtlm", tensors, json.dumps(config))
    m = mtl_model.load(path)
    assert m.tensors["embedding.user_id.weight"].dtype.name == "float16"
    assert m["embedding.item_id.keys"].dtype == np.int64 and m["stats.tags.count"].dtype == np.int64
    assert np.array_equal(m["shared.0.weight"], tensors["shared.0.weight"])
    assert cli("verify", path)[0] == 0


def test_a_bad_config_names_its_key(tmp_path):
    tensors, config = small()
    config["fields"][1]["mapping"] = "hashed"
    with pytest.raises(mtl_model.MTLModelError, match=r'key "fields\[1\].mapping": unknown value "hashed"'):
        mtl_model.save(tmp_path / "m.mtlm", tensors, config)
    config["fields"][1]["mapping"] = "keyed"
    config["embeding_dim"] = 4
    with pytest.raises(mtl_model.MTLModelError, match='key "embeding_dim": unknown key'):
        mtl_model.save(tmp_path / "m.mtlm", tensors, config)


def test_writes_are_atomic_and_never_destroy(tmp_path):
    tensors, config = small()
    target = tmp_path / "m.mtlm"
    target.write_bytes(b"the previous model")
    bad = dict(tensors, **{"linear.bias": np.array([np.inf], dtype=np.float32)})
    with pytest.raises(mtl_model.MTLModelError):
        mtl_model.save(target, bad, config)
    assert target.read_bytes() == b"the previous model" and os.listdir(tmp_path) == ["m.mtlm"]
    # A symbolic link is followed: the file it names is replaced, the link stays a link.
    real = tmp_path / "real.mtlm"
    shutil.copy(fixture("v1.0", "small.mtlm"), real)
    link = tmp_path / "link.mtlm"
    link.symlink_to(real)
    mtl_model.save(link, tensors, config)
    assert link.is_symlink() and mtl_model.load(real).form == "training"
    for refused in (tmp_path, "/dev/null"):
        with pytest.raises(mtl_model.MTLModelError, match="nothing was written"):
            mtl_model.save(refused, tensors, config)
    assert sorted(os.listdir(tmp_path)) == ["link.mtlm", "m.mtlm", "real.mtlm"]


SLACK = 64 << 10  # what a file system may hold beside the data (an extent tree's blocks)


def allocated(path):
    return os.stat(path).st_blocks * 512


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fallocate is Linux's")
def test_reserved_blocks_are_allocated_at_once(tmp_path):
    target = tmp_path / "out.bin"
    with _AtomicFile(str(target), fsync=False) as out:
        out.reserve(8 << 20)
        assert allocated(out.temporary) >= 8 << 20 and os.path.getsize(out.temporary) == 0
        out.write(bytes(8 << 20))
    assert os.path.getsize(target) == 8 << 20 and allocated(target) <= (8 << 20) + SLACK


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_a_saved_model_holds_no_block_past_its_end(compression, cli, tmp_path):
    config = {"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 625003}, {"name": "b", "vocab_size": 9}], "tasks": [{"name": "t"}]}
    (tmp_path / "c.json").write_text(json.dumps(config))
    status, _, err = cli("synth", tmp_path / "c.json", tmp_path / "swift.mtlm")
    assert status == 0, err
    tensors, config = tensors_of(tmp_path / "swift.mtlm")
    path = mtl_model.save(tmp_path / "py.mtlm", tensors, config, compression=compression, fsync=False)
    size = os.path.getsize(path)
    assert size > 4 << 20  # the table's 10 MB were reserved (uncompressed) or not (zlib)
    assert allocated(path) <= (size + 4095) // 4096 * 4096 + SLACK
    if compression is None:
        assert regions(path)[1] == regions(tmp_path / "swift.mtlm")[1]
    again = mtl_model.load(path)
    assert all(np.array_equal(again[n], tensors[n]) for n in tensors)


def test_a_model_saved_over_its_own_source_keeps_open_arrays_intact(tmp_path):
    path = tmp_path / "m.mtlm"
    shutil.copy(fixture("v1.0", "small-training.mtlm"), path)
    m = mtl_model.load(path)
    tensors = {name: m[name] for name in m}  # views of the mapped file
    before = {name: a.copy() for name, a in tensors.items()}
    mtl_model.save(path, tensors, m.config, metadata={"edited": "yes"})
    assert all(np.array_equal(tensors[n], before[n]) for n in tensors)
    again = mtl_model.load(path)
    assert again.metadata == {"edited": "yes"} and all(np.array_equal(again[n], before[n]) for n in before)


def test_config_typos_get_the_closest_key(tmp_path):
    tensors, config = small()
    config["embeding_dim"] = config.pop("embedding_dim")
    with pytest.raises(mtl_model.MTLModelError, match='missing \\(required\\); the config has "embeding_dim": a misspelling\\?'):
        mtl_model.save(tmp_path / "m.mtlm", tensors, config)
    config["embedding_dim"] = config.pop("embeding_dim")
    config["fields"][0]["vocab"] = 3
    with pytest.raises(mtl_model.MTLModelError, match='fields\\[0\\].vocab": unknown key; did you mean "vocab_size"\\?'):
        mtl_model.save(tmp_path / "m.mtlm", tensors, config)
    with pytest.raises(mtl_model.MTLModelError, match="not valid JSON at line 2, column 10"):
        mtl_model.save(tmp_path / "m.mtlm", tensors, '{\n  "a": 1 "b"\n}')


@pytest.mark.parametrize("threads", [1, 2, 64])  # one sort; 8 partitions; 16 (at most 4 threads)
def test_the_partitioned_duplicate_check_finds_what_one_sort_finds(threads, monkeypatch):
    from mtl_model import _verify
    monkeypatch.setattr(_verify, "thread_count", lambda: threads)
    rng = np.random.default_rng(threads)
    keys = rng.integers(-2**63, 2**63 - 1, size=(1 << 20) + 3, dtype=np.int64)
    assert _verify.first_duplicate(keys) is None
    # A duplicate in each partition in turn (16 covers every count the check uses), then
    # several at once, at either end, and -1 (2^64 - 1 unsigned: the smallest in int64 order).
    which = _verify._partition_numbers(keys, 4)
    cases = [[(int(np.flatnonzero(which == p)[0]), int(np.flatnonzero(which == p)[1]))] for p in range(16)]
    cases += [[(0, -1)], [(5, 7), (100, 1 << 19), (-2, 3)], [(1, 2), (11, 12)]]
    for positions in cases:
        copy = keys.copy()
        for i, j in positions:
            copy[i] = copy[j]
        if positions == [(1, 2), (11, 12)]:
            copy[[1, 2, 11, 12]] = [-1, -1, 1, 1]
        ordered = np.sort(copy)
        same = np.flatnonzero(ordered[1:] == ordered[:-1])
        assert _verify.first_duplicate(copy) == int(ordered[same[0]:same[0] + 1].view(np.uint64)[0]), positions
    assert _verify.first_duplicate(copy.reshape(-1, 1)) == 2**64 - 1
