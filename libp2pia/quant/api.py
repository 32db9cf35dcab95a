"""Public entry points of libp2pia.quant: dequantize, matvec, matmul, prepare, warmup.

Two arithmetic paths (see docs/kernels.md):

| mode    | activation                                  | agrees with                       |
|---------|---------------------------------------------|-----------------------------------|
| "ggml"  | quantized like ggml (Q8_0/Q8_1/Q8_K/F16)    | ggml's vec_dot (<= 5e-8 sum|w x|) |
| "exact" | float32 as given                            | dequantize(W) @ x in float64      |
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Iterable, Literal

import numba
import numpy as np

from libp2pia.errors import QuantError
from libp2pia.limits import KERNEL_PARALLEL_MIN_BYTES
from libp2pia.quant import _kernels as K
from libp2pia.quant import _simd as S
from libp2pia.quant._simd import HAS_AVX2, dot_rows_i8, dot_rows_i8_serial
from libp2pia.quant.layout import FLOAT_TYPES, Unpacked, float_values, interleave_rows, unpack
from libp2pia.quant.qtypes import VEC_DOT_TYPE, QType, Spec, as_bytes_2d, as_raw_1d, resolve

Mode = Literal["ggml", "exact"]
MODES: tuple[str, ...] = ("ggml", "exact")


class PreparedMatrix:
    """A weight matrix checked and re-laid-out once at load time; accepted by matvec/matmul.

    `raw` keeps the GGUF bytes (rows, row_bytes). The kernels' forms are built on first use and kept:
    `simd_form` for mode="ggml" on AVX2 CPUs (Q4_K, Q5_0 and Q6_K keep their GGUF bytes; other quantized types
    one int8 per weight) and `float_form` (one int8/float32 per weight, layout.py) for mode="exact",
    F32/F16/BF16 and CPUs without AVX2.
    prepare() builds the form of the default mode right away, so the cost lands at load time.
    """

    __slots__ = ("qtype", "rows", "cols", "raw", "_float", "_simd")

    def __init__(self, qtype: QType, rows: int, cols: int, raw: np.ndarray) -> None:
        self.qtype, self.rows, self.cols, self.raw = qtype, rows, cols, raw
        self._float: Unpacked | None = None
        self._simd: tuple[Unpacked, bool, bool, bool, bool] | None = None

    @property
    def float_form(self) -> Unpacked:
        if self._float is None:
            self._float = unpack(self.raw, resolve(self.qtype), K.ROWS_PER_GROUP)
        return self._float

    @property
    def simd_form(self) -> tuple[Unpacked, bool, bool, bool, bool]:
        """(layout, nib, has_min, q5, q6) for _simd.dot_rows_i8."""
        if self._simd is None:
            lay = self._float if self._float is not None else unpack(self.raw, resolve(self.qtype), K.ROWS_PER_GROUP)
            nib = self.qtype == QType.Q4_K
            q5 = self.qtype == QType.Q5_0
            q6 = self.qtype == QType.Q6_K
            if nib:  # back to the GGUF nibble bytes: half the memory traffic
                q = lay.q.view(np.uint8)
                lay = replace(lay, q=np.ascontiguousarray(q[:, 0::2] | (q[:, 1::2] << 4)))
            elif q5 or q6:  # the GGUF blocks themselves, rows padded: decoded in registers
                size = 22 if q5 else 210
                q = np.zeros((lay.q.shape[0], self.raw.shape[1] // size, size), np.uint8)
                q[: self.rows] = self.raw.reshape(self.rows, -1, size)
                lay = replace(lay, q=q)
            # the kernel reads block b of 4 rows at once: store them side by side (always a copy)
            lay = replace(lay, q=interleave_rows(lay.q, lay.d.shape[1], K.ROWS_PER_GROUP))
            self._simd = (lay, nib, bool(lay.mn.any()), q5, q6)
        return self._simd

    @property
    def nbytes(self) -> int:
        """Bytes of the kernel forms built so far (the GGUF bytes are only referenced)."""
        n = self._float.nbytes if self._float is not None else 0
        if self._simd is not None and self._simd[0] is not self._float:
            n += self._simd[0].nbytes
        return n


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
    pm = PreparedMatrix(spec.qtype, w.shape[0], spec.cols(w.shape[1]), w)
    _ = pm.simd_form if _use_simd(spec) else pm.float_form  # build the default mode's form now
    return pm


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
    """Compile (or load from numba's on-disk cache) every kernel the given types need.

    Returns seconds spent per type, in order; the first type pays for the shared kernels.
    """
    out: dict[str, float] = {}
    for q in qtypes:
        spec = resolve(q)
        t0 = time.perf_counter()
        w = np.zeros((4, spec.row_bytes(256)), np.uint8)
        x = np.zeros((1, 256), np.float32)
        pm = prepare(w, spec.qtype)
        for m in MODES:
            for par in (True, False):  # both the thread-pool and the calling-thread kernels
                _matmul(pm, spec, x, m, par)
        dequantize(w, spec.qtype, (4, 256))
        out[spec.qtype.name] = time.perf_counter() - t0
    return out


def set_threads(n: int) -> int:
    """Threads the kernels use from the calling thread on (clamped to numba's pool); returns the value set."""
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    return n


def get_threads() -> int:
    return int(numba.get_num_threads())


# --- implementation ---------------------------------------------------------

def _dequantize_flat(a: np.ndarray, spec: Spec) -> np.ndarray:
    if spec.qtype in FLOAT_TYPES:
        return float_values(a.reshape(1, -1), spec.qtype).reshape(-1).copy()
    rows = a.size // spec.type_size  # one block per "row": any tensor shape works
    u = unpack(a.reshape(rows, spec.type_size), spec)
    out = np.empty((rows, u.q.shape[1] * u.q.shape[2]), np.float32)
    K.dequant_rows(u.q, u.sc, u.mn, u.d, u.dmin, out)
    return out.reshape(-1)


def _activation(spec: Spec, lay: Unpacked, X: np.ndarray, mode: str, sub: int = 0) -> tuple[np.ndarray, ...]:
    """X (N, cols) -> (xq (N, nsub, sub), xs (N, nsub), xd (N, nsb), xmd (N, nsb)) for the dot kernels."""
    n = X.shape[0]
    nsub, sub = lay.sc.shape[1], sub or lay.q.shape[2]
    nsb = lay.d.shape[1]
    ones = np.ones((n, nsb), np.float32)
    if spec.qtype in FLOAT_TYPES:
        xq = X
        if mode == "ggml" and spec.qtype == QType.F16:
            with np.errstate(over="ignore"):  # |x| > 65504 -> Inf, exactly as in ggml
                xq = X.astype(np.float16).astype(np.float32)  # ggml converts x to fp16 (RNE) for F16 vec_dot
        elif mode == "ggml" and spec.qtype == QType.BF16:
            xq = _round_bf16(X)
        return xq.reshape(n, nsub, sub), np.zeros((n, nsub), np.float32), ones, ones
    vdt = VEC_DOT_TYPE[spec.qtype]
    if mode == "exact":
        xq = X.reshape(n, nsub, sub)
        xs = np.empty((n, nsub), np.float32)
        K.block_sums(xq, xs)
        return xq, xs, ones, ones
    if vdt == QType.Q8_K:
        xq = np.empty((n, X.shape[1] // 256, 256), np.float32)
        xd = np.empty((n, X.shape[1] // 256), np.float32)
        K.quantize_q8_k(X.reshape(xq.shape), xq, xd)
        xq = xq.reshape(n, nsub, sub)
        xs = np.empty((n, nsub), np.float32)
        K.block_sums(xq, xs)
        return xq, xs, xd, xd
    xq = np.empty((n, nsub, 32), np.float32)
    d32 = np.empty((n, nsub), np.float32)
    s32 = np.empty((n, nsub), np.float32)
    K.quantize_q8_0(X.reshape(xq.shape), xq, d32, s32)
    with np.errstate(over="ignore"):  # fp16 overflow -> Inf, exactly as in ggml
        xd = d32.astype(np.float16).astype(np.float32)  # Q8_0/Q8_1 store d as fp16
        xs1 = s32.astype(np.float16).astype(np.float32)  # Q8_1 stores s = d*sum(q) as fp16
    if vdt == QType.Q8_1:
        return xq, np.ones((n, nsub), np.float32), xd, xs1
    return xq, np.zeros((n, nsub), np.float32), xd, ones


def _round_bf16(X: np.ndarray) -> np.ndarray:
    """ggml_compute_fp32_to_bf16 then back: round to nearest even, NaN kept quiet."""
    u = X.view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = ((u + (0x7FFF + ((u >> 16) & 1))) >> 16) & 0xFFFF
    r = np.where(nan, (u >> 16) | 64, r)
    return (r.astype(np.uint32) << 16).view(np.float32)


def _parallel(pm: PreparedMatrix) -> bool:
    """Use numba's thread pool only when it can pay: several threads and a matrix worth splitting."""
    return numba.get_num_threads() > 1 and pm.raw.nbytes >= KERNEL_PARALLEL_MIN_BYTES


def _kind(spec: Spec, has_min: bool) -> int | None:
    """Which specialised row loop of _simd serves this weight form; None: none does (the float kernel will)."""
    if spec.qtype == QType.Q4_K:
        return S.KIND_Q4_K
    if spec.qtype in (QType.Q5_0, QType.Q6_K):  # their offsets are applied in registers: no mins, ever
        return None if has_min else S.KIND_Q5_0 if spec.qtype == QType.Q5_0 else S.KIND_Q6_K
    return S.KIND_I8_MIN if has_min else S.KIND_I8


def _use_simd(spec: Spec) -> bool:
    return HAS_AVX2 and spec.qtype not in FLOAT_TYPES


def _matmul(pm: PreparedMatrix, spec: Spec, X: np.ndarray, mode: str, parallel: bool | None = None) -> np.ndarray:
    par = _parallel(pm) if parallel is None else parallel
    y = np.empty((X.shape[0], -(-pm.rows // K.ROWS_PER_GROUP) * K.ROWS_PER_GROUP), np.float32)
    if mode == "ggml" and _use_simd(spec):
        lay, nib, has_min, q5, q6 = pm.simd_form
        xq, xs, xd, xmd = _activation(spec, lay, X, mode, sub=16 if q6 else 32 if nib or q5 else lay.q.shape[2])
        kind = _kind(spec, has_min)
        if kind is not None and not np.isnan(xq).any():  # NaN cannot ride in int8: the float kernel has it
            args = (kind, lay.q, lay.sc, lay.mn, lay.d, lay.dmin, xq.astype(np.int8), xs, xd, xmd, y, has_min)
            if par:  # one contiguous range of rows per thread
                dot_rows_i8(*args, numba.get_num_threads())
            else:
                dot_rows_i8_serial(*args)
            return np.ascontiguousarray(y[:, : pm.rows])
    lay = pm.float_form
    xq, xs, xd, xmd = _activation(spec, lay, X, mode)
    (K.dot_rows if par else K.dot_rows_serial)(lay.q, lay.sc, lay.mn, lay.d, lay.dmin, xq, xs, xd, xmd, y)
    return np.ascontiguousarray(y[:, : pm.rows])
