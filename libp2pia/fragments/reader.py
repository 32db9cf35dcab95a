"""Read fragments: from fragment files, or straight from a plain GGUF through an in-memory plan.

Both give the same :class:`Fragment` object, so the engine can run on a fragment directory or
directly on a GGUF. Quantized data is exposed as uint8 arrays (rows, row_bytes) — or
(planes, rows, row_bytes) for 3-D sub-tensors (MLA k_b/v_b heads) — exactly the layout the
kernels take (``libp2pia.quant.matvec(weights, qtype, x)``).
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType

from .. import limits
from ..errors import FragmentError, GGUFError
from ..gguf.reader import GGUFHeader, TensorInfo, map_readonly, parse_header, read_header
from .fileformat import FLAG_BYTES, FLAG_DROP_PLANE, FLAG_REPLICA, FragmentSpec
from .manifest import build_manifest, fragment_json
from .plan import plan_specs, source_info
from .slices import AnySlice, ByteSlice, Slice


@dataclass
class FragmentSlice:
    """One sub-tensor (or raw byte range) of a fragment and its place in the source tensor."""

    spec: AnySlice
    data: np.ndarray   # uint8: (rows, row_bytes) | (planes, rows, row_bytes) | (n,) for raw bytes

    @property
    def tensor(self) -> str:
        return self.spec.name

    @property
    def qtype(self) -> GGMLQuantizationType:
        return self.spec.qtype

    @property
    def shape(self) -> tuple[int, ...]:
        """GGUF-order shape of the sub-tensor (ne0 first)."""
        return self.spec.shape

    @property
    def replica(self) -> bool:
        return self.spec.replica

    def values(self) -> np.ndarray:
        """F32/F16 data as floats in numpy order (reversed GGUF shape); quantized data stays bytes."""
        if self.qtype == GGMLQuantizationType.F32:
            return self.data.view(np.float32).reshape(self.shape[::-1])
        if self.qtype == GGMLQuantizationType.F16:
            return self.data.view(np.float16).reshape(self.shape[::-1])
        return self.data


@dataclass
class Fragment:
    """A compute unit's data: role, layer, expert, unit range and slices (by source tensor name)."""

    role: str
    klass: str
    layer: int | None
    expert: int | None
    units: dict[str, Any]
    architecture: str
    slices: list[FragmentSlice]
    path: Path | None = None
    _closer: Any = field(default=None, repr=False)

    def get(self, tensor: str) -> FragmentSlice:
        for s in self.slices:
            if s.tensor == tensor:
                return s
        raise KeyError(tensor)

    def tensors(self) -> list[str]:
        return [s.tensor for s in self.slices]

    def describe(self) -> dict[str, Any]:
        """The manifest entry this fragment corresponds to (without id/file/bytes)."""
        spec = FragmentSpec(self.role, self.klass, self.layer, self.expert, self.units["kind"],
                            self.units["start"], self.units["stop"], [s.spec for s in self.slices])
        entry = fragment_json(spec)
        entry.pop("bytes")
        entry.pop("oversize")
        return entry

    def close(self) -> None:
        self.slices = []
        if self._closer is not None:
            self._closer.close()
            self._closer = None

    def __enter__(self) -> "Fragment":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def slice_data(buf: Any, s: AnySlice, contiguous: bool = True) -> np.ndarray:
    """The bytes of a slice inside a mapped source GGUF (a view; copied only if strided)."""
    if isinstance(s, ByteSlice):
        return np.frombuffer(buf, np.uint8, s.n_bytes, s.start)
    t = s.info
    arr = np.frombuffer(buf, np.uint8, t.n_bytes, t.abs_offset).reshape(t.n_planes, t.n_rows, t.row_bytes)
    b0, b1 = s.col_bytes
    view = arr[s.p0:s.p1, s.r0:s.r1, b0:b1]
    if len(s.shape) < 3:  # one plane (2-D source, or one expert of a 3-D tensor)
        view = view[0]
    return np.ascontiguousarray(view) if contiguous else view


def _meta(kv: dict[str, Any], key: str, where: str) -> Any:
    if key not in kv:
        raise FragmentError(f"{where}: not a libp2pia fragment (missing {key})")
    return kv[key]


