"""How a sharded model splits its tables (docs/SHARDING.md): the same arithmetic as the Swift
`ShardLayout`, checked against the same vectors (fixtures/sharding/vectors.json)."""
import numpy as np

DEFAULT_BUCKET_BITS = 16
MAX_BUCKET_BITS = 24
_MASK = (1 << 64) - 1


def feature_hash(ids, seed):
    """SplitMix64's finalizer of ``id + seed + 0x9E3779B97F4A7C15`` (mod 2^64), for a scalar or
    an array of uint64 ids (int64 arrays are taken as their bits)."""
    z = (np.asarray(ids).astype(np.int64, copy=False).view(np.uint64) + np.uint64(seed & _MASK)
         + np.uint64(0x9E3779B97F4A7C15))
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def bucket(ids, seed, bucket_bits):
    """The top ``bucket_bits`` bits of each id's hash."""
    if not 0 <= bucket_bits <= MAX_BUCKET_BITS:
        raise ValueError("bucket_bits must be in 0...%d" % MAX_BUCKET_BITS)
    h = feature_hash(ids, seed)
    return h * np.uint64(0) if bucket_bits == 0 else h >> np.uint64(64 - bucket_bits)


def part(index, count, total):
    """Part ``index`` of ``count`` of ``range(total)``: [floor(k·total/count), floor((k+1)·total/count))."""
    if not (count > 0 and 0 <= index < count):
        raise ValueError("shard %d of %d" % (index, count))
    return range(index * total // count, (index + 1) * total // count)


def owner(element, count, total):
    """The part of ``count`` that holds ``element`` of ``range(total)``."""
    if not 0 <= element < total:
        raise ValueError("element %d of %d" % (element, total))
    k = element * count // total
    while k + 1 < count and part(k + 1, count, total).start <= element:
        k += 1
    while part(k, count, total).start > element:
        k -= 1
    return k
