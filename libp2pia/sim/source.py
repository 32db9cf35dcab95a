"""Where a simulated plan comes from: a preset, a manifest, or ``plan`` on a GGUF header.

The presets are ``libp2pia.gguf.presets`` (real tensor tables of the target
models, written as header-only GGUFs) planned by ``libp2pia.fragments``; the
simulator has no planner of its own.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import Libp2piaError, ManifestError
from ..limits import DEFAULT_MAX_FRAGMENT_BYTES


def preset_names() -> tuple[str, ...]:
    from ..gguf.presets import PRESETS

    return tuple(PRESETS)


def plan_from_gguf(path: str | os.PathLike[str], max_fragment_bytes: int = DEFAULT_MAX_FRAGMENT_BYTES) -> dict[str, Any]:
    """``libp2pia.fragments`` plan of a GGUF, from its header alone."""
    from ..fragments.plan import plan

    return plan(path, max_fragment_bytes)


def plan_from_preset(name: str, max_fragment_bytes: int = DEFAULT_MAX_FRAGMENT_BYTES) -> dict[str, Any]:
    """Write the preset's header-only GGUF to a temporary directory and plan it."""
    from ..gguf.presets import write_preset

    with tempfile.TemporaryDirectory(prefix="libp2pia-sim-") as tmp:
        path = write_preset(name, Path(tmp) / f"{name}.gguf")
        return plan_from_gguf(path, max_fragment_bytes)


def plan_from_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: not a manifest object")
    return data


def load_plan(preset: str | None = None, manifest: str | None = None, gguf: str | None = None,
              max_fragment_bytes: int = DEFAULT_MAX_FRAGMENT_BYTES) -> dict[str, Any]:
    """Exactly one of ``preset``, ``manifest``, ``gguf``."""
    given = [x for x in (preset, manifest, gguf) if x]
    if len(given) != 1:
        raise Libp2piaError("give exactly one of --preset, --manifest, --gguf")
    if preset:
        return plan_from_preset(preset, max_fragment_bytes)
    if manifest:
        return plan_from_manifest(manifest)
    return plan_from_gguf(gguf, max_fragment_bytes)  # type: ignore[arg-type]
