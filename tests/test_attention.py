"""Attention shard behaviour on random F32 weights: sliding window, GQA head split, cache replay."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from libp2pia.errors import ModelError, SessionError
from libp2pia.model.attention import AttentionShard
from libp2pia.model.config import ModelConfig
from libp2pia.model.weights import FusedRows, QMatrix

D, HD, NH, NKV, W = 32, 8, 4, 2, 5
CFG = ModelConfig(arch="gemma3", n_embd=D, n_layer=6, n_head=NH, n_head_kv=NKV, head_dim=HD, v_head_dim=HD,
                  n_ff=64, n_vocab=10, eps=1e-6, rope_base=1e6, rope_base_swa=1e4, rope_dim=HD, rope_neox=True,
                  sliding_window=W, swa_pattern=6, qk_norm=True, sandwich_norm=True, act="gelu_tanh",
                  q_scale=HD ** -0.5, context_length=64)
rng = np.random.default_rng(0)
WQ, WK, WV = (rng.standard_normal((n * HD, D)).astype(np.float32) / np.sqrt(D) for n in (NH, NKV, NKV))
WO = rng.standard_normal((D, NH * HD)).astype(np.float32) / np.sqrt(NH * HD)
QN, KN = (1 + 0.1 * rng.standard_normal(HD)).astype(np.float32), (1 + 0.1 * rng.standard_normal(HD)).astype(np.float32)


def shard(layer: int, heads: tuple[int, int] = (0, NH), cfg: ModelConfig = CFG) -> AttentionShard:
    """Q heads [h0, h1) with their KV heads (GQA: head h reads KV head h // n_rep) and the O column slab."""
    h0, h1 = heads
    rep = NH // NKV
    k0, k1 = h0 // rep, (h1 - 1) // rep + 1
    qkv = FusedRows.of([("q", WQ[h0 * HD:h1 * HD], "F32", D), ("k", WK[k0 * HD:k1 * HD], "F32", D),
                        ("v", WV[k0 * HD:k1 * HD], "F32", D)])
    wo = QMatrix.from_raw("o", np.ascontiguousarray(WO[:, h0 * HD:h1 * HD]), "F32", (h1 - h0) * HD)
    return AttentionShard(cfg, layer, qkv, wo, q0=h0, kv0=k0, q_norm=QN, k_norm=KN, context_limit=cfg.context_length)


def run(sh: AttentionShard, x: np.ndarray, sid: str = "s") -> np.ndarray:
    out = sh.forward(sid, np.arange(len(x), dtype=np.int32), x)
    sh.close(sid)
    return out


X = rng.standard_normal((12, D)).astype(np.float32)


@pytest.mark.parametrize("layer,sliding", [(0, True), (5, False)])
def test_sliding_window_hides_old_positions(layer: int, sliding: bool) -> None:
    assert CFG.is_swa(layer) == sliding
    base = run(shard(layer), X)
    far = X.copy()
    far[:len(X) - W] += 1.0                       # change only what the last query may not see on a local layer
    moved = run(shard(layer), far)
    if sliding:
        np.testing.assert_allclose(moved[-1], base[-1], rtol=1e-6, atol=1e-6)
    else:
        assert np.abs(moved[-1] - base[-1]).max() > 1e-3


@pytest.mark.parametrize("layer", [0, 5])
def test_head_shards_sum_to_the_whole_layer(layer: int) -> None:
    whole = run(shard(layer), X)
    parts = sum(run(shard(layer, (h, h + 1)), X) for h in range(NH))     # per Q head, K/V replicated
    groups = sum(run(shard(layer, (g * 2, g * 2 + 2)), X) for g in range(NKV))  # per KV group
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(groups, whole, rtol=1e-5, atol=1e-5)


def test_decode_one_by_one_and_replay_equal_the_batch() -> None:
    sh = shard(0)
    batch = run(sh, X)
    steps = np.concatenate([sh.forward("a", np.array([i], np.int32), X[i:i + 1]) for i in range(len(X))])
    np.testing.assert_allclose(steps, batch, rtol=1e-5, atol=1e-5)
    # a replica that lost the cache replays the history and continues identically
    replica = shard(0)
    replica.forward("a", np.arange(8, dtype=np.int32), X[:8])
    np.testing.assert_allclose(replica.forward("a", np.arange(8, 12, dtype=np.int32), X[8:]), batch[8:],
                               rtol=1e-5, atol=1e-5)


def test_cache_refuses_gaps_and_the_context_limit() -> None:
    sh = shard(0, cfg=dataclasses.replace(CFG, context_length=10))
    sh.forward("a", np.arange(4, dtype=np.int32), X[:4])
    with pytest.raises(SessionError):
        sh.forward("a", np.array([6], np.int32), X[:1])
    with pytest.raises(ModelError, match="context"):
        sh.forward("a", np.arange(4, 11, dtype=np.int32), X[:7])
