"""Our own GGUF header parser: a struct walk over a memory map that touches only the header.

Why not ``gguf.GGUFReader``: it builds numpy views of every tensor (needs the data to be present)
and its errors are bare ``ValueError``s. Planning a 450 GB model must work from a header-only
file, and every malformed input must say what is wrong and where. Every length read from the file
is bounded by :mod:`libp2pia.limits` before anything is allocated.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import Any, BinaryIO

import numpy as np
from gguf import GGMLQuantizationType, GGUFValueType

from .. import limits
from ..errors import GGUFError
from .format import DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS, SCALAR_CODES, SCALAR_SIZES, align_up, block_info

_NUMPY_OF = {GGUFValueType.UINT8: "<u1", GGUFValueType.INT8: "<i1", GGUFValueType.UINT16: "<u2",
             GGUFValueType.INT16: "<i2", GGUFValueType.UINT32: "<u4", GGUFValueType.INT32: "<i4",
             GGUFValueType.FLOAT32: "<f4", GGUFValueType.BOOL: "?", GGUFValueType.UINT64: "<u8",
             GGUFValueType.INT64: "<i8", GGUFValueType.FLOAT64: "<f8"}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor info record. ``shape`` is in GGUF order: ``shape[0]`` = ne0 = row length."""

    name: str
    shape: tuple[int, ...]
    qtype: GGMLQuantizationType
    offset: int          # relative to data_start, as stored
    data_start: int      # absolute offset of the data section

    @property
    def abs_offset(self) -> int:
        return self.data_start + self.offset

    @property
    def block_size(self) -> int:
        return block_info(self.qtype)[0]

    @property
    def row_bytes(self) -> int:
        blk, size = block_info(self.qtype)
        return self.shape[0] // blk * size

    @property
    def n_rows(self) -> int:
        """Rows per plane (ne1; 1 for 1-D tensors)."""
        return self.shape[1] if len(self.shape) > 1 else 1

    @property
    def n_planes(self) -> int:
        """Product of ne2.. (experts of a 3-D ``*_exps`` tensor, heads of MLA k_b/v_b)."""
        n = 1
        for d in self.shape[2:]:
            n *= d
        return n

    @property
    def n_bytes(self) -> int:
        return self.row_bytes * self.n_rows * self.n_planes

    @property
    def end(self) -> int:
        return self.abs_offset + self.n_bytes


@dataclass
class GGUFHeader:
    """Everything before the tensor data, plus where each tensor's bytes are."""

    path: Path | None
    version: int
    kv: dict[str, Any]
    kv_types: dict[str, GGUFValueType]
    tensors: list[TensorInfo]
    alignment: int
    header_end: int      # end of the last tensor info (before alignment padding)
    data_start: int      # = align(header_end, alignment); tensor offsets are relative to it
    file_size: int
    by_name: dict[str, TensorInfo] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name = {t.name: t for t in self.tensors}

    @property
    def architecture(self) -> str:
        arch = self.kv.get("general.architecture")
        return arch if isinstance(arch, str) else ""

    @property
    def data_present(self) -> bool:
        return all(t.end <= self.file_size for t in self.tensors)


_U64 = struct.Struct("<Q")


class StringArray(Sequence[str]):
    """A GGUF string array kept as raw bytes; items are decoded (UTF-8) when accessed."""

    def __init__(self, raw: bytes, count: int, where: str) -> None:
        self._raw, self._count, self._where = raw, count, where
        self._starts_cache: list[int] | None = None

    @property
    def _starts(self) -> list[int]:
        """Offset of each item's bytes in ``raw``, found on first access: the header walk only
        needs the array's end, and fragmenting never reads the strings (a 2x faster walk)."""
        if self._starts_cache is None:
            raw, unpack = self._raw, _U64.unpack_from
            starts = [0] * self._count
            pos = 0
            for k in range(self._count):
                pos += 8
                starts[k] = pos
                pos += unpack(raw, pos - 8)[0]
            self._starts_cache = starts
        return self._starts_cache

    def __len__(self) -> int:
        return self._count

    def _one(self, i: int) -> str:
        a = self._starts[i]
        b = self._starts[i + 1] - 8 if i + 1 < len(self._starts) else len(self._raw)
        try:
            return self._raw[a:b].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise GGUFError(f"{self._where}: item {i} is not valid UTF-8") from exc

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self._one(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._one(i)

    def __iter__(self) -> Any:
        raw, starts = self._raw, self._starts
        ends = [b - 8 for b in starts[1:]] + [len(raw)]
        try:
            return iter([raw[a:b].decode("utf-8") for a, b in zip(starts, ends)])
        except UnicodeDecodeError as exc:
            raise GGUFError(f"{self._where}: holds a string that is not valid UTF-8") from exc

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, (list, StringArray)) else NotImplemented


