"""Elementwise and small operations, written to follow ggml-cpu's float32 arithmetic.

Each function states which ggml routine it mirrors; the point is agreement with
llama.cpp to ~1e-6 on float32 models, not speed (these are O(n·d), the weight
products dominate).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

F32 = np.float32


def rms_norm(x: np.ndarray, weight: np.ndarray | None, eps: float) -> np.ndarray:
    """ggml_rms_norm (sum of squares in double, scale in float) then × weight. x (..., d)."""
    x = np.asarray(x, F32)
    mean = (np.square(x, dtype=np.float64).sum(-1, keepdims=True) / x.shape[-1]).astype(F32)
    scale = (F32(1.0) / np.sqrt(mean + F32(eps))).astype(F32)
    y = x * scale
    return y if weight is None else y * np.asarray(weight, F32)


def silu(x: np.ndarray) -> np.ndarray:
    """ggml_silu_f32: x / (1 + exp(-x))."""
    x = np.asarray(x, F32)
    return x / (F32(1.0) + np.exp(-x))


def _gelu_tanh_f32(x: np.ndarray) -> np.ndarray:
    c = F32(0.7978845608028654)  # sqrt(2/pi)
    a = F32(0.044715)
    return F32(0.5) * x * (F32(1.0) + np.tanh(c * x * (F32(1.0) + a * x * x)))


def _gelu_fp16_table() -> np.ndarray:
    """ggml_table_gelu_f16: gelu evaluated at every fp16 value, stored as fp16."""
    h = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(F32)
    with np.errstate(over="ignore", invalid="ignore"):
        return _gelu_tanh_f32(h).astype(np.float16)


_GELU_TABLE: np.ndarray | None = None


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """ggml_vec_gelu_f32 with GGML_GELU_FP16: 0 below -10, x above 10, else table[fp16(x)]."""
    global _GELU_TABLE
    if _GELU_TABLE is None:
        _GELU_TABLE = _gelu_fp16_table()
    x = np.asarray(x, F32)
    y = _GELU_TABLE[x.astype(np.float16).view(np.uint16)].astype(F32)
    y = np.where(x <= -10.0, F32(0.0), y)
    return np.where(x >= 10.0, x, y).astype(F32)


def gated_act(gate: np.ndarray, up: np.ndarray, act: str) -> np.ndarray:
    """act(gate) ⊙ up: SwiGLU ("silu") or GEGLU with tanh-GELU ("gelu_tanh")."""
    if act == "silu":
        return silu(gate) * np.asarray(up, F32)
    if act == "gelu_tanh":
        return gelu_tanh(gate) * np.asarray(up, F32)
    raise ValueError(f"unknown activation {act!r}")


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float32 (max subtracted, sum in float64 like ggml_vec_soft_max)."""
    x = np.asarray(x, F32)
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    s = e.sum(axis=axis, keepdims=True, dtype=np.float64).astype(F32)
    return e / s


@lru_cache(maxsize=64)
def _rope_powers(dim: int, base: float) -> np.ndarray:
    """base^(-2i/dim) for i < dim/2, accumulated by repeated float32 multiplication like ggml."""
    theta_scale = F32(base) ** F32(-2.0 / dim)
    powers = np.empty(dim // 2, F32)
    t = F32(1.0)
    for i in range(dim // 2):
        powers[i] = t
        t = F32(t * theta_scale)
    powers.flags.writeable = False
    return powers


def rope_cache(positions: np.ndarray, dim: int, base: float) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin (n, dim/2) as ggml_rope_cache_init computes them: theta_i = p · base^(-2i/dim)."""
    theta = np.asarray(positions, F32)[:, None] * _rope_powers(dim, float(base))[None, :]
    return np.cos(theta).astype(F32), np.sin(theta).astype(F32)


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, neox: bool) -> np.ndarray:
    """Rotate x (n, heads, head_dim) on its first 2·cos.shape[1] dims.

    NORM (llama): pairs (x[2i], x[2i+1]); NEOX (gemma): pairs (x[i], x[i + d/2]).
    cos/sin are (n, d/2) and broadcast over heads.
    """
    half = cos.shape[1]
    c = cos[:, None, :]
    s = sin[:, None, :]
    y = np.array(x, F32, copy=True)
    if neox:
        a, b = x[..., :half], x[..., half:2 * half]
        y[..., :half] = a * c - b * s
        y[..., half:2 * half] = a * s + b * c
    else:
        a, b = x[..., 0:2 * half:2], x[..., 1:2 * half:2]
        y[..., 0:2 * half:2] = a * c - b * s
        y[..., 1:2 * half:2] = a * s + b * c
    return y
