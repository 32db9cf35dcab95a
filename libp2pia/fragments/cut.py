"""``fragment``: cut a GGUF into fragment files + manifest.json, streaming from a memory map.

Peak memory is about one fragment (only strided column slabs are copied). Everything is written
into a temporary directory next to the output, which is renamed into place at the very end, so an
interrupted run never leaves a directory that looks complete. The source sha256 is computed by a
background thread (hashlib releases the GIL) while fragments are written.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Callable

from .. import limits
from ..errors import FragmentError, Libp2piaError
from ..gguf.reader import check_data_bounds, parse_header
from ..gguf.writer import StreamWriter
from .fileformat import FragmentSpec, fragment_kvs, fragment_tensors
from .manifest import build_manifest
from .plan import plan_specs, source_info
from .reader import slice_data


class _Pieces:
    """Collects the buffers StreamWriter emits (views of the source map, no copies)."""

    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.n = 0

    def write(self, b: Any) -> None:
        mv = memoryview(b).cast("B")
        self.parts.append(mv)
        self.n += len(mv)


def _hash_parts(parts: list[Any], out: list[str]) -> None:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    out.append(h.hexdigest())


def _sha256_of(buf: Any, size: int, out: list[str]) -> None:
    h = hashlib.sha256()
    mv = memoryview(buf)
    for pos in range(0, size, limits.IO_CHUNK_BYTES):
        h.update(mv[pos:pos + limits.IO_CHUNK_BYTES])
    mv.release()
    out.append(h.hexdigest())


def write_fragment(buf: Any, spec: FragmentSpec, architecture: str, directory: Path) -> tuple[str, int]:
    """Write one fragment file named by its sha256 into ``directory``; return (id, size)."""
    # Hash in a second thread while this one writes: both release the GIL on large buffers.
    tmp = directory / f".writing-{os.getpid()}"
    pieces = _Pieces()
    w = StreamWriter(pieces, fragment_kvs(spec, architecture), fragment_tensors(spec))
    for s in spec.slices:
        w.write(slice_data(buf, s))
    w.close()
    if pieces.n != spec.size:
        raise FragmentError(f"fragment size {pieces.n} differs from the planned {spec.size} (bug)")
    digest: list[str] = []
    hasher = threading.Thread(target=_hash_parts, args=(pieces.parts, digest))
    hasher.start()
    try:
        with open(tmp, "wb", buffering=0) as f:
            for p in pieces.parts:
                f.write(p)
    finally:
        hasher.join()
    for p in pieces.parts:
        p.release()
    fid = digest[0]
    tmp.replace(directory / f"{fid}.gguf")
    return fid, pieces.n


def fragment(src: str | os.PathLike[str], out_dir: str | os.PathLike[str],
             max_fragment_bytes: int = limits.DEFAULT_MAX_FRAGMENT_BYTES,
             on_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Cut ``src`` into ``out_dir`` (must not exist or be empty); returns the manifest dict."""
    src_p, out = Path(src), Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Libp2piaError(f"output {out} already exists and is not an empty directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = out.parent / f".{out.name}.tmp-{os.getpid()}"
    with open(src_p, "rb") as fsrc:
        size = os.fstat(fsrc.fileno()).st_size
        if size == 0:
            raise Libp2piaError(f"{src_p}: not a GGUF file (empty)")
        mm = mmap.mmap(fsrc.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        header = parse_header(mm, size, str(src_p), src_p)
        check_data_bounds(header)
        hp, specs = plan_specs(header, max_fragment_bytes, mm)
        digest: list[str] = []
        hasher = threading.Thread(target=_sha256_of, args=(mm, size, digest), daemon=True)
        hasher.start()
        tmp_dir.mkdir()
        try:
            ids = []
            for spec in specs:
                fid, n = write_fragment(mm, spec, header.architecture, tmp_dir)
                ids.append(fid)
                if on_progress:
                    on_progress(n)
            hasher.join()
            manifest = build_manifest(hp, specs, max_fragment_bytes, source_info(header, digest[0]), ids)
            tmp_manifest = tmp_dir / ".manifest.json.tmp"
            tmp_manifest.write_text(json.dumps(manifest, indent=1) + "\n")
            tmp_manifest.replace(tmp_dir / "manifest.json")
            if out.exists():
                out.rmdir()  # empty (checked above)
            tmp_dir.replace(out)
        except BaseException:
            hasher.join()
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
    finally:
        try:
            mm.close()
        except BufferError:
            pass
    return manifest