class _Cursor:
    """Bounded little-endian reads from a buffer; every overrun is a 'truncated' GGUFError."""

    def __init__(self, buf: Any, where: str) -> None:
        self.buf = buf
        self.pos = 0
        self.size = len(buf)
        self.where = where

    def need(self, n: int, what: str) -> None:
        if self.pos + n > self.size:
            raise GGUFError(f"{self.where}: truncated GGUF header while reading {what} at byte {self.pos}")

    def scalar(self, code: str, size: int, what: str) -> Any:
        self.need(size, what)
        (v,) = struct.unpack_from("<" + code, self.buf, self.pos)
        self.pos += size
        return v

    def u32(self, what: str) -> int:
        return self.scalar("I", 4, what)

    def u64(self, what: str) -> int:
        return self.scalar("Q", 8, what)

    def string(self, what: str) -> str:
        n = self.u64(what)
        if n > limits.MAX_GGUF_STRING_BYTES:
            raise GGUFError(f"{self.where}: absurd string length {n} for {what} at byte {self.pos - 8}")
        self.need(n, what)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise GGUFError(f"{self.where}: {what} is not valid UTF-8 at byte {self.pos - n}") from exc

    def strings(self, count: int, what: str) -> "StringArray":
        """A string array (tokenizers: 10^5 entries): walk the lengths in a tight loop, keep the raw
        bytes, decode on access (fragmenting never needs the token strings)."""
        buf, start, unpack = self.buf, self.pos, _U64.unpack_from
        pos = start
        try:  # fast path: no per-item checks (this loop is most of a header's parse time)
            for _ in range(count):
                pos += 8 + unpack(buf, pos)[0]
        except (struct.error, OverflowError):   # ran past the end (a huge length overflows ssize_t)
            pos = self.size + 1
        if pos > self.size or pos - start > limits.MAX_GGUF_STRING_BYTES:
            self._check_strings(count, what)   # raises with the item's position
        self.pos = pos
        return StringArray(bytes(buf[start:pos]), count, f"{self.where}: {what}")

    def _check_strings(self, count: int, what: str) -> None:
        """The checked walk: raises the precise error the fast path skipped."""
        buf, pos, size, limit = self.buf, self.pos, self.size, limits.MAX_GGUF_STRING_BYTES
        for _ in range(count):
            if pos + 8 > size:
                self.pos = pos
                self.need(8, what)
            (n,) = _U64.unpack_from(buf, pos)
            if n > limit:
                raise GGUFError(f"{self.where}: absurd string length {n} in {what} at byte {pos}")
            pos += 8 + n
            if pos > size:
                self.pos = pos - n
                self.need(n, what)

    def value(self, vtype: int, what: str) -> Any:
        try:
            t = GGUFValueType(vtype)
        except ValueError as exc:
            raise GGUFError(f"{self.where}: unknown GGUF value type {vtype} for {what}") from exc
        if t == GGUFValueType.STRING:
            return self.string(what)
        if t == GGUFValueType.ARRAY:
            etype = self.u32(what)
            count = self.u64(what)
            if count > limits.MAX_GGUF_ARRAY_ITEMS:
                raise GGUFError(f"{self.where}: absurd array length {count} for {what}")
            try:
                et = GGUFValueType(etype)
            except ValueError as exc:
                raise GGUFError(f"{self.where}: unknown GGUF array element type {etype} for {what}") from exc
            if et == GGUFValueType.ARRAY:
                raise GGUFError(f"{self.where}: nested array in {what} (llama.cpp rejects these)")
            if et == GGUFValueType.STRING:
                return self.strings(count, what)
            n = count * SCALAR_SIZES[et]
            self.need(n, what)
            arr = np.frombuffer(self.buf, dtype=_NUMPY_OF[et], count=count, offset=self.pos).copy()
            self.pos += n
            return arr.tolist()
        return self.scalar(SCALAR_CODES[t], SCALAR_SIZES[t], what)


