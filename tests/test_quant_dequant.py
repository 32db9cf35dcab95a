"""dequantize is bit-identical to gguf.quants.dequantize: random blocks of every type, and the Gemma file."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader
from gguf import quants as gq
from hypothesis import given, settings
from hypothesis import strategies as st

from libp2pia.quant import dequantize
from tests.quant_helpers import ALL_TYPES, block


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(ALL_TYPES), rows=st.integers(1, 5), nblk=st.integers(1, 4),
       seed=st.integers(0, 2**32 - 1))
def test_random_bytes_bit_identical(name: str, rows: int, nblk: int, seed: int) -> None:
    """Any bytes at all, including fp16 scales that decode to NaN, Inf and subnormals."""
    blk, size = block(name)
    cols = blk * nblk
    raw = np.random.default_rng(seed).integers(0, 256, (rows, cols // blk * size), dtype=np.uint8)
    with np.errstate(all="ignore"):
        want = np.asarray(gq.dequantize(raw, GGMLQuantizationType[name]), np.float32).reshape(rows, cols)
    assert _same_bits(dequantize(raw, name, (rows, cols)), want)


@pytest.mark.parametrize("name", ALL_TYPES)
def test_bytes_and_3d_shapes(name: str) -> None:
    blk, size = block(name)
    raw = np.random.default_rng(7).integers(0, 256, 2 * 3 * size * 2, dtype=np.uint8)
    with np.errstate(all="ignore"):
        want = np.asarray(gq.dequantize(raw.reshape(6, -1), GGMLQuantizationType[name]), np.float32)
    got = dequantize(raw.tobytes(), name, (2, 3, 2 * blk))
    assert got.dtype == np.float32 and _same_bits(got, want.reshape(2, 3, 2 * blk))


@pytest.mark.slow
def test_every_gemma_tensor_bit_identical(gemma_path) -> None:
    """All 236 tensors (F32 norms and the 127 quantized ones); token_embd on 3 of its 32 row chunks."""
    reader = GGUFReader(gemma_path)
    seen: dict[str, int] = {}
    for t in reader.tensors:
        name = t.tensor_type.name
        data = np.asarray(t.data)
        cols = int(t.shape[0])
        data2 = data.reshape(-1, data.shape[-1]) if data.ndim > 1 else data.reshape(1, -1)
        n = data2.shape[0]
        # token_embd (262144 rows, 178 MB) is checked on 3 chunks of 8192 rows to keep the test ~10 s
        starts = range(0, n, 8192) if n <= 65536 else (0, n // 2, n - 8192)
        for r0 in starts:
            chunk = np.ascontiguousarray(data2[r0:r0 + 8192])
            want = np.asarray(gq.dequantize(chunk, t.tensor_type), np.float32).reshape(chunk.shape[0], cols)
            assert _same_bits(dequantize(chunk, name, (chunk.shape[0], cols)), want), t.name
        seen[name] = seen.get(name, 0) + 1
    assert seen.get("Q8_0") == 10 and seen.get("Q5_0") == 81 and seen.get("Q4_K") == 27 and seen.get("Q6_K") == 9
