"""The fragment file: a valid GGUF holding re-packed sub-tensors plus ``libp2pia.*`` metadata.

Metadata keys (all numbers fixed-width, so the header size depends only on the tensor names and
the slice count; that lets ``plan`` compute every fragment's exact file size without writing it):

| key | type | meaning |
|---|---|---|
| libp2pia.fragment.version | u32 | fragment format version (1) |
| libp2pia.fragment.architecture | string | source architecture |
| libp2pia.fragment.role / .class | string | compute-unit role, always/conditional |
| libp2pia.fragment.layer / .expert | i32 | -1 when not applicable |
| libp2pia.fragment.units.kind / .start / .stop | string, u64, u64 | unit range |
| libp2pia.slices.rows / .cols / .planes | u64[2n] | [start, stop) per slice (bytes: rows = source byte range) |
| libp2pia.slices.flags | u8[n] | bit0 drop_plane, bit1 replica, bit2 raw bytes |
| libp2pia.slices.src_shape | u64[4n] | source tensor shape (GGUF order, zero-padded) |
| libp2pia.slices.src_type | u32[n] | source ggml type |

Tensor i of the file is slice i, named by the source tensor name (raw byte ranges: see slices.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from gguf import GGUFValueType as V

from ..gguf.writer import KV, TensorSpec, encode_header
from ..gguf.format import DEFAULT_ALIGNMENT, align_up
from .slices import AnySlice, ByteSlice

FRAGMENT_VERSION = 1
FLAG_DROP_PLANE, FLAG_REPLICA, FLAG_BYTES = 1, 2, 4


@dataclass
class FragmentSpec:
    """One planned fragment: a compute unit (or a piece of one) and the slices it holds."""

    role: str
    klass: str
    layer: int | None
    expert: int | None
    kind: str
    start: int
    stop: int
    slices: list[AnySlice]
    oversize: bool = False
    size: int = 0


def fragment_kvs(spec: FragmentSpec, architecture: str) -> list[KV]:
    rows, cols, planes, flags, shapes, types = [], [], [], [], [], []
    for s in spec.slices:
        if isinstance(s, ByteSlice):
            rows += [s.start, s.stop]
            cols += [0, 0]
            planes += [0, 0]
            flags.append(FLAG_BYTES)
            shapes += [s.stop - s.start, 0, 0, 0]
            types.append(int(s.qtype))
        else:
            rows += [s.r0, s.r1]
            cols += [s.c0, s.c1]
            planes += [s.p0, s.p1]
            flags.append((FLAG_DROP_PLANE if s.drop_plane else 0) | (FLAG_REPLICA if s.replica else 0))
            shp = list(s.info.shape)
            shapes += shp + [0] * (4 - len(shp))
            types.append(int(s.qtype))
    return [
        KV("libp2pia.fragment.version", V.UINT32, FRAGMENT_VERSION),
        KV("libp2pia.fragment.architecture", V.STRING, architecture),
        KV("libp2pia.fragment.role", V.STRING, spec.role),
        KV("libp2pia.fragment.class", V.STRING, spec.klass),
        KV("libp2pia.fragment.layer", V.INT32, -1 if spec.layer is None else spec.layer),
        KV("libp2pia.fragment.expert", V.INT32, -1 if spec.expert is None else spec.expert),
        KV("libp2pia.fragment.units.kind", V.STRING, spec.kind),
        KV("libp2pia.fragment.units.start", V.UINT64, spec.start),
        KV("libp2pia.fragment.units.stop", V.UINT64, spec.stop),
        KV("libp2pia.slices.rows", V.ARRAY, rows, V.UINT64),
        KV("libp2pia.slices.cols", V.ARRAY, cols, V.UINT64),
        KV("libp2pia.slices.planes", V.ARRAY, planes, V.UINT64),
        KV("libp2pia.slices.flags", V.ARRAY, flags, V.UINT8),
        KV("libp2pia.slices.src_shape", V.ARRAY, shapes, V.UINT64),
        KV("libp2pia.slices.src_type", V.ARRAY, types, V.UINT32),
    ]


def fragment_tensors(spec: FragmentSpec) -> list[TensorSpec]:
    return [TensorSpec(s.name, s.shape, s.qtype) for s in spec.slices]


def fragment_header(spec: FragmentSpec, architecture: str) -> bytes:
    return encode_header(fragment_kvs(spec, architecture), fragment_tensors(spec))


_HEADER_SIZE_CACHE: dict[tuple, int] = {}


def fragment_file_size(spec: FragmentSpec, architecture: str) -> int:
    """Exact size of the fragment file. The header size depends only on strings, counts and ranks,
    so it is cached on those (planning Mistral Large 3 sizes ~10^5 candidate fragments)."""
    key = (architecture, spec.role, spec.klass, spec.kind,
           tuple((s.name, len(s.shape)) for s in spec.slices))
    head = _HEADER_SIZE_CACHE.get(key)
    if head is None:
        head = len(fragment_header(spec, architecture))
        if len(_HEADER_SIZE_CACHE) > 200_000:
            _HEADER_SIZE_CACHE.clear()
        _HEADER_SIZE_CACHE[key] = head
    return head + sum(align_up(s.n_bytes, DEFAULT_ALIGNMENT) for s in spec.slices)
