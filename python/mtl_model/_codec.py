"""Decoding of stored elements to float32: half precision and the row-wise quantized types of
docs/FORMAT.md (1.1). Arithmetic in float32, one rounding per operation (``scale * q + bias``),
so that the values are bit-identical to what `mtl-model dequantize` writes."""
import numpy as np


def rows_view(raw, info):
    """The stored bytes of a quantized tensor as a [rows, bytes per row] uint8 array."""
    columns = info.shape[-1]
    row_bytes = info.dtype.row_bytes(columns)
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, row_bytes), columns


def decode(raw, info):
    """float32 values of a tensor's logical bytes ``raw``, in its logical shape."""
    name = info.dtype.name
    if name == "float32":
        return np.frombuffer(raw, dtype="<f4").reshape(info.shape).copy()
    if name == "float16":
        return np.frombuffer(raw, dtype="<f2").astype(np.float32).reshape(info.shape)
    if name == "bfloat16":
        return bfloat16_to_float32(np.frombuffer(raw, dtype="<u2")).reshape(info.shape)
    if name in ("int64", "uint64"):
        return np.frombuffer(raw, dtype="<i8" if name == "int64" else "<u8").astype(np.float32).reshape(info.shape)
    rows, columns = rows_view(raw, info)
    scale, bias = quantized_parameters(rows, info)
    if name == "int8-rowwise":
        q = rows[:, :columns].astype(np.float32)
    elif name == "int4-rowwise":
        packed = rows[:, :(columns + 1) // 2]
        q = np.empty((rows.shape[0], packed.shape[1] * 2), dtype=np.uint8)
        q[:, 0::2], q[:, 1::2] = packed & 0x0F, packed >> 4
        q = q[:, :columns].astype(np.float32)
    else:
        q = rows[:, :columns].view(np.int8).astype(np.float32)
    values = q * scale[:, None]
    if bias is not None:
        values = values + bias[:, None]
    return values.astype(np.float32, copy=False).reshape(info.shape)


def quantized_parameters(rows, info):
    """(scale, bias) per row as float32; bias None for the symmetric type."""
    columns = info.shape[-1]
    name = info.dtype.name
    if name == "int8-rowwise":
        p = np.ascontiguousarray(rows[:, columns:columns + 8]).view("<f4")
        return p[:, 0].astype(np.float32), p[:, 1].astype(np.float32)
    if name == "int4-rowwise":
        start = (columns + 1) // 2
        p = np.ascontiguousarray(rows[:, start:start + 4]).view("<f2").astype(np.float32)
        return p[:, 0], p[:, 1]
    p = np.ascontiguousarray(rows[:, columns:columns + 4]).view("<f4")
    return p[:, 0].astype(np.float32), None


def bfloat16_to_float32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)
