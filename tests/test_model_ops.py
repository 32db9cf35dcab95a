"""Pure model pieces: sampling chain, MoE routing, RoPE variants, GELU table, RMS norm."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from libp2pia.errors import ModelError
from libp2pia.model.ops import apply_rope, gelu_tanh, rms_norm, rope_cache
from libp2pia.model.routing import route
from libp2pia.model.sampling import Sampler, SamplingParams

finite = st.floats(-30, 30, allow_nan=False, width=32)


@given(arrays(np.float32, (3, 8), elements=finite), st.integers(1, 8))
def test_route_picks_top_probabilities_and_renormalizes(logits, k):  # type: ignore[no-untyped-def]
    idx, w = route(logits, k)
    assert idx.shape == w.shape == (3, k)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    for row in range(3):
        chosen = p[row, idx[row]]
        rest = np.delete(p[row], idx[row])
        assert rest.size == 0 or chosen.min() >= rest.max() - 1e-7
        np.testing.assert_allclose(w[row], chosen / chosen.sum(), rtol=1e-4, atol=1e-7)


def test_sampling_greedy_and_degenerate_filters_agree():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    for _ in range(20):
        z = rng.standard_normal(50).astype(np.float32)
        best = int(z.argmax())
        assert Sampler(SamplingParams())(z) == best
        assert Sampler(SamplingParams(temperature=1.0, top_k=1, seed=1))(z) == best
        assert Sampler(SamplingParams(temperature=1.0, min_p=1.0, seed=1))(z) == best
        assert Sampler(SamplingParams(temperature=1.0, top_p=1e-6, seed=1))(z) == best


def test_sampling_follows_the_softmax():  # type: ignore[no-untyped-def]
    z = np.array([0.0, math.log(3.0), -50.0], np.float32)       # p = 0.25, 0.75, ~0
    s = Sampler(SamplingParams(temperature=1.0, seed=123))
    draws = np.array([s(z) for _ in range(4000)])
    assert (draws == 2).sum() == 0
    assert abs((draws == 1).mean() - 0.75) < 0.03               # 4000 draws: sd 0.007


def test_repetition_penalty_moves_away_from_history():  # type: ignore[no-untyped-def]
    z = np.array([2.0, 1.9, -1.0], np.float32)
    assert Sampler(SamplingParams())(z, history=[0]) == 0
    assert Sampler(SamplingParams(repetition_penalty=1.5))(z, history=[0]) == 1


def test_sampling_rejects_bad_parameters():  # type: ignore[no-untyped-def]
    with pytest.raises(ModelError):
        Sampler(SamplingParams(top_p=0.0))


@settings(deadline=None)
@given(st.integers(0, 4000), st.sampled_from([10000.0, 1e6]))
def test_rope_norm_and_neox_are_the_same_rotation_on_permuted_dims(pos, base):  # type: ignore[no-untyped-def]
    d = 16
    x = np.random.default_rng(pos).standard_normal((1, 2, d)).astype(np.float32)
    cos, sin = rope_cache(np.array([pos]), d, base)
    norm = apply_rope(x, cos, sin, neox=False)
    # NEOX pairs (i, i + d/2) are NORM pairs (2i, 2i+1) once the two halves are interleaved
    perm = np.stack([np.arange(d // 2), np.arange(d // 2) + d // 2], 1).reshape(-1)
    np.testing.assert_allclose(apply_rope(x[..., perm], cos, sin, neox=False),
                               apply_rope(x, cos, sin, neox=True)[..., perm], rtol=1e-6, atol=1e-6)
    # rotations keep each pair's norm
    pairs = norm.reshape(1, 2, d // 2, 2)
    orig = x.reshape(1, 2, d // 2, 2)
    np.testing.assert_allclose(np.hypot(pairs[..., 0], pairs[..., 1]), np.hypot(orig[..., 0], orig[..., 1]),
                               rtol=1e-5, atol=1e-5)


def test_gelu_table_close_to_exact_gelu():  # type: ignore[no-untyped-def]
    x = np.linspace(-12, 12, 20001, dtype=np.float32)
    exact = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    got = gelu_tanh(x)
    inside = np.abs(x) < 10
    np.testing.assert_allclose(got[inside], exact[inside], atol=2e-2, rtol=2e-3)   # fp16 input and table
    assert (got[x <= -10] == 0).all() and (got[x >= 10] == x[x >= 10]).all()


def test_rms_norm():  # type: ignore[no-untyped-def]
    x = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32)
    w = np.linspace(0.5, 2, 64).astype(np.float32)
    ref = x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + 1e-6) * w
    np.testing.assert_allclose(rms_norm(x, w, 1e-6), ref, rtol=1e-5)
