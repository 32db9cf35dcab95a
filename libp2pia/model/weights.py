"""A quantized weight matrix as the shards hold it: raw GGUF rows + type, products via libp2pia.quant."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gguf import GGMLQuantizationType

from .. import quant
from ..errors import ModelError

F32 = np.float32


@dataclass
class QMatrix:
    """rows × cols weights (rows = output features), stored as GGUF bytes (rows, row_bytes).

    `prepared` is the kernels' load-time layout (libp2pia.quant.prepare); products
    pick matvec for one row of input (decode) and matmul for a batch (prompt).
    """

    name: str
    qtype: GGMLQuantizationType
    rows: int
    cols: int
    prepared: object

    @classmethod
    def from_raw(cls, name: str, raw: np.ndarray, qtype: GGMLQuantizationType | str, cols: int) -> "QMatrix":
        qt = GGMLQuantizationType[qtype] if isinstance(qtype, str) else GGMLQuantizationType(qtype)
        raw = np.asarray(raw)
        if qt == GGMLQuantizationType.F32 and raw.dtype != np.uint8:
            raw = np.ascontiguousarray(raw, F32).view(np.uint8)
        elif qt == GGMLQuantizationType.F16 and raw.dtype != np.uint8:
            raw = np.ascontiguousarray(raw, np.float16).view(np.uint8)
        if raw.ndim != 2:
            raise ModelError(f"{name}: expected 2-D raw rows, got shape {raw.shape}")
        prepared = quant.prepare(np.ascontiguousarray(raw), qt)
        return cls(name, qt, int(raw.shape[0]), int(cols), prepared)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """y = x W^T for x (n, cols) -> (n, rows); matvec when n == 1."""
        if x.shape[0] == 1:
            return quant.matvec(self.prepared, self.qtype, x[0])[None, :]
        return quant.matmul(self.prepared, self.qtype, x)

    def rows_dequantized(self, idx: np.ndarray) -> np.ndarray:
        """The float32 rows `idx` (embedding lookup, ggml_get_rows)."""
        raw = self.prepared.raw if hasattr(self.prepared, "raw") else self.prepared
        sel = np.ascontiguousarray(raw[np.asarray(idx, np.int64)])
        return quant.dequantize(sel, self.qtype, (len(idx), self.cols))
