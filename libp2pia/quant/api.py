"""Public entry points of libp2pia.quant: dequantize, matvec, matmul, prepare, warmup.

Two arithmetic paths (see docs/kernels.md):

| mode    | activation                                  | agrees with                       |
|---------|---------------------------------------------|-----------------------------------|
| "ggml"  | quantized like ggml (Q8_0/Q8_1/Q8_K/F16)    | ggml's vec_dot, ~1e-6 rel per row |
| "exact" | float32 as given                            | dequantize(W) @ x in float64      |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal

import numpy as np
from gguf import quants as gguf_quants

from libp2pia.errors import QuantError
from libp2pia.quant.qtypes import QType, Spec, as_bytes_2d, as_raw_1d, check_cols, resolve

Mode = Literal["ggml", "exact"]
MODES: tuple[str, ...] = ("ggml", "exact")


@dataclass(frozen=True, eq=False)
class PreparedMatrix:
    """A weight matrix re-laid-out once at load time for the kernels.

    `raw` keeps the GGUF bytes (rows, row_bytes); `planes` holds the kernel's in-memory form.
    """

    qtype: QType
    rows: int
    cols: int
    raw: np.ndarray
    planes: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return int(self.raw.nbytes + sum(p.nbytes for p in self.planes.values()))


def dequantize(raw: object, qtype: QType | str, shape: tuple[int, ...] | list[int]) -> np.ndarray:
    """Raw GGUF bytes -> float32 array of `shape` (numpy order: last axis = row length in elements).

    Bit-identical to gguf.quants.dequantize.
    """
    spec = resolve(qtype)
    shape = tuple(int(s) for s in shape)
    a = as_raw_1d(raw, spec, shape)
    return _dequantize_flat(a, spec).reshape(shape)


def prepare(weights: np.ndarray | PreparedMatrix, qtype: QType | str) -> PreparedMatrix:
    """Check `weights` (uint8 (rows, row_bytes)) once and build the kernel layout."""
    spec = resolve(qtype)
    if isinstance(weights, PreparedMatrix):
        if weights.qtype != spec.qtype:
            raise QuantError(f"prepared matrix is {weights.qtype.name}, not {spec.qtype.name}")
        return weights
    w = as_bytes_2d(weights, spec)
    return PreparedMatrix(spec.qtype, w.shape[0], spec.cols(w.shape[1]), w, _build_planes(w, spec))


def matvec(weights: np.ndarray | PreparedMatrix, qtype: QType | str, x: np.ndarray,
           mode: Mode = "ggml") -> np.ndarray:
    """y = W x. `weights` uint8 (rows, row_bytes) or a PreparedMatrix, x float32 (cols,) -> y float32 (rows,)."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise QuantError(f"matvec needs a 1-D x, got shape {x.shape}")
    return matmul(weights, qtype, x[None, :], mode)[0]


def matmul(weights: np.ndarray | PreparedMatrix, qtype: QType | str, X: np.ndarray,
           mode: Mode = "ggml") -> np.ndarray:
    """Y = X W^T. X float32 (n, cols) -> Y float32 (n, rows); each weight block is loaded once per batch."""
    if mode not in MODES:
        raise QuantError(f"unknown arithmetic mode {mode!r} (choose from {MODES})")
    pm = prepare(weights, qtype)
    spec = resolve(pm.qtype)
    X = np.asarray(X)
    if X.ndim != 2:
        raise QuantError(f"matmul needs a 2-D X (n, cols), got shape {X.shape}")
    if X.shape[1] != pm.cols:
        raise QuantError(f"X has {X.shape[1]} columns but the {spec.qtype.name} matrix has {pm.cols}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    return _matmul(pm, spec, X, mode)


def warmup(qtypes: Iterable[QType | str]) -> dict[str, float]:
    """Compile (or load from the numba cache) every kernel the given types need; seconds per type."""
    import time

    out: dict[str, float] = {}
    for q in qtypes:
        spec = resolve(q)
        t0 = time.perf_counter()
        cols = spec.block * (256 // spec.block if spec.block < 256 else 1)
        w = np.zeros((2, spec.row_bytes(cols)), np.uint8)
        x = np.zeros((1, cols), np.float32)
        for m in MODES:
            matmul(w, spec.qtype, x, m)
        dequantize(w, spec.qtype, (2, cols))
        out[spec.qtype.name] = time.perf_counter() - t0
    return out


# --- implementation (reference path; numba kernels replace these) ----------

def _dequantize_flat(a: np.ndarray, spec: Spec) -> np.ndarray:
    return np.asarray(gguf_quants.dequantize(a, spec.qtype), dtype=np.float32).reshape(-1)


def _build_planes(w: np.ndarray, spec: Spec) -> dict[str, np.ndarray]:
    return {}


def _matmul(pm: PreparedMatrix, spec: Spec, X: np.ndarray, mode: str) -> np.ndarray:
    W = _dequantize_flat(pm.raw.reshape(-1), spec).reshape(pm.rows, pm.cols)
    return (X.astype(np.float64) @ W.T.astype(np.float64)).astype(np.float32)
