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


@dataclass
class FusedRows:
    """Several matrices that read the same input, stacked by rows where their type and width agree, so
    one kernel call (one activation quantization, one parallel region) serves them all. Row results are
    identical to separate calls; `__call__` returns one output per original matrix, in order."""

    groups: list[QMatrix]
    parts: list[tuple[int, int, int]]     # per original matrix: (group, first row, end row)

    @classmethod
    def of(cls, named: list[tuple[str, np.ndarray, GGMLQuantizationType | str, int]]) -> "FusedRows":
        """`named`: (name, raw rows, qtype, cols) per matrix, all with the same cols."""
        keys: list[tuple[str, int]] = []
        members: list[list[int]] = []
        for i, (_, _, qt, cols) in enumerate(named):
            key = (GGMLQuantizationType[qt].name if isinstance(qt, str) else GGMLQuantizationType(qt).name, cols)
            if key not in keys:
                keys.append(key)
                members.append([])
            members[keys.index(key)].append(i)
        groups: list[QMatrix] = []
        parts: list[tuple[int, int, int]] = [(0, 0, 0)] * len(named)
        for g, idx in enumerate(members):
            raws, row = [], 0
            for i in idx:
                raw = np.asarray(named[i][1])
                raws.append(raw)
                parts[i] = (g, row, row + raw.shape[0])
                row += raw.shape[0]
            stacked = raws[0] if len(raws) == 1 else np.concatenate(raws)
            name = "+".join(named[i][0] for i in idx)
            groups.append(QMatrix.from_raw(name, stacked, named[idx[0]][2], named[idx[0]][3]))
        return cls(groups, parts)

    def rows(self, i: int) -> int:
        _, a, b = self.parts[i]
        return b - a

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        outs = [g(x) for g in self.groups]
        return [outs[g][:, a:b] for g, a, b in self.parts]
