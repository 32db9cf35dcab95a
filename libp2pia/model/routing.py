"""MoE routing as llama.cpp's build_moe_ffn does it for Mixtral (gating SOFTMAX, norm_w = true)."""

from __future__ import annotations

import numpy as np

from .ops import softmax


def route(router_logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """router_logits (n, n_expert) -> chosen experts (n, k) and their weights (n, k).

    softmax over all experts → top-k by probability (ties: lower index first) → renormalize to sum 1.
    """
    probs = softmax(router_logits, axis=-1)                        # (n, n_expert)
    idx = np.argsort(-probs, axis=-1, kind="stable")[:, :k]        # (n, k)
    w = np.take_along_axis(probs, idx, axis=-1)                    # (n, k)
    w = w / w.sum(-1, keepdims=True, dtype=np.float32)
    return idx, w.astype(np.float32)
