"""libp2pia.quant in "ggml" mode agrees with llama.cpp's own CPU vec_dot, row by row.

Always: against tests/data/quant_golden.npz (made by benchmarks/reference/make_quant_golden.py from ggml).
With llama-cpp-python installed (`-m llama`): live, on fresh ggml-quantized data of several shapes.
Tolerance per row: |y - ggml| <= 1e-5 |ggml| + 1e-6 sum|w x| (observed: <= 5e-8 sum|w x|; only the float
summation order differs, the block dots are the same integers).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from libp2pia.quant import matmul, matvec
from tests.quant_helpers import ALL_TYPES, assert_close_to_ggml, block, row_scale

GOLDEN = Path(__file__).parent / "data" / "quant_golden.npz"


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("name", ALL_TYPES)
def test_golden_vec_dot(golden: dict[str, np.ndarray], name: str) -> None:
    X, raw, G = golden["X"], golden[f"{name}/raw"], golden[f"{name}/Y"]
    Y = matmul(raw, name, X)
    assert_close_to_ggml(Y, G, row_scale(raw, name, X), f"{name} golden")
    # one activation at a time gives the same bits as the batch
    for n in range(X.shape[0]):
        np.testing.assert_array_equal(matvec(raw, name, X[n]), Y[n])


@pytest.mark.llama
@pytest.mark.parametrize("name", ALL_TYPES)
def test_live_vec_dot(name: str) -> None:
    pytest.importorskip("llama_cpp", reason="needs llama-cpp-python for ggml's own vec_dot")
    from benchmarks.reference import ggml_ref

    rng = np.random.default_rng(zlib.crc32(name.encode()))
    blk = max(block(name)[0], 32)
    for rows, nblk in ((5, 1), (33, 3), (64, 8)):
        cols = nblk * max(blk, 256 if name in ("F32", "F16", "BF16") else blk)
        W = (rng.standard_normal((rows, cols)) * rng.uniform(0.01, 3, (rows, 1))).astype(np.float32)
        raw = ggml_ref.quantize(name, W)
        X = (rng.standard_normal((3, cols)) * np.exp(rng.standard_normal((3, cols)))).astype(np.float32)
        G = np.stack([ggml_ref.vec_dot_rows(name, raw, x) for x in X])
        assert_close_to_ggml(matmul(raw, name, X), G, row_scale(raw, name, X), f"{name} {rows}x{cols}")


@pytest.mark.parametrize("name", ALL_TYPES)
def test_golden_without_avx2(golden: dict[str, np.ndarray], name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The float32 kernel that serves mode="ggml" on CPUs without AVX2 meets the same tolerance."""
    from libp2pia.quant import api

    monkeypatch.setattr(api, "HAS_AVX2", False)
    X, raw, G = golden["X"], golden[f"{name}/raw"], golden[f"{name}/Y"]
    assert_close_to_ggml(matmul(raw, name, X), G, row_scale(raw, name, X), f"{name} golden, no AVX2")
