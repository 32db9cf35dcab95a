"""Tensors on the wire: numpy array <-> ``libp2pia.Tensor`` with strict validation.

| dtype    | itemsize | use                                              |
|----------|----------|--------------------------------------------------|
| float16  | 2        | activations, the default                         |
| bfloat16 | 2        | activations whose range overflows float16        |
| float32  | 4        | activations on request (exactness over bytes)    |
| int32    | 4        | token ids                                        |

Decoding returns float32 for every float dtype (what the engine computes in)
and int32 for int32; the result is a fresh writable array.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ProtocolError
from ..limits import MAX_MESSAGE_BYTES, MAX_TENSOR_DIMS
from . import libp2pia_pb2 as pb

DTYPES: dict[str, int] = {
    "float32": pb.Tensor.FLOAT32,
    "float16": pb.Tensor.FLOAT16,
    "bfloat16": pb.Tensor.BFLOAT16,
    "int32": pb.Tensor.INT32,
}
DTYPE_NAMES: dict[int, str] = {v: k for k, v in DTYPES.items()}
ITEMSIZE: dict[int, int] = {pb.Tensor.FLOAT32: 4, pb.Tensor.FLOAT16: 2, pb.Tensor.BFLOAT16: 2, pb.Tensor.INT32: 4}
FLOAT_DTYPES = ("float32", "float16", "bfloat16")
DEFAULT_ACTIVATION_DTYPE = "float16"


def dtype_code(name: str) -> int:
    """Protobuf enum value of a dtype name; ProtocolError for an unknown name."""
    try:
        return DTYPES[name]
    except KeyError:
        raise ProtocolError(f"unknown tensor dtype {name!r} (known: {', '.join(DTYPES)})") from None


def _to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even, NaN kept NaN."""
    u = np.ascontiguousarray(x, dtype="<f4").view("<u4")
    rounded = ((u + (((u >> 16) & 1) + 0x7FFF)) >> 16).astype("<u2")
    nan = np.isnan(x)
    if nan.any():
        rounded[nan] = ((u[nan] >> 16) | 0x40).astype("<u2")
    return rounded


def _from_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    return (bits.astype("<u4") << 16).view("<f4")


def _as_float16(a: np.ndarray) -> np.ndarray | None:
    """``a`` as little-endian float16, or None if a finite value is beyond float16's range (65504)."""
    with np.errstate(over="ignore"):
        h = np.ascontiguousarray(a, dtype="<f2")
    return h if np.array_equal(np.isfinite(h), np.isfinite(a)) else None


def wire_round(arr: np.ndarray, dtype: str) -> np.ndarray:
    """The float32 values ``arr`` has after an encode/decode round trip in ``dtype`` (a fresh array):
    what a worker computing several phases in one run uses where the phase-by-phase path would have
    sent the tensor over the wire, so both paths compute the same numbers."""
    a = np.asarray(arr, np.float32)
    if dtype == "float16":
        h = _as_float16(a)
        return a.copy() if h is None else h.astype(np.float32)
    if dtype == "bfloat16":
        return _from_bfloat16_bits(_to_bfloat16_bits(a)).reshape(a.shape)
    if dtype == "float32":
        return a.copy()
    raise ProtocolError(f"{dtype!r} is not a float wire dtype ({', '.join(FLOAT_DTYPES)})")


def encode_tensor(arr: np.ndarray, dtype: str | None = None) -> pb.Tensor:
    """Encode ``arr``. Floats default to float16; integer arrays travel as int32."""
    a = np.asarray(arr)
    if dtype is None:
        dtype = "int32" if a.dtype.kind in "iu" else DEFAULT_ACTIVATION_DTYPE
    code = dtype_code(dtype)
    if a.ndim > MAX_TENSOR_DIMS:
        raise ProtocolError(f"tensor of {a.ndim} dimensions (limit {MAX_TENSOR_DIMS})")
    if dtype == "int32":
        if a.dtype.kind not in "iu":
            raise ProtocolError(f"int32 wire dtype for a {a.dtype} array")
        data = np.ascontiguousarray(a, dtype="<i4").tobytes()
    elif dtype == "bfloat16":
        data = _to_bfloat16_bits(a.astype(np.float32, copy=False)).tobytes()
    elif dtype == "float16":
        h = _as_float16(a)
        if h is None:
            # A finite value beyond float16's range (65504) would arrive as inf:
            # send this tensor as float32 instead (exact, twice the bytes).
            return encode_tensor(a, "float32")
        data = h.tobytes()
    else:
        data = np.ascontiguousarray(a, dtype="<f4").tobytes()
    return pb.Tensor(dtype=code, shape=list(a.shape), data=data)


def decode_tensor(msg: pb.Tensor, *, allowed: tuple[str, ...] | None = None) -> np.ndarray:
    """Validate and decode; ProtocolError if dtype, shape and byte length disagree."""
    name = DTYPE_NAMES.get(msg.dtype)
    if name is None:
        raise ProtocolError(f"tensor dtype code {msg.dtype} is not one of {sorted(DTYPES)}")
    if allowed is not None and name not in allowed:
        raise ProtocolError(f"tensor dtype {name} where {'/'.join(allowed)} was expected")
    shape = tuple(int(d) for d in msg.shape)
    if len(shape) > MAX_TENSOR_DIMS:
        raise ProtocolError(f"tensor of {len(shape)} dimensions (limit {MAX_TENSOR_DIMS})")
    count = math.prod(shape)
    if count * ITEMSIZE[msg.dtype] > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"tensor shape {shape} exceeds the message limit")
    expected = count * ITEMSIZE[msg.dtype]
    if len(msg.data) != expected:
        raise ProtocolError(
            f"tensor {name}{list(shape)} needs {expected} bytes, message has {len(msg.data)}"
        )
    if name == "int32":
        return np.frombuffer(msg.data, dtype="<i4").astype(np.int32).reshape(shape)
    if name == "bfloat16":
        return _from_bfloat16_bits(np.frombuffer(msg.data, dtype="<u2")).astype(np.float32).reshape(shape)
    src = "<f4" if name == "float32" else "<f2"
    return np.frombuffer(msg.data, dtype=src).astype(np.float32).reshape(shape)
