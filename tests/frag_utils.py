"""Helpers shared by the fragment tests (not a test module)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader
from gguf import quants as gquants

from libp2pia.fragments.fileformat import FragmentSpec
from libp2pia.fragments.slices import ByteSlice, Slice
from libp2pia.gguf import GGUFHeader


def coverage(header: GGUFHeader, specs: list[FragmentSpec]) -> np.ndarray:
    """How many times each source byte is owned by a (non-replica) slice."""
    size = max([header.file_size, header.data_start] + [t.end for t in header.tensors])
    cov = np.zeros(size, np.uint8)
    for spec in specs:
        for s in spec.slices:
            if isinstance(s, ByteSlice):
                cov[s.start:s.stop] += 1
            elif not s.replica:
                t = s.info
                view = cov[t.abs_offset:t.end].reshape(t.n_planes, t.n_rows, t.row_bytes)
                b0, b1 = s.col_bytes
                view[s.p0:s.p1, s.r0:s.r1, b0:b1] += 1
    return cov


_CACHE: dict[tuple[int, str], np.ndarray] = {}


def source_tensor(reader: GGUFReader, name: str) -> Any:
    for t in reader.tensors:
        if t.name == name:
            return t
    raise KeyError(name)


def dequantized_source_box(reader: GGUFReader, s: Slice) -> np.ndarray:
    """Dequantize the whole source tensor and cut the box [planes, rows, cols] out of it."""
    key = (id(reader), s.name)
    full = _CACHE.get(key)
    if full is None:
        t = source_tensor(reader, s.name)
        full = gquants.dequantize(np.asarray(t.data), t.tensor_type)
        full = full.reshape(s.info.n_planes, s.info.n_rows, s.info.shape[0])
        if len(_CACHE) > 3:
            _CACHE.clear()
        _CACHE[key] = full
    box = full[s.p0:s.p1, s.r0:s.r1, s.c0:s.c1]
    return box


def check_fragment_dequantizes(reader: GGUFReader, fragment_path: Path) -> int:
    """Every sub-tensor of a fragment file, read with gguf.GGUFReader and dequantized, equals the
    matching slice of the dequantized source tensor. Returns the number of slices checked."""
    from libp2pia.fragments import open_fragment

    frag_reader = GGUFReader(fragment_path)
    with open_fragment(fragment_path) as frag:
        specs = [s.spec for s in frag.slices]
    checked = 0
    for spec, t in zip(specs, frag_reader.tensors):
        assert t.name == spec.name
        if isinstance(spec, ByteSlice):
            continue
        got = gquants.dequantize(np.asarray(t.data), t.tensor_type)
        want = dequantized_source_box(reader, spec)
        np.testing.assert_array_equal(got.reshape(want.shape), want)
        checked += 1
    return checked
