"""Attention shard: the Q/K/V rows of a few heads, the matching O column slab, and their KV cache.

A shard owns Q heads [q0, q1) and KV heads [kv0, kv1) (GQA: Q head h reads KV
head h // n_rep). Its output is a *partial* O projection: the sum over all
shards of a layer is the layer's attention output. The KV cache lives here, one
per session, indexed by absolute position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ModelError, SessionError
from .config import ModelConfig
from .ops import apply_rope, rms_norm, rope_cache, softmax
from .weights import FusedRows, QMatrix

F32 = np.float32


@dataclass
class KVCache:
    """K (cap, n_kv, hd) and V (cap, n_kv, vd) by position; `length` positions are valid."""

    k: np.ndarray
    v: np.ndarray
    limit: int
    length: int = 0

    @classmethod
    def empty(cls, n_kv: int, hd: int, vd: int, limit: int) -> "KVCache":
        cap = min(limit, 64)
        return cls(np.zeros((cap, n_kv, hd), F32), np.zeros((cap, n_kv, vd), F32), limit)

    def write(self, positions: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
        """Store k/v at `positions` (contiguous, starting at or before `length`: a rewrite truncates)."""
        p0, p1 = int(positions[0]), int(positions[-1]) + 1
        if p1 - p0 != len(positions) or np.any(np.diff(positions) != 1):
            raise SessionError("attention positions must be contiguous and increasing")
        if p0 > self.length:
            raise SessionError(f"position {p0} skips ahead of the cache ({self.length} positions held)")
        if p1 > self.limit:
            raise ModelError(f"context limit of {self.limit} tokens reached (position {p1 - 1})")
        if p1 > self.k.shape[0]:
            cap = min(self.limit, max(p1, 2 * self.k.shape[0]))
            self.k = np.concatenate([self.k, np.zeros((cap - self.k.shape[0], *self.k.shape[1:]), F32)])
            self.v = np.concatenate([self.v, np.zeros((cap - self.v.shape[0], *self.v.shape[1:]), F32)])
        self.k[p0:p1] = k
        self.v[p0:p1] = v
        self.length = p1


@dataclass
class AttentionShard:
    cfg: ModelConfig
    layer: int
    qkv: FusedRows              # Q rows (q1 - q0) * head_dim, K rows (kv1 - kv0) * head_dim, V rows ... * v_head_dim
    wo: QMatrix                 # n_embd rows × (q1 - q0) * v_head_dim columns
    q0: int                     # first global Q head
    kv0: int                    # first global KV head
    q_norm: np.ndarray | None = None
    k_norm: np.ndarray | None = None
    context_limit: int = 8192
    sessions: dict[str, KVCache] = field(default_factory=dict)

    @property
    def n_q(self) -> int:
        return self.qkv.rows(0) // self.cfg.head_dim

    @property
    def n_kv(self) -> int:
        return self.qkv.rows(1) // self.cfg.head_dim

    def close(self, session_id: str) -> None:
        self.sessions.pop(session_id, None)

    def forward(self, session_id: str, positions: np.ndarray, x: np.ndarray) -> np.ndarray:
        """x (n, n_embd) normalized layer input at `positions` -> partial attention output (n, n_embd)."""
        cfg = self.cfg
        n, hd, vd = x.shape[0], cfg.head_dim, cfg.v_head_dim
        positions = np.asarray(positions, np.int64)
        cache = self.sessions.get(session_id)
        if cache is None:
            cache = self.sessions[session_id] = KVCache.empty(self.n_kv, hd, vd, self.context_limit)

        # 1. projections: q (n, n_q, hd), k (n, n_kv, hd), v (n, n_kv, vd)
        q, k, v = self.qkv(x)                                      # one kernel call per weight type
        q = q.reshape(n, self.n_q, hd)
        k = k.reshape(n, self.n_kv, hd)
        v = v.reshape(n, self.n_kv, vd)

        # 2. Gemma: per-head RMS norm of q and k (over head_dim)
        if cfg.qk_norm:
            q = rms_norm(q, self.q_norm, cfg.eps)
            k = rms_norm(k, self.k_norm, cfg.eps)

        # 3. RoPE on the first rope_dim dims of every head (NORM pairs or NEOX halves)
        cos, sin = rope_cache(positions, cfg.rope_dim, cfg.layer_rope_base(self.layer))
        q = apply_rope(q, cos, sin, cfg.rope_neox)
        k = apply_rope(k, cos, sin, cfg.rope_neox)
        if cfg.q_scale != 1.0:
            q = q * F32(cfg.q_scale)

        # 4. append to this session's cache; keys lo..p1-1 are visible (sliding-window layers: the last
        #    `sliding_window` positions before the first query, older keys are masked anyway)
        cache.write(positions, k, v)
        p1 = int(positions[-1]) + 1
        swa = cfg.is_swa(self.layer)
        lo = max(0, int(positions[0]) - cfg.sliding_window + 1) if swa else 0
        keys, vals = cache.k[lo:p1], cache.v[lo:p1]                # (L, n_kv, hd), (L, n_kv, vd)

        # 5. scores (n_q, n, L) with the causal (and sliding-window) mask
        kv_of_q = (self.q0 + np.arange(self.n_q)) // cfg.n_rep - self.kv0
        kq = np.einsum("nhd,lhd->hnl", q, keys[:, kv_of_q, :], dtype=F32) * F32(cfg.kq_scale)
        kpos = np.arange(lo, p1)[None, :]
        masked = kpos > positions[:, None]
        if swa:
            masked |= positions[:, None] - kpos >= cfg.sliding_window
        kq = np.where(masked[None], F32(-np.inf), kq)
        probs = softmax(kq, axis=-1)

        # 6. weighted values (n, n_q * vd), then this shard's slab of the O projection -> (n, n_embd)
        out = np.einsum("hnl,lhd->nhd", probs, vals[:, kv_of_q, :], dtype=F32).reshape(n, self.n_q * vd)
        return self.wo(np.ascontiguousarray(out))