def _fragment_from_header(header: GGUFHeader, buf: Any, where: str) -> Fragment:
    kv = header.kv
    rows, cols, planes = (_meta(kv, f"libp2pia.slices.{k}", where) for k in ("rows", "cols", "planes"))
    flags, shapes, types = (_meta(kv, f"libp2pia.slices.{k}", where) for k in ("flags", "src_shape", "src_type"))
    n = len(header.tensors)
    if not (len(rows) == len(cols) == len(planes) == 2 * n and len(flags) == len(types) == n and len(shapes) == 4 * n):
        raise FragmentError(f"{where}: fragment slice metadata does not match its {n} tensors")
    slices = []
    for i, t in enumerate(header.tensors):
        data = np.frombuffer(buf, np.uint8, t.n_bytes, t.abs_offset)
        if flags[i] & FLAG_BYTES:
            spec: AnySlice = ByteSlice(t.name, rows[2 * i], rows[2 * i + 1])
        else:
            src_shape = tuple(d for d in shapes[4 * i:4 * i + 4] if d)
            try:
                src = TensorInfo(t.name, src_shape, GGMLQuantizationType(types[i]), 0, 0)
            except ValueError as exc:
                raise FragmentError(f"{where}: slice {t.name} has unknown source type {types[i]}") from exc
            spec = Slice(src, rows[2 * i], rows[2 * i + 1], cols[2 * i], cols[2 * i + 1], planes[2 * i],
                         planes[2 * i + 1], bool(flags[i] & FLAG_DROP_PLANE), bool(flags[i] & FLAG_REPLICA))
            if spec.shape != t.shape or spec.qtype != t.qtype:
                raise FragmentError(f"{where}: slice {t.name} metadata disagrees with its tensor info")
            data = data.reshape(t.n_planes, t.n_rows, t.row_bytes) if len(t.shape) > 2 else \
                data.reshape(t.n_rows, t.row_bytes)
        slices.append(FragmentSlice(spec, data))
    layer, expert = _meta(kv, "libp2pia.fragment.layer", where), _meta(kv, "libp2pia.fragment.expert", where)
    return Fragment(_meta(kv, "libp2pia.fragment.role", where), _meta(kv, "libp2pia.fragment.class", where),
                    None if layer < 0 else layer, None if expert < 0 else expert,
                    {"kind": _meta(kv, "libp2pia.fragment.units.kind", where),
                     "start": _meta(kv, "libp2pia.fragment.units.start", where),
                     "stop": _meta(kv, "libp2pia.fragment.units.stop", where)},
                    _meta(kv, "libp2pia.fragment.architecture", where), slices)


def open_fragment(path: str | os.PathLike[str]) -> Fragment:
    """Open a fragment file (memory-mapped; call ``close()`` or use ``with``)."""
    p = Path(path)
    with open(p, "rb") as f:
        mm, size = map_readonly(f, p)
    try:
        header = parse_header(mm, size, str(p), p)
        for t in header.tensors:
            if t.end > size:
                raise FragmentError(f"{p}: fragment tensor {t.name} is truncated")
        frag = _fragment_from_header(header, mm, str(p))
    except (GGUFError, FragmentError):
        mm.close()
        raise
    frag.path = p
    frag._closer = _MapCloser(mm)
    return frag


class _MapCloser:
    """Closes a memory map once numpy views of it are gone (BufferError otherwise)."""

    def __init__(self, mm: mmap.mmap) -> None:
        self.mm = mm

    def close(self) -> None:
        try:
            self.mm.close()
        except BufferError:
            pass  # views still alive elsewhere; the map is released when they are


class GGUFFragments:
    """A plain GGUF seen as fragments through an in-memory plan ("run straight from a GGUF").

    ``manifest`` is the plan dict (no ids); ``fragment(i)`` gives fragment i of that plan with
    its data as views of the memory-mapped file (strided column slabs are copied)."""

    def __init__(self, path: str | os.PathLike[str],
                 max_fragment_bytes: int = limits.DEFAULT_MAX_FRAGMENT_BYTES) -> None:
        self.path = Path(path)
        self.header = read_header(self.path)
        with open(self.path, "rb") as f:
            self._mm, _ = map_readonly(f, self.path)
        self.hparams, self.specs = plan_specs(self.header, max_fragment_bytes, self._mm)
        self.manifest = build_manifest(self.hparams, self.specs, max_fragment_bytes, source_info(self.header))

    def __len__(self) -> int:
        return len(self.specs)

    def fragment(self, index: int) -> Fragment:
        spec = self.specs[index]
        return Fragment(spec.role, spec.klass, spec.layer, spec.expert,
                        {"kind": spec.kind, "start": spec.start, "stop": spec.stop}, self.header.architecture,
                        [FragmentSlice(s, slice_data(self._mm, s)) for s in spec.slices], self.path)

    def close(self) -> None:
        try:
            self._mm.close()
        except BufferError:
            pass

    def __enter__(self) -> "GGUFFragments":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
