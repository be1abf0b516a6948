"""mtl_model.sharding against the vectors of fixtures/sharding (computed with Python integers)."""
import json

import numpy as np

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
