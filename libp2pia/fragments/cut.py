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
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
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
                   src_fd: int | None = None, tag: str = "0") -> tuple[str, int]:
    """Write one fragment file named by its sha256 into ``directory``; return (id, size).

    ``buf`` is the mapped source; with ``src_fd`` (its file descriptor) contiguous pieces are
    copied in the kernel. ``tag`` keeps the temporary names of concurrent writers apart.
    Thread-safe: :func:`fragment` runs one call per core (hashlib and the copies release the GIL)."""
    tmp = directory / f".writing-{os.getpid()}-{tag}"
    pieces = _Pieces()
    w = StreamWriter(pieces, fragment_kvs(spec, architecture), fragment_tensors(spec))
    for s in spec.slices:
        w.write(slice_data(buf, s))
    w.close()
    if pieces.n != spec.size:
        raise FragmentError(f"fragment size {pieces.n} differs from the planned {spec.size} (bug)")
    h = hashlib.sha256()
    for p in pieces.parts:
        h.update(p)
    with open(tmp, "wb", buffering=0) as f:
        _write_parts(f, pieces.parts, src_fd, _map_base(buf) if src_fd is not None else 0, len(buf))
    for p in pieces.parts:
        p.release()
    fid = h.hexdigest()
    tmp.replace(directory / f"{fid}.gguf")
    return fid, pieces.n


def _default_threads() -> int:
    """One writer per usable core, at most MAX_FRAGMENT_THREADS (the page cache is the limit)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, limits.MAX_FRAGMENT_THREADS))


def _write_all(mm: Any, specs: list[FragmentSpec], architecture: str, directory: Path, src_fd: int,
               on_progress: Callable[[int], None] | None, threads: int) -> list[str]:
    """Write every fragment, ``threads`` at a time; ids in plan order. At most 2 x threads
    fragments are in flight, so peak memory stays a few fragments. On any error (or Ctrl-C)
    the queued ones are cancelled and the running ones finish before the error propagates."""
    ids: list[str] = []
    pending: deque[Future[tuple[str, int]]] = deque()
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fragment")
    try:
        for i, spec in enumerate(specs):
            pending.append(pool.submit(write_fragment, mm, spec, architecture, directory, src_fd, str(i)))
            while pending and (len(pending) >= 2 * threads or i == len(specs) - 1):
                fid, n = pending.popleft().result()
                ids.append(fid)
                if on_progress:
                    on_progress(n)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return ids


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
             on_progress: Callable[[int], None] | None = None, threads: int | None = None,
             hash_source: bool = False) -> dict[str, Any]:
    """Cut ``src`` into ``out_dir`` (must not exist or be empty); returns the manifest dict.

    ``threads`` fragments are hashed and written at once (default: one per core). With
    ``hash_source`` the manifest also records the source file's sha256 (``source.sha256``), at
    the cost of hashing every byte a second time; without it ``source.sha256`` is null. The
    fragments need no source hash: each is named by its own sha256, the manifest (named by
    the model id) lists them with their byte ranges, so a reassembled file is verified by
    construction."""
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
    hasher = (threading.Thread(target=_sha256_of, args=(mm, size, digest, stop), daemon=True)
              if hash_source else None)
    if hasher:
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
        ids = _write_all(mm, specs, header.architecture, tmp_dir, fsrc.fileno(), on_progress,
                         threads or _default_threads())
        if hasher:
            hasher.join()
        manifest = build_manifest(hp, specs, max_fragment_bytes, source_info(header, digest[0] if digest else None),
                                  ids)
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
        if hasher:
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
