"""Writes the predict benchmark's config (p40.json) and 100k samples (p40.txt) into WORK_DIR:
40 fields (4 of 1M rows, one keyed), K = 16, 3 groups, interaction+groups, shared
[512, 256, 128, 64] with batch norm first, towers [64], lexicographic fusion; ids uniform.

usage: make-p40.py WORK_DIR
"""
import json, os, random, sys
work = sys.argv[1]
random.seed(1)
fields = [{"name": "f%d" % i, "vocab_size": 1000000 if i < 4 else 10000, "mapping": "keyed" if i == 1 else "modulo",
           "group": ["user", "item", "context"][i % 3]} for i in range(40)]
config = {"embedding_dim": 16, "groups": ["user", "item", "context"], "fields": fields, "interaction": {"intra": True},
          "linear": True, "bottom_input": "interaction+groups",
          "shared": [{"units": 512, "batch_norm": True}, {"units": 256}, {"units": 128}, {"units": 64}],
          "tasks": [{"name": "ctr", "tower": [{"units": 64}], "use_linear": True}, {"name": "follow", "tower": [{"units": 64}]}],
          "fusion": {"type": "lexicographic", "bucket": 0.01}}
json.dump(config, open(os.path.join(work, "p40.json"), "w"))
if not os.path.exists(os.path.join(work, "p40.txt")):
    with open(os.path.join(work, "p40.txt"), "w") as f:
        for _ in range(100000):
            tokens = ["%d,%d" % (random.random() < 0.1, random.random() < 0.01)]
            for i in range(40):
                for _ in range(2 if i % 4 == 0 else 1):
                    tokens.append("f%d:%d" % (i, random.randrange(2000000)))
            f.write(" ".join(tokens) + "\n")
