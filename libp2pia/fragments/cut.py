"""``fragment``: cut a GGUF into fragment files + manifest.json, streaming from a memory map.

Peak memory is about one fragment (only strided column slabs are copied). Everything is written
into a temporary directory next to the output, which is renamed into place at the very end, so an
interrupted run never leaves a directory that looks complete. The source sha256 is computed by a
background thread (hashlib releases the GIL) while fragments are written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import limits
from ..errors import FragmentError, Libp2piaError
from ..gguf.reader import check_data_bounds, map_readonly, parse_header
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


def _sha256_of(buf: Any, size: int, out: list[str], stop: threading.Event) -> None:
    """sha256 of the whole source; ``stop`` ends it early (an interrupted run must not wait for
    the hash of a 450 GB file before it cleans up)."""
    h = hashlib.sha256()
    mv = memoryview(buf)
    try:
        for pos in range(0, size, limits.IO_CHUNK_BYTES):
            if stop.is_set():
                return
            h.update(mv[pos:pos + limits.IO_CHUNK_BYTES])
    finally:
        mv.release()
    out.append(h.hexdigest())


def _map_base(buf: Any) -> int:
    arr = np.frombuffer(buf, np.uint8, 1, 0)
    base = int(arr.ctypes.data)
    del arr
    return base


def _write_parts(f: Any, parts: list[memoryview], src_fd: int | None, base: int, src_size: int) -> None:
    """Write the pieces; large pieces that are contiguous bytes of the source are copied inside the
    kernel (copy_file_range, as cp does) instead of through user space."""
    for p in parts:
        if src_fd is not None and len(p) >= limits.IO_CHUNK_BYTES // 4:
            addr = int(np.frombuffer(p, np.uint8).ctypes.data)
            off = addr - base
            if 0 <= off and off + len(p) <= src_size:
                done = 0
                try:
                    while done < len(p):
                        n = os.copy_file_range(src_fd, f.fileno(), len(p) - done, off + done)
                        if n <= 0:
                            break
                        done += n
                except OSError:
                    pass
                if done == len(p):
                    continue
                f.write(p[done:])
                continue
        f.write(p)


def write_fragment(buf: Any, spec: FragmentSpec, architecture: str, directory: Path,
                   src_fd: int | None = None) -> tuple[str, int]:
    """Write one fragment file named by its sha256 into ``directory``; return (id, size).

    ``buf`` is the mapped source; with ``src_fd`` (its file descriptor) contiguous pieces are
    copied in the kernel. The sha256 runs in a second thread meanwhile (hashlib releases the GIL)."""
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
            _write_parts(f, pieces.parts, src_fd, _map_base(buf) if src_fd is not None else 0, len(buf))
    finally:
        hasher.join()
    for p in pieces.parts:
        p.release()
    fid = digest[0]
    tmp.replace(directory / f"{fid}.gguf")
    return fid, pieces.n


def _missing_parents(out: Path) -> list[Path]:
    """The ancestors of ``out`` that do not exist yet, deepest first."""
    missing = []
    p = out.parent
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    return missing


def fragment(src: str | os.PathLike[str], out_dir: str | os.PathLike[str],
             max_fragment_bytes: int = limits.DEFAULT_MAX_FRAGMENT_BYTES,
             on_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Cut ``src`` into ``out_dir`` (must not exist or be empty); returns the manifest dict."""
    src_p, out = Path(src), Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Libp2piaError(f"output {out} already exists and is not an empty directory")
    tmp_dir = out.parent / f".{out.name}.tmp-{os.getpid()}"
    fsrc = open(src_p, "rb")  # kept open: contiguous pieces are copied from its descriptor
    try:
        mm, size = map_readonly(fsrc, src_p)
    except BaseException:
        fsrc.close()
        raise
    # The source hash needs no header: start it first so it overlaps parsing and planning too.
    digest: list[str] = []
    stop = threading.Event()
    hasher = threading.Thread(target=_sha256_of, args=(mm, size, digest, stop), daemon=True)
    hasher.start()
    made: list[Path] = []
    try:
        header = parse_header(mm, size, str(src_p), src_p)
        check_data_bounds(header)
        hp, specs = plan_specs(header, max_fragment_bytes, mm)
        # parents are created only once the source is known good, and removed again on failure
        made = _missing_parents(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir.mkdir()
        ids = []
        for spec in specs:
            fid, n = write_fragment(mm, spec, header.architecture, tmp_dir, fsrc.fileno())
            ids.append(fid)
            if on_progress:
                on_progress(n)
        hasher.join()
        manifest = build_manifest(hp, specs, max_fragment_bytes, source_info(header, digest[0]), ids)
        tmp_manifest = tmp_dir / ".manifest.json.tmp"
        # indented for people on small models; one line (C encoder, fast) for huge ones
        indent = 1 if len(specs) <= limits.MANIFEST_INDENT_MAX_FRAGMENTS else None
        tmp_manifest.write_text(json.dumps(manifest, indent=indent) + "\n")
        tmp_manifest.replace(tmp_dir / "manifest.json")
        if out.exists():
            out.rmdir()  # empty (checked above)
        tmp_dir.replace(out)
    except BaseException:
        stop.set()
        hasher.join()
        shutil.rmtree(tmp_dir, ignore_errors=True)
        for d in made:  # deepest first; only the ones this call created, only if still empty
            try:
                d.rmdir()
            except OSError:
                break
        raise
    finally:
        fsrc.close()
        try:
            mm.close()
        except BufferError:
            pass
    return manifest
