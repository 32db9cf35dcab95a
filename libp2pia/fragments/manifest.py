"""The manifest (contract in BRIEF.md): JSON shapes, model id, summary figures, loading/validation."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from gguf import GGMLQuantizationType

from .. import limits
from ..errors import ManifestError
from .fileformat import FragmentSpec
from .slices import AnySlice, ByteSlice

FORMAT = "libp2pia-manifest"
_HEX64 = re.compile(r"[0-9a-f]{64}")


_TYPE_NAMES = {t: t.name for t in GGMLQuantizationType}  # Enum.name is slow in a 10^5 loop


def slice_json(s: AnySlice) -> dict[str, Any]:
    if isinstance(s, ByteSlice):
        return {"tensor": s.name, "type": "bytes", "shape": [s.stop - s.start], "expert": None, "rows": None,
                "cols": None, "planes": None, "bytes": [s.start, s.stop], "replica": False}
    info = s.info
    ndim = len(info.shape)
    shape = [s.c1 - s.c0, s.r1 - s.r0] if ndim > 1 else [s.c1 - s.c0]
    planes = None
    if ndim > 2 and not s.drop_plane:
        shape.append(s.p1 - s.p0)
        planes = [s.p0, s.p1]
    return {"tensor": info.name, "type": _TYPE_NAMES[info.qtype], "shape": shape,
            "expert": s.p0 if s.drop_plane else None, "rows": [s.r0, s.r1], "cols": [s.c0, s.c1],
            "planes": planes, "bytes": None, "replica": s.replica}


def fragment_json(spec: FragmentSpec, fragment_id: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if fragment_id is not None:
        entry = {"id": fragment_id, "file": f"{fragment_id}.gguf"}
    entry.update({"bytes": spec.size, "role": spec.role, "class": spec.klass, "layer": spec.layer,
                  "expert": spec.expert, "units": {"kind": spec.kind, "start": spec.start, "stop": spec.stop},
                  "oversize": spec.oversize, "slices": [slice_json(s) for s in spec.slices]})
    return entry


def canonical_bytes(obj: dict[str, Any]) -> bytes:
    body = {k: v for k, v in obj.items() if k != "model_id"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def with_model_id(manifest: dict[str, Any]) -> dict[str, Any]:
    out = {"format": manifest["format"], "format_version": manifest["format_version"],
           "model_id": hashlib.sha256(canonical_bytes(manifest)).hexdigest()}
    out.update({k: v for k, v in manifest.items() if k not in out})
    return out


def build_manifest(hp: dict[str, Any], specs: Sequence[FragmentSpec], max_fragment_bytes: int,
                   source: dict[str, Any], ids: Sequence[str] | None = None) -> dict[str, Any]:
    """The manifest dict; without ``ids`` it is a plan (no fragment id/file, no model id)."""
    body = {"format": FORMAT, "format_version": limits.MANIFEST_FORMAT_VERSION,
            "architecture": hp["architecture"], "hparams": hp, "max_fragment_bytes": max_fragment_bytes,
            "source": source,
            "fragments": [fragment_json(s, None if ids is None else ids[i]) for i, s in enumerate(specs)]}
    return with_model_id(body) if ids is not None else body


def summary(hp: dict[str, Any], fragments: Sequence[dict[str, Any]], max_fragment_bytes: int,
            replication: Sequence[int] = limits.DEFAULT_PLAN_REPLICATION,
            budget: int = limits.DEFAULT_WORKER_STORAGE_BYTES) -> dict[str, Any]:
    """Per-class/role totals, fragments touched per token, peers needed per replication factor.

    Touched per token = every always-active fragment + for each MoE layer the fragments of its
    ``n_expert_used`` routed experts (the largest ones, so it is an upper bound).
    Peers(R) = ceil(fragments x R / fragments_per_peer), fragments_per_peer = max(1, budget // limit).
    """
    by_class: dict[str, dict[str, int]] = defaultdict(lambda: {"fragments": 0, "bytes": 0})
    by_role: dict[str, dict[str, int]] = defaultdict(lambda: {"fragments": 0, "bytes": 0})
    per_expert: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for f in fragments:
        for table, key in ((by_class, f["class"]), (by_role, f["role"])):
            table[key]["fragments"] += 1
            table[key]["bytes"] += f["bytes"]
        if f["class"] == "conditional":
            acc = per_expert[f["layer"]][f["expert"]]
            acc[0] += 1
            acc[1] += f["bytes"]
    k = int(hp.get("n_expert_used") or 0)
    cond_frags = cond_bytes = 0
    for experts in per_expert.values():
        top = sorted(experts.values(), reverse=True)[:k]
        cond_frags += sum(c for c, _ in top)
        cond_bytes += sum(b for _, b in top)
    sizes = sorted(f["bytes"] for f in fragments)
    n = len(sizes)
    per_peer = max(1, budget // max_fragment_bytes)
    always = by_class.get("always", {"fragments": 0, "bytes": 0})
    return {
        "fragments": n,
        "bytes": sum(sizes),
        "by_class": dict(by_class),
        "by_role": dict(sorted(by_role.items())),
        "oversize": [{"index": i, "role": f["role"], "layer": f["layer"], "bytes": f["bytes"]}
                     for i, f in enumerate(fragments) if f["oversize"]],
        "size_distribution": {"min": sizes[0], "p10": sizes[n // 10], "median": sizes[n // 2],
                              "p90": sizes[min(n - 1, n * 9 // 10)], "max": sizes[-1],
                              "mean": round(sum(sizes) / n)} if n else {},
        "per_token": {"always_fragments": always["fragments"], "always_bytes": always["bytes"],
                      "routed_fragments": cond_frags, "routed_bytes": cond_bytes,
                      "fragments": always["fragments"] + cond_frags, "bytes": always["bytes"] + cond_bytes,
                      "moe_layers": len(per_expert), "experts_used": k},
        "peers": {"budget_bytes": budget, "fragments_per_peer": per_peer,
                  "formula": "ceil(fragments * R / fragments_per_peer), fragments_per_peer = "
                             "max(1, budget // max_fragment_bytes)",
                  "by_replication": {str(r): math.ceil(n * r / per_peer) for r in replication}},
    }


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read and validate a manifest: format, version, required fields, and the model id."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{p}: not a JSON manifest ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ManifestError(f"{p}: not a libp2pia manifest")
    if data.get("format_version") != limits.MANIFEST_FORMAT_VERSION:
        raise ManifestError(f"{p}: unsupported manifest format_version {data.get('format_version')!r}")
    for key in ("model_id", "source", "fragments", "max_fragment_bytes", "architecture"):
        if key not in data:
            raise ManifestError(f"{p}: manifest lacks {key!r}")
    if hashlib.sha256(canonical_bytes(data)).hexdigest() != data["model_id"]:
        raise ManifestError(f"{p}: manifest was edited (model_id does not match its content)")
    for i, f in enumerate(data["fragments"]):
        fid = f.get("id") if isinstance(f, dict) else None
        if not isinstance(fid, str) or not _HEX64.fullmatch(fid) or f.get("file") != f"{fid}.gguf":
            raise ManifestError(f"{p}: fragment #{i} has no valid id/file (64 hex digits, <id>.gguf)")
    return data
