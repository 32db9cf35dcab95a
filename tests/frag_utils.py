"""Helpers shared by the fragment tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf import quants as gquants

from libp2pia.fragments.fileformat import FragmentSpec
from libp2pia.fragments.slices import ByteSlice, Slice
from libp2pia.gguf import GGUFHeader, read_header


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


class Source:
    """The original GGUF for comparisons: our header (checked against gguf-py in test_gguf_reader)
    plus a read-only memory map of the bytes (gguf-py's reader takes ~30 s on Gemma's 262k vocab)."""

    def __init__(self, path: Path) -> None:
        self.header = read_header(path)
        self.raw = np.memmap(path, np.uint8, mode="r")


def dequantized_source_box(src: Source, s: Slice) -> np.ndarray:
    """Dequantize the source rows [r0, r1) of planes [p0, p1) over all columns, then cut the
    columns [c0, c1): the slice of the original tensor the fragment claims to hold."""
    t = src.header.by_name[s.name]
    raw = src.raw[t.abs_offset:t.end].reshape(t.n_planes, t.n_rows, t.row_bytes)[s.p0:s.p1, s.r0:s.r1]
    full = gquants.dequantize(np.ascontiguousarray(raw), t.qtype)
    return full.reshape(s.p1 - s.p0, s.r1 - s.r0, t.shape[0])[:, :, s.c0:s.c1]


def check_fragment_dequantizes(src: Source, fragment_path: Path) -> int:
    """Every sub-tensor of a fragment file, read with gguf.GGUFReader and dequantized, equals the
    matching slice of the dequantized source tensor. Returns the number of slices checked."""
    from libp2pia.fragments import open_fragment

    frag_reader = GGUFReader(fragment_path)
    with open_fragment(fragment_path) as frag:
        specs = [s.spec for s in frag.slices]
    checked = 0
    for spec, t in zip(specs, frag_reader.tensors, strict=True):  # a missing tensor must fail, not be skipped
        assert t.name == spec.name
        if isinstance(spec, ByteSlice):
            continue
        got = gquants.dequantize(np.asarray(t.data), t.tensor_type)
        want = dequantized_source_box(src, spec)
        np.testing.assert_array_equal(got.reshape(want.shape), want)
        checked += 1
    return checked