def parse_header(buf: Any, file_size: int | None = None, where: str = "<buffer>",
                 path: Path | None = None) -> GGUFHeader:
    """Parse a GGUF header from a bytes-like object (a memory map, bytes, ...).

    ``file_size`` (default ``len(buf)``) is used only for the data bounds reported by
    :attr:`GGUFHeader.data_present`; :func:`read_header` checks them.
    """
    cur = _Cursor(buf, where)
    if cur.size < 4 or bytes(buf[:4]) != MAGIC:
        raise GGUFError(f"{where}: not a GGUF file (bad magic {bytes(buf[:4])!r})")
    cur.pos = 4
    version = cur.u32("version")
    if version not in limits.SUPPORTED_GGUF_VERSIONS:
        raise GGUFError(f"{where}: unsupported GGUF version {version} (supported: "
                        f"{', '.join(map(str, limits.SUPPORTED_GGUF_VERSIONS))})")
    n_tensors = cur.u64("tensor count")
    n_kv = cur.u64("metadata count")
    if n_tensors > limits.MAX_GGUF_TENSORS:
        raise GGUFError(f"{where}: absurd tensor count {n_tensors}")
    if n_kv > limits.MAX_GGUF_KV:
        raise GGUFError(f"{where}: absurd metadata count {n_kv}")
    kv: dict[str, Any] = {}
    kv_types: dict[str, GGUFValueType] = {}
    for i in range(n_kv):
        key = cur.string(f"metadata key #{i}")
        vtype = cur.u32(f"type of {key}")
        kv[key] = cur.value(vtype, f"metadata {key}")
        kv_types[key] = GGUFValueType(vtype)
    alignment = kv.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1) or alignment % 8:
        raise GGUFError(f"{where}: general.alignment {alignment!r} is not a power of two multiple of 8")
    raw_infos = []
    for i in range(n_tensors):
        name = cur.string(f"name of tensor #{i}")
        n_dims = cur.u32(f"dims of {name}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise GGUFError(f"{where}: tensor {name} has {n_dims} dimensions (1..{MAX_DIMS} allowed)")
        shape = tuple(cur.u64(f"shape of {name}") for _ in range(n_dims))
        qid = cur.u32(f"type of {name}")
        offset = cur.u64(f"offset of {name}")
        raw_infos.append((name, shape, qid, offset))
    header_end = cur.pos
    data_start = align_up(header_end, alignment)
    size = len(buf) if file_size is None else file_size
    tensors = [_tensor_info(where, name, shape, qid, offset, data_start, alignment)
               for name, shape, qid, offset in raw_infos]
    if len({t.name for t in tensors}) != len(tensors):
        raise GGUFError(f"{where}: duplicate tensor names")
    return GGUFHeader(path, version, kv, kv_types, tensors, alignment, header_end, data_start, size)


def _tensor_info(where: str, name: str, shape: tuple[int, ...], qid: int, offset: int,
                 data_start: int, alignment: int) -> TensorInfo:
    try:
        qtype = GGMLQuantizationType(qid)
        blk, tsize = block_info(qtype)
    except (ValueError, GGUFError) as exc:
        raise GGUFError(f"{where}: tensor {name} has unknown quant type {qid}") from exc
    if any(d <= 0 for d in shape) or any(d > 1 << 40 for d in shape):
        raise GGUFError(f"{where}: tensor {name} has absurd shape {list(shape)}")
    if shape[0] % blk:
        raise GGUFError(f"{where}: tensor {name} row length {shape[0]} is not a multiple of the "
                        f"{qtype.name} block size {blk}")
    if offset % alignment:
        raise GGUFError(f"{where}: tensor {name} offset {offset} is not a multiple of the alignment {alignment}")
    info = TensorInfo(name, shape, qtype, offset, data_start)
    if info.n_bytes > 1 << 50:
        raise GGUFError(f"{where}: tensor {name} claims an absurd size of {info.n_bytes} bytes")
    return info


def map_readonly(f: BinaryIO, where: str | os.PathLike[str]) -> tuple[mmap.mmap, int]:
    """A read-only memory map of the whole open file ``f`` and its size. An empty file is a
    GGUFError (it is not a GGUF, and mmap cannot map zero bytes). The map outlives ``f``."""
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        raise GGUFError(f"{where}: not a GGUF file (empty)")
    return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), size


def read_header(path: str | os.PathLike[str], require_data: bool = True) -> GGUFHeader:
    """Read a GGUF file's header through a memory map (only the header pages are touched).

    With ``require_data`` (the default) every tensor must lie inside the file and tensors must
    not overlap; ``plan`` passes False so a header-only file of a 450 GB model can be planned.
    """
    p = Path(path)
    with open(p, "rb") as f:
        mm, size = map_readonly(f, p)
    with mm:
        header = parse_header(mm, size, str(p), p)
    if require_data:
        check_data_bounds(header)
    return header


def check_data_bounds(header: GGUFHeader) -> None:
    """Every tensor inside the file, in increasing order and without overlap."""
    where = str(header.path) if header.path else "<buffer>"
    prev_end, prev_name = header.data_start, None
    for t in sorted(header.tensors, key=lambda t: t.offset):
        if t.end > header.file_size:
            raise GGUFError(f"{where}: tensor {t.name} data [{t.abs_offset}, {t.end}) is out of bounds "
                            f"(file has {header.file_size} bytes)")
        if t.abs_offset < prev_end:
            raise GGUFError(f"{where}: tensor {t.name} overlaps tensor {prev_name}")
        prev_end, prev_name = t.end, t.name
