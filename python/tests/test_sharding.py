"""mtl_model.sharding against the vectors of fixtures/sharding (computed with Python integers)."""
import json

import numpy as np

import pytest

import mtl_model
from mtl_model import sharding
from conftest import fixture

VECTORS = json.load(open(fixture("sharding", "vectors.json")))


def test_hashes_and_buckets():
    cases = VECTORS["hashes"]
    ids = np.array([int(c["id"]) for c in cases], dtype=np.uint64)
    for seed in {int(c["seed"]) for c in cases}:
        chosen = [i for i, c in enumerate(cases) if int(c["seed"]) == seed]
        assert sharding.feature_hash(ids[chosen], seed).tolist() == [int(cases[i]["hash"]) for i in chosen]
        assert sharding.bucket(ids[chosen], seed, 16).tolist() == [int(cases[i]["bucket16"]) for i in chosen]
        assert sharding.bucket(ids[chosen].view(np.int64), seed, 1).tolist() == [int(cases[i]["bucket1"]) for i in chosen]
        assert not sharding.bucket(ids[chosen], seed, 0).any()


def test_parts_and_owners():
    for c in VECTORS["parts"]:
        total, count, starts = int(c["total"]), c["count"], [int(s) for s in c["starts"]]
        assert [(p.start, p.stop) for p in (sharding.part(k, count, total) for k in range(count))] == list(zip(starts, starts[1:]))
        for element in sorted({0, total // 2, total - 1} | set(starts[:-1])):
            if 0 <= element < total:
                assert element in sharding.part(sharding.owner(element, count, total), count, total)


def test_sharded_model_refused_with_the_way_round(tmp_path, cli):
    """A root and a shard (format 1.3) are refused by name, not as an unknown feature."""
    root = tmp_path / "m.mtlm"
    status, _, err = cli("shard", fixture("v1.0/small-training.mtlm"), root, "--shards", "2")
    assert status == 0, err
    for path in (root, tmp_path / "m-00001-of-00002.mtlm"):
        with pytest.raises(mtl_model.MTLModelError, match="sharded model .*--shards 1"):
            mtl_model.load(str(path))
