"""GGUF format facts shared by the reader and the writer (GGUF v3, little-endian).

Layout: magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv | KV pairs | tensor infos |
zero padding to the alignment | tensor data (each tensor at data_start + offset).
"""

from __future__ import annotations

import struct

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

from ..errors import GGUFError

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
#: llama.cpp rejects tensor names of 64 bytes or more (GGML_MAX_NAME).
MAX_TENSOR_NAME_BYTES = 63
MAX_DIMS = 4

#: struct codes of the fixed-size scalar value types.
SCALAR_CODES: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "B", GGUFValueType.INT8: "b", GGUFValueType.UINT16: "H", GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I", GGUFValueType.INT32: "i", GGUFValueType.FLOAT32: "f", GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q", GGUFValueType.INT64: "q", GGUFValueType.FLOAT64: "d",
}
SCALAR_SIZES = {t: struct.calcsize("<" + c) for t, c in SCALAR_CODES.items()}


def align_up(x: int, alignment: int) -> int:
    """``x`` rounded up to a multiple of ``alignment`` (GGML_PAD)."""
    return x + (alignment - x % alignment) % alignment


def qtype_of(value: int | str | GGMLQuantizationType) -> GGMLQuantizationType:
    """A ggml type from its id, its name or itself; UnsupportedError-like GGUFError otherwise."""
    try:
        if isinstance(value, GGMLQuantizationType):
            return value
        if isinstance(value, str):
            return GGMLQuantizationType[value]
        return GGMLQuantizationType(value)
    except (KeyError, ValueError) as exc:
        raise GGUFError(f"unknown ggml quant type {value!r}") from exc


def block_info(qtype: GGMLQuantizationType) -> tuple[int, int]:
    """(elements per block, bytes per block) of a ggml type."""
    try:
        return GGML_QUANT_SIZES[qtype]
    except KeyError as exc:
        raise GGUFError(f"ggml type {qtype.name} has no known block size") from exc


def row_bytes(qtype: GGMLQuantizationType, ne0: int) -> int:
    """Bytes of one row of ``ne0`` elements (ne0 must be a multiple of the block size)."""
    blk, size = block_info(qtype)
    if ne0 % blk:
        raise GGUFError(f"row length {ne0} is not a multiple of the {qtype.name} block size {blk}")
    return ne0 // blk * size
