"""Bad input to libp2pia.quant -> a clear QuantError, never a crash or silent garbage."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType

from libp2pia.errors import QuantError
from libp2pia.quant import dequantize, matmul, matvec, prepare


def _q8_0(rows: int = 3, cols: int = 64) -> np.ndarray:
    return np.zeros((rows, cols // 32 * 34), np.uint8)


@pytest.mark.parametrize("qtype", ["Q9_9", "", 12345, GGMLQuantizationType.Q8_K, "IQ2_XXS", None])
def test_unknown_or_unsupported_type(qtype: object) -> None:
    with pytest.raises(QuantError):
        matvec(_q8_0(), qtype, np.zeros(64, np.float32))  # type: ignore[arg-type]


def test_type_by_name_is_case_insensitive() -> None:
    assert matvec(_q8_0(), "q8_0", np.zeros(64, np.float32)).shape == (3,)


def test_wrong_byte_length() -> None:
    with pytest.raises(QuantError, match="needs 136 bytes"):
        dequantize(np.zeros(135, np.uint8), "Q8_0", (2, 64))
    with pytest.raises(QuantError, match="whole number"):
        matvec(np.zeros((3, 67), np.uint8), "Q8_0", np.zeros(64, np.float32))


def test_misaligned_columns() -> None:
    with pytest.raises(QuantError, match="multiple"):
        dequantize(np.zeros(144, np.uint8), "Q4_K", (1, 200))
    with pytest.raises(QuantError, match="columns"):
        matvec(_q8_0(), "Q8_0", np.zeros(65, np.float32))


def test_wrong_ranks_and_modes() -> None:
    with pytest.raises(QuantError):
        matvec(_q8_0(), "Q8_0", np.zeros((2, 64), np.float32))
    with pytest.raises(QuantError):
        matmul(_q8_0(), "Q8_0", np.zeros(64, np.float32))
    with pytest.raises(QuantError):
        matvec(_q8_0().reshape(-1), "Q8_0", np.zeros(64, np.float32))
    with pytest.raises(QuantError, match="mode"):
        matvec(_q8_0(), "Q8_0", np.zeros(64, np.float32), mode="fast")  # type: ignore[arg-type]


def test_prepared_matrix_type_mismatch() -> None:
    pm = prepare(_q8_0(), "Q8_0")
    with pytest.raises(QuantError):
        matvec(pm, "Q4_0", np.zeros(64, np.float32))
