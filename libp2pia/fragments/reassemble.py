"""Verify fragments against a manifest and rebuild the original GGUF bit for bit.

Order of checks: the manifest (format, model id = hash of its canonical content), then every
fragment (present, sha256 = id, its own metadata = the manifest entry), and only then the output
is written: to a temporary name next to it, sha256-checked against ``source.sha256``, renamed.
Bytes no fragment covers are zero (alignment padding; non-zero gaps travel as opaque fragments).
"""

from __future__ import annotations

import hashlib
import mmap
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import limits
from ..errors import FragmentError, GGUFError, Libp2piaError, ManifestError
from ..gguf.reader import parse_header
from .manifest import check_fields, load_manifest
from .plan import HEADER_SLICE
from .reader import Fragment, open_fragment
from .slices import ByteSlice, Slice


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(limits.IO_CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def verify(manifest_path: str | os.PathLike[str],
           on_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Check the manifest and every fragment it names; return the manifest. Raises on the first problem."""
    mpath = Path(manifest_path)
    manifest = load_manifest(mpath)
    check_fields(manifest, str(mpath), complete=True)
    for i, entry in enumerate(manifest["fragments"]):
        path = mpath.parent / entry["file"]
        if not path.is_file():
            raise FragmentError(f"missing fragment #{i} {entry['file']} ({entry['role']}, layer {entry['layer']})")
        digest = file_sha256(path)
        if digest != entry["id"]:
            raise FragmentError(f"corrupted fragment #{i} {entry['file']}: sha256 is {digest[:16]}…")
        try:
            with open_fragment(path) as frag:
                described = frag.describe()
        except GGUFError as exc:
            raise FragmentError(f"fragment #{i} {entry['file']} is not a valid fragment: {exc}") from exc
        expected = {k: v for k, v in entry.items() if k not in ("id", "file", "bytes", "oversize")}
        if described != expected:
            raise FragmentError(f"fragment #{i} {entry['file']} does not match its manifest entry "
                                f"(swapped or foreign fragment)")
        if path.stat().st_size != entry["bytes"]:  # the file is right (hash, metadata); its listed size is not
            raise ManifestError(f"{mpath}: fragment #{i} {entry['file']} has {path.stat().st_size} bytes, "
                                f"the manifest says {entry['bytes']}")
        if on_progress:
            on_progress(entry["bytes"])
    return manifest


def reassemble(manifest_path: str | os.PathLike[str], out_path: str | os.PathLike[str], overwrite: bool = False,
               on_progress: Callable[[int], None] | None = None) -> str:
    """Rebuild the source GGUF; returns its sha256 (equal to the manifest's ``source.sha256`` when
    the manifest records one, or it raises). Every fragment's hash is checked first either way."""
    mpath, out = Path(manifest_path), Path(out_path)
    if out.is_dir():
        raise FragmentError(f"output {out} is a directory")
    if not out.parent.is_dir():  # checked before hashing every fragment, and named (not the temp file)
        raise Libp2piaError(f"output directory {out.parent} does not exist")
    if out.exists() and not overwrite:
        raise FragmentError(f"output {out} already exists (use --force to replace it)")
    manifest = verify(mpath)
    source = manifest["source"]
    size, want = int(source["bytes"]), source.get("sha256")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w+b") as f:
            f.truncate(size)
            if size:
                with mmap.mmap(f.fileno(), size) as mm:
                    _paint(mpath.parent, manifest, mm, on_progress)
                    mm.flush()
        got = file_sha256(tmp)
        if want and got != want:
            raise FragmentError(f"reassembled file sha256 {got[:16]}… differs from the source {want[:16]}…")
        if overwrite:
            tmp.replace(out)
        else:
            _link_no_clobber(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return got


def _link_no_clobber(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out`` unless ``out`` appeared meanwhile (rename would silently replace it)."""
    try:
        os.link(tmp, out)
    except FileExistsError as exc:
        raise FragmentError(f"output {out} already exists (use --force to replace it)") from exc
    except OSError:  # a filesystem without hard links: fall back to the (checked above) rename
        tmp.replace(out)


def _paint(directory: Path, manifest: dict[str, Any], mm: mmap.mmap,
           on_progress: Callable[[int], None] | None) -> None:
    entries = manifest["fragments"]
    # Pass 1: raw byte ranges (the source header first of all), then parse the header back.
    for entry in entries:
        if any(s["type"] == "bytes" for s in entry["slices"]):
            with open_fragment(directory / entry["file"]) as frag:
                for s in frag.slices:
                    if isinstance(s.spec, ByteSlice):
                        _check_range(s.spec.start, s.spec.stop, len(mm), entry["file"])
                        mm[s.spec.start:s.spec.stop] = s.data.tobytes()
                del frag
    header_bytes = int(manifest["source"]["header_bytes"])
    try:
        header = parse_header(mm[:header_bytes], len(mm), "reassembled header")
    except GGUFError as exc:
        raise FragmentError(f"the core fragments do not hold a valid source header: {exc}") from exc
    # Pass 2: sub-tensors into their boxes.
    for entry in entries:
        with open_fragment(directory / entry["file"]) as frag:
            _paint_tensors(frag, header, mm)
            del frag
        if on_progress:
            on_progress(entry["bytes"])


def _check_range(a: int, b: int, size: int, where: str) -> None:
    if not 0 <= a <= b <= size:
        raise FragmentError(f"{where}: byte range [{a}, {b}) is outside the {size}-byte source")


def _paint_tensors(frag: Fragment, header: Any, mm: mmap.mmap) -> None:
    for s in frag.slices:
        spec = s.spec
        if not isinstance(spec, Slice) or spec.replica or spec.name == HEADER_SLICE:
            continue
        t = header.by_name.get(spec.name)
        if t is None or t.shape != spec.info.shape or t.qtype != spec.info.qtype:
            raise FragmentError(f"{frag.path}: slice {spec.name} does not match the source header")
        if not (0 <= spec.p0 < spec.p1 <= t.n_planes and 0 <= spec.r0 < spec.r1 <= t.n_rows
                and 0 <= spec.c0 < spec.c1 <= t.shape[0]):
            raise FragmentError(f"{frag.path}: slice {spec.name} lies outside its tensor")
        _check_range(t.abs_offset, t.end, len(mm), str(frag.path))
        dest = np.frombuffer(mm, np.uint8, t.n_bytes, t.abs_offset).reshape(t.n_planes, t.n_rows, t.row_bytes)
        b0, b1 = spec.col_bytes
        dest[spec.p0:spec.p1, spec.r0:spec.r1, b0:b1] = s.data.reshape(spec.p1 - spec.p0, spec.r1 - spec.r0, b1 - b0)
        del dest
