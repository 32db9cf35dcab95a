"""A minimal streaming GGUF v3 writer (for fragment files and header-only preset files).

Tensors are packed in tensor-info order, each padded to the alignment, which is the layout
llama.cpp insists on (``offset == Σ PAD(nbytes_j)``). The header is built in memory (it is
small for fragments); tensor data is streamed, one buffer at a time.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, BinaryIO, Sequence

from gguf import GGMLQuantizationType, GGUFValueType

from ..errors import GGUFError
from .format import DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS, MAX_TENSOR_NAME_BYTES, SCALAR_CODES, align_up, block_info

_ZEROS = bytes(4096)


@dataclass(frozen=True)
class KV:
    """One metadata pair; ``etype`` is the element type of an ARRAY."""

    key: str
    vtype: GGUFValueType
    value: Any
    etype: GGUFValueType | None = None


@dataclass(frozen=True)
class TensorSpec:
    """A tensor to write: name, GGUF-order shape (ne0 first) and type."""

    name: str
    shape: tuple[int, ...]
    qtype: GGMLQuantizationType

    @property
    def n_bytes(self) -> int:
        blk, size = block_info(self.qtype)
        n = self.shape[0] // blk * size
        for d in self.shape[1:]:
            n *= d
        return n


def _string(s: str) -> bytes:
    raw = s.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _value(vtype: GGUFValueType, value: Any, etype: GGUFValueType | None) -> bytes:
    if vtype == GGUFValueType.STRING:
        return _string(value)
    if vtype == GGUFValueType.ARRAY:
        if etype is None or etype == GGUFValueType.ARRAY:
            raise GGUFError("GGUF arrays need a non-array element type")
        head = struct.pack("<IQ", int(etype), len(value))
        if etype == GGUFValueType.STRING:
            return head + b"".join(_string(v) for v in value)
        return head + struct.pack(f"<{len(value)}{SCALAR_CODES[etype]}", *value)
    return struct.pack("<" + SCALAR_CODES[vtype], value)


def encode_kv(kv: KV) -> bytes:
    return _string(kv.key) + struct.pack("<I", int(kv.vtype)) + _value(kv.vtype, kv.value, kv.etype)


def tensor_offsets(tensors: Sequence[TensorSpec], alignment: int = DEFAULT_ALIGNMENT) -> list[int]:
    """Relative data offsets of packed tensors (each padded to the alignment)."""
    offsets, pos = [], 0
    for t in tensors:
        offsets.append(pos)
        pos += align_up(t.n_bytes, alignment)
    return offsets


def encode_header(kvs: Sequence[KV], tensors: Sequence[TensorSpec], alignment: int = DEFAULT_ALIGNMENT) -> bytes:
    """Header bytes up to data_start (magic, counts, KV, tensor infos, zero padding)."""
    parts = [MAGIC, struct.pack("<IQQ", 3, len(tensors), len(kvs))]
    parts += [encode_kv(kv) for kv in kvs]
    for t, off in zip(tensors, tensor_offsets(tensors, alignment)):
        if len(t.name.encode()) > MAX_TENSOR_NAME_BYTES:
            raise GGUFError(f"tensor name {t.name!r} is too long for GGUF (max {MAX_TENSOR_NAME_BYTES} bytes)")
        if not 1 <= len(t.shape) <= MAX_DIMS:
            raise GGUFError(f"tensor {t.name} has {len(t.shape)} dimensions")
        if t.shape[0] % block_info(t.qtype)[0]:
            raise GGUFError(f"tensor {t.name}: ne0 {t.shape[0]} is not a multiple of the {t.qtype.name} block")
        parts += [_string(t.name), struct.pack(f"<I{len(t.shape)}QIQ", len(t.shape), *t.shape, int(t.qtype), off)]
    head = b"".join(parts)
    return head + bytes(align_up(len(head), alignment) - len(head))


def gguf_file_size(kvs: Sequence[KV], tensors: Sequence[TensorSpec], alignment: int = DEFAULT_ALIGNMENT) -> int:
    """Exact size of the file :class:`StreamWriter` produces for this header and these tensors."""
    return len(encode_header(kvs, tensors, alignment)) + sum(align_up(t.n_bytes, alignment) for t in tensors)


class StreamWriter:
    """Write a GGUF to an open binary file: header first, then each tensor's bytes in order.

    ``write(buf)`` appends bytes of the current tensor; the writer pads and moves to the next
    tensor when the current one is complete, and ``close()`` checks nothing is missing.
    """

    def __init__(self, f: BinaryIO, kvs: Sequence[KV], tensors: Sequence[TensorSpec],
                 alignment: int = DEFAULT_ALIGNMENT) -> None:
        self.f = f
        self.alignment = alignment
        self.sizes = [t.n_bytes for t in tensors]
        self.names = [t.name for t in tensors]
        self.index = 0
        self.written = 0
        f.write(encode_header(kvs, tensors, alignment))
        self._skip_empty()

    def _skip_empty(self) -> None:
        while self.index < len(self.sizes) and self.sizes[self.index] == 0:
            self.index += 1

    def write(self, buf: Any) -> None:
        mv = memoryview(buf).cast("B")
        while len(mv):
            if self.index >= len(self.sizes):
                raise GGUFError("more tensor data than the header announces")
            room = self.sizes[self.index] - self.written
            take = mv[:room]
            self.f.write(take)
            self.written += len(take)
            mv = mv[len(take):]
            if self.written == self.sizes[self.index]:
                pad = align_up(self.written, self.alignment) - self.written
                self.f.write(_ZEROS[:pad])
                self.index += 1
                self.written = 0
                self._skip_empty()

    def close(self) -> None:
        if self.index != len(self.sizes):
            raise GGUFError(f"tensor {self.names[self.index]} was not written completely")
