"""Pack compute units into fragments no bigger than the limit (whole fragment file size).

* Unit families (units.py) are split into the fewest contiguous, balanced pieces whose fragment
  files fit; boundaries stay on the family's step. If even one step does not fit, the family's
  finer fallback is used (GQA group -> Q heads with K/V replicated), else each step becomes one
  fragment marked ``oversize``.
* Core (source header bytes [0, data_start) + 1-D norms) and opaque data (unknown tensors,
  non-zero gaps between tensors, trailing bytes) are packed greedily as byte ranges; the header is
  split into several core parts when it exceeds the limit.
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np

from .. import limits
from ..errors import Libp2piaError
from ..gguf.format import DEFAULT_ALIGNMENT
from ..gguf.hparams import hparams
from ..gguf.reader import GGUFHeader, read_header
from .fileformat import FragmentSpec, fragment_file_size
from .manifest import build_manifest, summary
from .slices import AnySlice, ByteSlice, Slice, whole
from .units import Family, build_families

HEADER_SLICE = "libp2pia.source_header"


def _spec(fam: Family, a: int, b: int, arch: str) -> FragmentSpec:
    spec = FragmentSpec(fam.role, fam.klass, fam.label(a) if fam.kind == "layers" else fam.layer, fam.expert,
                        fam.kind, fam.label(a), fam.label(b) if b < fam.n else fam.label(b - 1) + 1,
                        fam.make(a, b))
    spec.size = fragment_file_size(spec, arch)
    return spec


def pack_family(fam: Family, limit: int, arch: str) -> list[FragmentSpec]:
    # The experts of one layer share one shape: plan the boundaries once per shape.
    probe_slices = fam.make(0, fam.n)
    key = (arch, limit, fam.role, fam.kind, fam.n, fam.step, fam.uniform,
           tuple((s.name, s.shape, s.qtype, s.replica) for s in probe_slices))
    bounds = _BOUNDS_CACHE.get(key) if fam.fallback is None else None
    if bounds is None:
        bounds = _choose_bounds(fam, limit, arch)
        if bounds is None:  # one unit does not fit: the finer fallback families take over
            return [s for f in fam.fallback or [] for s in pack_family(f, limit, arch)]
        if len(_BOUNDS_CACHE) > 10_000:
            _BOUNDS_CACHE.clear()
        _BOUNDS_CACHE[key] = bounds
    specs = [_spec(fam, a, b, arch) for a, b in zip(bounds, bounds[1:])]
    for s in specs:
        s.oversize = s.size > limit
    return specs


_BOUNDS_CACHE: dict[tuple, list[int]] = {}


def _choose_bounds(fam: Family, limit: int, arch: str) -> list[int] | None:
    """Fewest balanced boundaries (multiples of ``step``) whose fragments fit; every step on its
    own if even one step does not fit (None if the family has a finer fallback for that case)."""
    n_units = math.ceil(fam.n / fam.step)

    def bounds_for(k: int) -> list[int]:
        return sorted({min(fam.n, round(i * n_units / k) * fam.step) for i in range(k + 1)})

    def worst(bounds: list[int]) -> int:
        return max(_spec(fam, a, b, arch).size for a, b in zip(bounds, bounds[1:]))

    # Units of a uniform family differ only in the last (partial) one: probing two is enough.
    probe = range(n_units) if not fam.uniform or n_units <= 2 else (0, n_units - 1)
    biggest = max(_spec(fam, i * fam.step, min(fam.n, (i + 1) * fam.step), arch).size for i in probe)
    if biggest > limit:
        return None if fam.fallback else bounds_for(n_units)
    k = max(1, math.ceil(_spec(fam, 0, fam.n, arch).size / limit))
    while True:
        bounds = bounds_for(k)
        w = worst(bounds)
        if w <= limit:
            return bounds
        k = min(n_units, max(k + 1, math.ceil(k * w / limit)))


def pack_greedy(items: list[AnySlice], limit: int, arch: str, role: str) -> list[FragmentSpec]:
    """Fill fragments in order; byte ranges are split where a fragment is full, tensors are not."""
    specs: list[FragmentSpec] = []
    cur: list[AnySlice] = []

    def make(slices: list[AnySlice]) -> FragmentSpec:
        spans = [(s.start, s.stop) for s in slices if isinstance(s, ByteSlice)]
        start, stop = (min(a for a, _ in spans), max(b for _, b in spans)) if spans else (0, 0)
        spec = FragmentSpec(role, "always", None, None, "bytes", start, stop, list(slices))
        spec.size = fragment_file_size(spec, arch)
        spec.oversize = spec.size > limit
        return spec

    def flush() -> None:
        if cur:
            specs.append(make(cur))
            cur.clear()

    for item in items:
        if isinstance(item, Slice):
            if cur and make(cur + [item]).size > limit:
                flush()
            cur.append(item)
            continue
        pos = item.start
        while pos < item.stop:
            overhead = make(cur + [ByteSlice(item.name, pos, pos + 1)]).size - DEFAULT_ALIGNMENT
            room = limit - overhead
            take = min(item.stop - pos, room - room % DEFAULT_ALIGNMENT)
            if take <= 0:
                if not cur:
                    raise Libp2piaError(f"fragment limit {limit} bytes is too small to hold any {role} data")
                flush()
                continue
            cur.append(ByteSlice(item.name, pos, pos + take))
            pos += take
            if pos < item.stop:
                flush()
    flush()
    return specs


def nonzero_gaps(header: GGUFHeader, buf: Any) -> list[ByteSlice]:
    """Bytes of the data section that no tensor covers (alignment padding, trailing data) and that
    are not all zero: they must travel in opaque fragments for a bit-perfect reassembly."""
    gaps, pos = [], header.data_start
    for t in sorted(header.tensors, key=lambda t: t.offset):
        gaps.append((pos, t.abs_offset))
        pos = t.end
    gaps.append((pos, header.file_size))
    out = []
    for i, (a, b) in enumerate(gaps):
        if b > a and np.frombuffer(buf, np.uint8, b - a, a).any():
            out.append(ByteSlice(f"libp2pia.gap.{i}", a, b))
    return out


def plan_specs(header: GGUFHeader, max_fragment_bytes: int = limits.DEFAULT_MAX_FRAGMENT_BYTES,
               buf: Any = None) -> tuple[dict[str, Any], list[FragmentSpec]]:
    """(hyper-parameters, fragment specs) for a header. With ``buf`` (the mapped file) non-zero
    gaps are found and carried; without it (header only) gaps are assumed to be zero padding."""
    if max_fragment_bytes < limits.MIN_FRAGMENT_BYTES:
        raise Libp2piaError(f"fragment size limit {max_fragment_bytes} is below the minimum "
                            f"{limits.MIN_FRAGMENT_BYTES} bytes")
    if max_fragment_bytes > limits.MAX_FRAGMENT_LIMIT_BYTES:
        raise Libp2piaError(f"fragment size limit {max_fragment_bytes} is above the maximum "
                            f"{limits.MAX_FRAGMENT_LIMIT_BYTES} bytes (1 TiB)")
    hp = hparams(header)
    arch = header.architecture
    fams, core, leftover = build_families(header, hp)
    specs = pack_greedy([ByteSlice(HEADER_SLICE, 0, header.data_start)] + [whole(t) for t in core],
                        max_fragment_bytes, arch, "core")
    for fam in fams:
        specs += pack_family(fam, max_fragment_bytes, arch)
    opaque: list[AnySlice] = [ByteSlice(t.name, t.abs_offset, t.end) for t in leftover]
    if buf is not None:
        opaque += nonzero_gaps(header, buf)
    specs += pack_greedy(sorted(opaque, key=lambda s: s.start), max_fragment_bytes, arch, "opaque")
    return hp, specs


def leftover_names(specs: list[FragmentSpec]) -> list[str]:
    """Source tensors carried as opaque bytes (reported by inspect/plan)."""
    return sorted({s.name for f in specs if f.role == "opaque" for s in f.slices
                   if not s.name.startswith("libp2pia.")})



def source_info(header: GGUFHeader, sha256: str | None = None) -> dict[str, Any]:
    """The manifest's ``source`` block. For a header-only file ``bytes`` is the size the full file
    would have (end of the last tensor) and ``sha256`` is None."""
    end = max([header.data_start] + [t.end for t in header.tensors])
    return {"file_name": header.path.name if header.path else None,
            "bytes": header.file_size if header.data_present else end,
            "sha256": sha256, "header_bytes": header.data_start, "alignment": header.alignment,
            "gguf_version": header.version}


def plan(path: str | os.PathLike[str], max_fragment_bytes: int = limits.DEFAULT_MAX_FRAGMENT_BYTES,
         replication: Sequence[int] = limits.DEFAULT_PLAN_REPLICATION) -> dict[str, Any]:
    """The fragment plan of a GGUF from its header alone (no tensor data is read).

    Returns the manifest dict (fragments without id/file, no model_id) plus ``summary``
    (see :func:`libp2pia.fragments.manifest.summary`)."""
    header = read_header(path, require_data=False)
    hp, specs = plan_specs(header, max_fragment_bytes)
    out = build_manifest(hp, specs, max_fragment_bytes, source_info(header))
    out["summary"] = summary(hp, out["fragments"], max_fragment_bytes, replication)
    return out
