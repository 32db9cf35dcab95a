"""Quant type resolution and input validation shared by every kernel entry point.

| type  | block | bytes | activation quantized as (ggml's vec_dot_type) |
|-------|------:|------:|------------------------------------------------|
| F32   |     1 |     4 | F32 (no quantization)                          |
| F16   |     1 |     2 | F16                                            |
| BF16  |     1 |     2 | BF16                                           |
| Q4_0  |    32 |    18 | Q8_0                                           |
| Q4_1  |    32 |    20 | Q8_1                                           |
| Q5_0  |    32 |    22 | Q8_0                                           |
| Q5_1  |    32 |    24 | Q8_1                                           |
| Q8_0  |    32 |    34 | Q8_0                                           |
| Q2_K  |   256 |    84 | Q8_K                                           |
| Q3_K  |   256 |   110 | Q8_K                                           |
| Q4_K  |   256 |   144 | Q8_K                                           |
| Q5_K  |   256 |   176 | Q8_K                                           |
| Q6_K  |   256 |   210 | Q8_K                                           |
| IQ4_NL|    32 |    18 | Q8_0                                           |
| IQ4_XS|   256 |   136 | Q8_K                                           |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from libp2pia.errors import QuantError

QType = GGMLQuantizationType

#: Types the kernels implement (dequantize, matvec, matmul).
SUPPORTED: tuple[QType, ...] = (
    QType.F32, QType.F16, QType.BF16,
    QType.Q4_0, QType.Q4_1, QType.Q5_0, QType.Q5_1, QType.Q8_0,
    QType.Q2_K, QType.Q3_K, QType.Q4_K, QType.Q5_K, QType.Q6_K,
    QType.IQ4_NL, QType.IQ4_XS,
)

#: ggml's vec_dot_type: how the activation is quantized before the integer block dot.
VEC_DOT_TYPE: dict[QType, QType] = {
    QType.F32: QType.F32, QType.F16: QType.F16, QType.BF16: QType.BF16,
    QType.Q4_0: QType.Q8_0, QType.Q5_0: QType.Q8_0, QType.Q8_0: QType.Q8_0,
    QType.Q4_1: QType.Q8_1, QType.Q5_1: QType.Q8_1,
    QType.Q2_K: QType.Q8_K, QType.Q3_K: QType.Q8_K, QType.Q4_K: QType.Q8_K,
    QType.Q5_K: QType.Q8_K, QType.Q6_K: QType.Q8_K,
    QType.IQ4_NL: QType.Q8_0, QType.IQ4_XS: QType.Q8_K,
}


@dataclass(frozen=True)
class Spec:
    qtype: QType
    block: int       # elements per block
    type_size: int   # bytes per block

    def row_bytes(self, cols: int) -> int:
        return cols // self.block * self.type_size

    def cols(self, row_bytes: int) -> int:
        return row_bytes // self.type_size * self.block


def resolve(qtype: QType | str | int) -> Spec:
    """Accept a GGMLQuantizationType, its name ("Q4_K") or its id; refuse what we do not implement."""
    try:
        if isinstance(qtype, QType):
            t = qtype
        elif isinstance(qtype, str):
            t = QType[qtype.upper()]
        elif isinstance(qtype, (int, np.integer)):
            t = QType(int(qtype))
        else:
            raise TypeError(type(qtype).__name__)
    except (KeyError, ValueError, TypeError) as exc:
        raise QuantError(f"unknown quant type {qtype!r}") from exc
    if t not in SUPPORTED:
        raise QuantError(f"quant type {t.name} is not supported by libp2pia.quant "
                         f"(supported: {', '.join(s.name for s in SUPPORTED)})")
    block, size = GGML_QUANT_SIZES[t]
    return Spec(t, block, size)


def as_bytes_2d(weights: np.ndarray, spec: Spec) -> np.ndarray:
    """View a weight matrix as C-contiguous uint8 (rows, row_bytes) and check it is whole blocks."""
    w = np.asarray(weights)
    if w.ndim != 2:
        raise QuantError(f"{spec.qtype.name} weights must be 2-D (rows, row_bytes), got shape {w.shape}")
    if w.dtype != np.uint8:
        # F32/F16 tensors come out of GGUFReader typed; their bytes are what we want.
        w = np.ascontiguousarray(w)
        w = w.view(np.uint8).reshape(w.shape[0], -1)
    w = np.ascontiguousarray(w)
    if w.shape[1] == 0 or w.shape[1] % spec.type_size:
        raise QuantError(f"{spec.qtype.name} row of {w.shape[1]} bytes is not a whole number of "
                         f"{spec.type_size}-byte blocks")
    return w


def check_cols(cols: int, spec: Spec, what: str = "column count") -> None:
    if cols <= 0 or cols % spec.block:
        raise QuantError(f"{what} {cols} is not a positive multiple of the {spec.qtype.name} "
                         f"block size {spec.block}")


def as_raw_1d(raw: object, spec: Spec, shape: tuple[int, ...]) -> np.ndarray:
    """Raw bytes (bytes, memoryview or any ndarray) as flat uint8, checked against shape."""
    if len(shape) == 0:
        raise QuantError("shape must have at least one dimension")
    if any(int(s) < 0 for s in shape):
        raise QuantError(f"negative dimension in shape {shape}")
    check_cols(int(shape[-1]), spec, "row length (shape[-1])")
    try:
        a = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray, memoryview)) \
            else np.ascontiguousarray(raw).view(np.uint8).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise QuantError(f"cannot read {spec.qtype.name} raw data as bytes: {exc}") from exc
    n = int(np.prod(shape, dtype=np.int64))
    want = n // spec.block * spec.type_size
    if a.size != want:
        raise QuantError(f"{spec.qtype.name} data of shape {tuple(shape)} needs {want} bytes, got {a.size}")
    return a
