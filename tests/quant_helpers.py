"""Shared reference maths for the quant tests (float64 numpy, no numba)."""

from __future__ import annotations

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from libp2pia.quant import dequantize

ALL_TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
             "Q6_K", "IQ4_NL", "IQ4_XS"]
#: How ggml rounds the activation for each weight type (see libp2pia.quant.VEC_DOT_TYPE).
ACT_BLOCK = {"Q4_0": 32, "Q4_1": 32, "Q5_0": 32, "Q5_1": 32, "Q8_0": 32, "IQ4_NL": 32,
             "Q2_K": 256, "Q3_K": 256, "Q4_K": 256, "Q5_K": 256, "Q6_K": 256, "IQ4_XS": 256}


def block(name: str) -> tuple[int, int]:
    return GGML_QUANT_SIZES[GGMLQuantizationType[name]]


def row_scale(raw: np.ndarray, name: str, X: np.ndarray) -> np.ndarray:
    """c[n, r] = sum_i |w_ri x_ni|: the natural scale of a dot product's rounding error."""
    rows = raw.shape[0]
    W = dequantize(raw, name, (rows, X.shape[1])).astype(np.float64)
    return np.abs(X.astype(np.float64)) @ np.abs(W).T


def reference(raw: np.ndarray, name: str, X: np.ndarray) -> np.ndarray:
    """Exact float64 product of the dequantized weights and X: (n, rows)."""
    W = dequantize(raw, name, (raw.shape[0], X.shape[1])).astype(np.float64)
    return X.astype(np.float64) @ W.T


def activation_error_bound(raw: np.ndarray, name: str, X: np.ndarray) -> np.ndarray:
    """Bound on |y_ggml - y_exact| caused by ggml's activation rounding, per (n, r).

    Q8_0/Q8_1: q = rint(x*127/amax), d = amax/127 stored as fp16:
        |x - q*fp16(d)| <= d/2 + 127*|d - fp16(d)|, |d - fp16(d)| <= max(d*2^-11, 2^-25 (fp16 subnormal step/2)).
    Q8_K: d = 1/iscale exactly in f32: |x - q*d| <= 0.5*amax/127 (+ f32 rounding) <= 0.6*amax/127;
        a block with amax < 127/FLT_MAX becomes all zeros (error <= amax).
    F16/BF16: relative rounding 2^-11 / 2^-8 of each x (normal range). F32: none.
    """
    W = np.abs(dequantize(raw, name, (raw.shape[0], X.shape[1])).astype(np.float64))
    Xa = np.abs(X.astype(np.float64))
    if name == "F32":
        return np.zeros((X.shape[0], raw.shape[0]))
    if name in ("F16", "BF16"):
        return (Xa * (2.0**-11 if name == "F16" else 2.0**-8) + 2.0**-24) @ W.T
    b = ACT_BLOCK[name]
    amax = Xa.reshape(X.shape[0], -1, b).max(-1)
    d = amax / 127.0
    if b == 32:
        delta = 0.5 * d + 127.0 * np.maximum(d * 2.0**-11, 2.0**-25) + d * 1e-6
    else:  # below 127/FLT_MAX the scale overflows and ggml quantizes the block to 0: error = |x| <= amax
        delta = np.where(amax < 127.0 / np.finfo(np.float32).max, amax, 0.6 * d)
    delta = np.repeat(delta, b, axis=1)
    return delta @ W.T


def assert_close_to_ggml(y: np.ndarray, g: np.ndarray, c: np.ndarray, what: str) -> tuple[float, float]:
    """Per row: |y - g| <= 1e-5*|g| + 1e-6*c (c = sum |w x|). Returns (max plain rel, max err/c)."""
    y = y.astype(np.float64)
    g = g.astype(np.float64)
    err = np.abs(y - g)
    bad = ~(err <= 1e-5 * np.abs(g) + 1e-6 * c)  # NaN where ggml is finite counts as bad
    bad &= ~(np.isnan(y) & np.isnan(g))
    assert not bad.any(), f"{what}: {bad.sum()} rows off; worst err {err.max():.3g} at scale {c.max():.3g}"
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(g != 0, err / np.abs(g), 0.0)
        rc = np.where(c > 0, err / c, 0.0)
    return float(rel.max()), float(rc.max())
