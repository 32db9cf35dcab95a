"""matvec/matmul against a float64 numpy reference (dequantize, then multiply).

Tolerances (per output, c = sum_i |w_i x_i|):
| mode  | bound                                                                                    |
|-------|------------------------------------------------------------------------------------------|
| exact | 1e-5 c + cols * 2^-149  (float32 accumulation, underflow; observed <= 3e-8 c)            |
| ggml  | the same + activation rounding bound (quant_helpers.activation_error_bound)              |

NaN handling (documented in docs/kernels.md): a NaN or Inf anywhere in x makes every output NaN/Inf in "ggml"
mode for quantized types (the activation block quantizes to NaN, as amax*0 = NaN); in "exact" mode it
propagates by IEEE rules. Rows whose weights decode to NaN/Inf give NaN/Inf; other rows are unaffected.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libp2pia.quant import MODES, dequantize, matmul, matvec, prepare, set_threads
from tests.quant_helpers import ALL_TYPES, activation_error_bound, block, reference, row_scale

QUANT_TYPES = [t for t in ALL_TYPES if t not in ("F32", "F16", "BF16")]


def _weights(name: str, rows: int, cols: int, rng: np.random.Generator, scale_exp: int = 0) -> np.ndarray:
    """Random valid blocks: random quant bytes, scales set to finite fp16 of magnitude 2**scale_exp."""
    blk, size = block(name)
    if name in ("F32", "F16", "BF16"):
        W = (rng.standard_normal((rows, cols)) * 2.0**min(scale_exp, 11)).astype(np.float32)  # fp16-safe
        if name == "F32":
            return W.view(np.uint8).reshape(rows, -1)
        if name == "F16":
            return W.astype(np.float16).view(np.uint8).reshape(rows, -1)
        return (W.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(rows, -1)
    raw = rng.integers(0, 256, (rows, cols // blk, size), dtype=np.uint8)
    offsets = {"Q4_0": [0], "Q5_0": [0], "Q8_0": [0], "IQ4_NL": [0], "IQ4_XS": [0], "Q3_K": [108],
               "Q6_K": [208], "Q4_1": [0, 2], "Q5_1": [0, 2], "Q2_K": [80, 82], "Q4_K": [0, 2], "Q5_K": [0, 2]}
    for off in offsets[name]:
        d = (rng.uniform(0.5, 1.0, (rows, cols // blk)) * 2.0**scale_exp).astype(np.float16)
        raw[:, :, off:off + 2] = d.view(np.uint8).reshape(rows, cols // blk, 2)
    return raw.reshape(rows, -1)


def _check(raw: np.ndarray, name: str, X: np.ndarray, mode: str) -> None:
    Y = matmul(raw, name, X, mode)
    ref = reference(raw, name, X)
    tol = 1e-5 * row_scale(raw, name, X) + X.shape[1] * 2.0**-149  # + float32 underflow floor
    if mode == "ggml":
        tol = tol + activation_error_bound(raw, name, X)
    err = np.abs(Y - ref)
    assert (err <= tol).all(), f"{name}/{mode}: worst err {err.max():.3g}, tol there {tol.flat[err.argmax()]:.3g}"


@settings(max_examples=80, deadline=None)
@given(name=st.sampled_from(ALL_TYPES), rows=st.integers(1, 19), nblk=st.integers(1, 3),
       batch=st.integers(1, 4), mode=st.sampled_from(MODES), scale_exp=st.integers(-14, 12),
       x_exp=st.integers(-20, 20), seed=st.integers(0, 2**32 - 1))
def test_against_float64(name: str, rows: int, nblk: int, batch: int, mode: str, scale_exp: int, x_exp: int,
                         seed: int) -> None:
    rng = np.random.default_rng(seed)
    if mode == "ggml" and name in ("F16", "Q4_1", "Q5_1"):
        # ggml stores x (F16) or the Q8_1 block sum d*sum(q) as fp16: beyond 65504 it is Inf, as in ggml
        x_exp = min(x_exp, 12 if name == "F16" else 6)
    cols = max(block(name)[0], 32) * nblk * (8 if block(name)[0] == 32 else 1)
    raw = _weights(name, rows, cols, rng, scale_exp)
    X = (rng.standard_normal((batch, cols)) * 2.0**x_exp).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = 0.0
    _check(raw, name, X, mode)


@pytest.mark.parametrize("name", ALL_TYPES)
@pytest.mark.parametrize("mode", MODES)
def test_edge_values(name: str, mode: str) -> None:
    rng = np.random.default_rng(3)
    cols = 512
    for scale_exp in (-24, 0, 15):  # fp16 subnormal scales, ordinary, near fp16 max
        raw = _weights(name, 9, cols, rng, scale_exp)
        X = np.zeros((4, cols), np.float32)                      # all zeros
        X[1] = rng.standard_normal(cols)
        X[2] = np.ldexp(rng.standard_normal(cols), -135).astype(np.float32)  # float32 denormals
        X[3] = rng.standard_normal(cols) * 1e3
        Y = matmul(raw, name, X, mode)
        assert np.isfinite(Y).all()
        assert (Y[0] == 0).all()
        _check(raw, name, X, mode)


@pytest.mark.parametrize("name", QUANT_TYPES)
def test_nan_and_inf(name: str) -> None:
    rng = np.random.default_rng(5)
    raw = _weights(name, 6, 256, rng)
    x = rng.standard_normal(256).astype(np.float32)
    for bad in (np.nan, np.inf):
        xb = x.copy()
        xb[17] = bad
        assert np.isnan(matvec(raw, name, xb, "ggml")).all()
        assert not np.isfinite(matvec(raw, name, xb, "exact")).any()
    # a row whose scale is NaN is NaN; its neighbours are untouched
    blk, size = block(name)
    poisoned = raw.copy()
    W = dequantize(raw, name, (6, 256))
    off = {"Q2_K": 80, "Q3_K": 108, "Q6_K": 208}.get(name, 0)  # where the fp16 super-scale d sits
    poisoned[2, off:off + 2] = np.array([np.nan], np.float16).view(np.uint8)
    y = matvec(poisoned, name, x, "exact")
    assert np.isnan(y[2]) and np.isfinite(np.delete(y, 2)).all()
    assert np.array_equal(np.delete(y, 2), np.delete(matvec(raw, name, x, "exact"), 2))
    assert np.isfinite(W).all()


@pytest.mark.parametrize("name", ["Q4_K", "Q8_0", "F16"])
def test_prepared_batch_and_threads_agree(name: str) -> None:
    """prepare() once, then any batch size or thread count: the same bits per activation row."""
    rng = np.random.default_rng(11)
    raw = _weights(name, 37, 512, rng)
    pm = prepare(raw, name)
    X = rng.standard_normal((5, 512)).astype(np.float32)
    Y = matmul(pm, name, X)
    try:
        for threads in (1, 2):
            set_threads(threads)
            for n in range(5):
                np.testing.assert_array_equal(matvec(raw, name, X[n]), Y[n])
                np.testing.assert_array_equal(matmul(pm, name, X[n:n + 2])[0], Y[n])
    finally:
        set_threads(2)
    assert pm.rows == 37 and pm.cols == 512 and pm.nbytes > 0
