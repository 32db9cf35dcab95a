"""Load-time unpacking of GGUF blocks into the kernels' common form (see _kernels.py).

    w = d[sb] * sc[j] * q[j, l]  -  dmin[sb] * mn[j]

| type   | sub | sub-blocks per super-block | q range (offset applied) | sc        | mn / dmin            |
|--------|----:|---------------------------:|--------------------------|-----------|----------------------|
| Q4_0   |  32 |  1 | -8..7                    | 1         | 0                    |
| Q4_1   |  32 |  1 | 0..15                    | 1         | -1 / m               |
| Q5_0   |  32 |  1 | -16..15                  | 1         | 0                    |
| Q5_1   |  32 |  1 | 0..31                    | 1         | -1 / m               |
| Q8_0   |  32 |  1 | -128..127                | 1         | 0                    |
| IQ4_NL |  32 |  1 | kvalues -127..113        | 1         | 0                    |
| Q2_K   |  16 | 16 | 0..3                     | 0..15     | 0..15 / dmin         |
| Q3_K   |  16 | 16 | -4..3                    | -32..31   | 0                    |
| Q4_K   |  32 |  8 | 0..15                    | 0..63     | 0..63 / dmin         |
| Q5_K   |  32 |  8 | 0..31                    | 0..63     | 0..63 / dmin         |
| Q6_K   |  16 | 16 | -32..31                  | -128..127 | 0                    |
| IQ4_XS |  32 |  8 | kvalues -127..113        | -32..31   | 0                    |
| F32/F16/BF16 | row | 1 | float32 values       | 1         | 0                    |

Memory: one byte per weight plus 2 bytes per sub-block and 8 per super-block (Q4_K: 4.5 -> 9.3 bits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from gguf import quants as gq

from libp2pia.quant.qtypes import QType, Spec

IQ4_KVALUES = np.array(gq.IQ4_NL.kvalues, dtype=np.int8)
FLOAT_TYPES = (QType.F32, QType.F16, QType.BF16)


@dataclass(frozen=True)
class Unpacked:
    """Per-row arrays: q (R, nsub, sub), sc/mn (R, nsub) int8, d/dmin (R, nsb) float32."""

    q: np.ndarray
    sc: np.ndarray
    mn: np.ndarray
    d: np.ndarray
    dmin: np.ndarray

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.q, self.sc, self.mn, self.d, self.dmin))


def _f16(b: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(b).view(np.float16).astype(np.float32).reshape(-1)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """(N, 16k) bytes -> (N, 32k): low nibbles of each 16-byte group, then its high nibbles."""
    n = qs.shape[0]
    g = qs.reshape(n, -1, 1, 16) >> np.array([0, 4], np.uint8).reshape(1, 1, 2, 1)
    return (g & np.uint8(15)).reshape(n, -1)


def _bits32(qh: np.ndarray) -> np.ndarray:
    """(N, 4) bytes read as LE u32 -> (N, 32) bits."""
    v = np.ascontiguousarray(qh).view(np.uint32).reshape(-1, 1)
    return ((v >> np.arange(32, dtype=np.uint32)) & 1).astype(np.uint8)


# Each unpacker: blocks uint8 (N, type_size) -> (q (N, spb, sub), sc (N, spb), mn (N, spb), d (N,), dmin (N,)).
# None for sc/mn/dmin means "1"/"0"/"0".
Parts = tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray, np.ndarray | None]


def _MINUS1(n: int) -> np.ndarray:
    # w = d*q + m is stored as d*q - m*(-1): same bits as gguf-py's sum, NaN signs included.
    return np.full((n, 1), -1, np.int8)


def _q4_0(b: np.ndarray) -> Parts:
    return (_nibbles(b[:, 2:]).astype(np.int8) - 8)[:, None], None, None, _f16(b[:, :2]), None


def _q4_1(b: np.ndarray) -> Parts:
    n = b.shape[0]
    return _nibbles(b[:, 4:]).astype(np.int8)[:, None], None, _MINUS1(n), _f16(b[:, :2]), _f16(b[:, 2:4])


def _q5_0(b: np.ndarray) -> Parts:
    q = (_nibbles(b[:, 6:]) | (_bits32(b[:, 2:6]) << 4)).astype(np.int8) - 16
    return q[:, None], None, None, _f16(b[:, :2]), None


def _q5_1(b: np.ndarray) -> Parts:
    n = b.shape[0]
    q = (_nibbles(b[:, 8:]) | (_bits32(b[:, 4:8]) << 4)).astype(np.int8)
    return q[:, None], None, _MINUS1(n), _f16(b[:, :2]), _f16(b[:, 2:4])


def _q8_0(b: np.ndarray) -> Parts:
    return np.ascontiguousarray(b[:, 2:]).view(np.int8)[:, None], None, None, _f16(b[:, :2]), None


def _iq4_nl(b: np.ndarray) -> Parts:
    return IQ4_KVALUES[_nibbles(b[:, 2:])][:, None], None, None, _f16(b[:, :2]), None


def _q2_k(b: np.ndarray) -> Parts:
    n = b.shape[0]
    scales, qs = b[:, :16], b[:, 16:80]
    q = (qs.reshape(n, -1, 1, 32) >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)) & np.uint8(3)
    return (q.reshape(n, 16, 16).astype(np.int8), (scales & 15).astype(np.int8), (scales >> 4).astype(np.int8),
            _f16(b[:, 80:82]), _f16(b[:, 82:84]))


def _q3_k(b: np.ndarray) -> Parts:
    n = b.shape[0]
    hmask, qs, scales = b[:, :32], b[:, 32:96], b[:, 96:108]
    ls = (scales[:, :8].reshape(n, 1, 8) >> np.array([0, 4], np.uint8).reshape(1, 2, 1)).reshape(n, 16)
    hs = (scales[:, 8:].reshape(n, 1, 4) >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 4, 1)).reshape(n, 16)
    sc = ((ls & 15) | ((hs & 3) << 4)).astype(np.int8) - 32
    ql = (qs.reshape(n, -1, 1, 32) >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)).reshape(n, 16, 16) & 3
    qh = (hmask.reshape(n, -1, 1, 32) >> np.arange(8, dtype=np.uint8).reshape(1, 1, 8, 1)).reshape(n, 16, 16) & 1
    q = ql.astype(np.int8) - ((qh ^ 1) << 2).astype(np.int8)  # offset 4 applies where the hmask bit is 0
    return q, sc, None, _f16(b[:, 108:110]), None


def _q4_k(b: np.ndarray) -> Parts:
    n = b.shape[0]
    sc, m = gq.Q4_K.get_scale_min(np.ascontiguousarray(b[:, 4:16]))
    q = _nibbles32(b[:, 16:144]).reshape(n, 8, 32)
    return q.astype(np.int8), sc.astype(np.int8), m.astype(np.int8), _f16(b[:, :2]), _f16(b[:, 2:4])


def _q5_k(b: np.ndarray) -> Parts:
    n = b.shape[0]
    sc, m = gq.Q4_K.get_scale_min(np.ascontiguousarray(b[:, 4:16]))
    qh = (b[:, 16:48].reshape(n, 1, 32) >> np.arange(8, dtype=np.uint8).reshape(1, 8, 1)) & 1
    q = _nibbles32(b[:, 48:176]).reshape(n, 8, 32) | (qh << 4)
    return q.astype(np.int8), sc.astype(np.int8), m.astype(np.int8), _f16(b[:, :2]), _f16(b[:, 2:4])


def _q6_k(b: np.ndarray) -> Parts:
    n = b.shape[0]
    ql, qh = b[:, :128], b[:, 128:192]
    lo = ((ql.reshape(n, -1, 1, 64) >> np.array([0, 4], np.uint8).reshape(1, 1, 2, 1)) & 15).reshape(n, -1, 32)
    hi = ((qh.reshape(n, -1, 1, 32) >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)) & 3).reshape(n, -1, 32)
    q = (lo | (hi << 4)).astype(np.int8) - 32
    return q.reshape(n, 16, 16), np.ascontiguousarray(b[:, 192:208]).view(np.int8), None, _f16(b[:, 208:210]), None


def _iq4_xs(b: np.ndarray) -> Parts:
    n = b.shape[0]
    sh = np.ascontiguousarray(b[:, 2:4]).view(np.uint16).reshape(n, 1)
    sl = (b[:, 4:8].reshape(n, -1, 1) >> np.array([0, 4], np.uint8).reshape(1, 1, 2)).reshape(n, 8) & 15
    hi = ((sh >> (2 * np.arange(8, dtype=np.uint16))) & 3).astype(np.uint8)
    sc = (sl | (hi << 4)).astype(np.int8) - 32
    return IQ4_KVALUES[_nibbles(b[:, 8:136])].reshape(n, 8, 32), sc, None, _f16(b[:, :2]), None


def _nibbles32(qs: np.ndarray) -> np.ndarray:
    """K-quant nibble order: each 32-byte group gives 32 low nibbles, then 32 high nibbles."""
    n = qs.shape[0]
    g = qs.reshape(n, -1, 1, 32) >> np.array([0, 4], np.uint8).reshape(1, 1, 2, 1)
    return (g & np.uint8(15)).reshape(n, -1)


#: type -> (sub-block length, sub-blocks per block, unpacker)
UNPACKERS: dict[QType, tuple[int, int, Callable[[np.ndarray], Parts]]] = {
    QType.Q4_0: (32, 1, _q4_0), QType.Q4_1: (32, 1, _q4_1), QType.Q5_0: (32, 1, _q5_0),
    QType.Q5_1: (32, 1, _q5_1), QType.Q8_0: (32, 1, _q8_0), QType.IQ4_NL: (32, 1, _iq4_nl),
    QType.Q2_K: (16, 16, _q2_k), QType.Q3_K: (16, 16, _q3_k), QType.Q4_K: (32, 8, _q4_k),
    QType.Q5_K: (32, 8, _q5_k), QType.Q6_K: (16, 16, _q6_k), QType.IQ4_XS: (32, 8, _iq4_xs),
}


def float_values(w: np.ndarray, qtype: QType) -> np.ndarray:
    """F32/F16/BF16 row bytes (rows, row_bytes) -> float32 (rows, cols), exactly as gguf-py decodes them."""
    if qtype == QType.F32:
        return w.view(np.float32)
    if qtype == QType.F16:
        return w.view(np.float16).astype(np.float32)
    return (w.view(np.uint16).astype(np.uint32) << 16).view(np.float32)


def interleave_rows(q: np.ndarray, nblocks: int, group: int = 4) -> np.ndarray:
    """A copy of q (R, ...) with each group of `group` rows stored block by block: block b of rows
    r..r+group-1 side by side, then block b+1 (the order a 4-row kernel reads; ggml repacks Q4_0/Q8_0
    into x4 blocks the same way). Shape unchanged; R must be a multiple of `group`."""
    rows = q.shape[0]
    per_block = q[0].size // nblocks
    flat = q.reshape(rows // group, group, nblocks, per_block).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(flat).reshape(q.shape)


def unpack(w: np.ndarray, spec: Spec, pad_rows_to: int = 1) -> Unpacked:
    """uint8 (rows, row_bytes) -> Unpacked with rows padded (zeros) to a multiple of `pad_rows_to`."""
    rows = w.shape[0]
    prow = -(-rows // pad_rows_to) * pad_rows_to
    if spec.qtype in FLOAT_TYPES:
        v = float_values(w, spec.qtype)
        cols = v.shape[1]
        q = np.zeros((prow, 1, cols), np.float32)
        q[:rows, 0] = v
        return Unpacked(q, np.ones((prow, 1), np.int8), np.zeros((prow, 1), np.int8),
                        np.ones((prow, 1), np.float32), np.zeros((prow, 1), np.float32))
    sub, spb, fn = UNPACKERS[spec.qtype]
    nblk = w.shape[1] // spec.type_size
    q, sc, mn, d, dmin = fn(w.reshape(rows * nblk, spec.type_size))
    out = Unpacked(np.zeros((prow, nblk * spb, sub), np.int8), np.ones((prow, nblk * spb), np.int8),
                   np.zeros((prow, nblk * spb), np.int8), np.zeros((prow, nblk), np.float32),
                   np.zeros((prow, nblk), np.float32))
    out.q[:rows] = q.reshape(rows, nblk * spb, sub)
    if sc is not None:
        out.sc[:rows] = sc.reshape(rows, nblk * spb)
    if mn is not None:
        out.mn[:rows] = mn.reshape(rows, nblk * spb)
    out.d[:rows] = d.reshape(rows, nblk)
    if dmin is not None:
        out.dmin[:rows] = dmin.reshape(rows, nblk)
    return out
