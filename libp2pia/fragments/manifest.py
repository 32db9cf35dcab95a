"""The manifest (contract in BRIEF.md): JSON shapes, model id, summary figures, loading/validation."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Sequence

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
    check_fields(data, str(p))
    return data


def _is_int(v: Any, lo: int = 0, hi: int = 1 << 50) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def check_fields(data: dict[str, Any], where: str, complete: bool = False) -> None:
    """The types and ranges of the fields readers index into. A manifest whose model id matches
    can still be malformed (written by hand or by a buggy producer): that must be a
    ManifestError naming the field, not a KeyError/TypeError deep in the reader. Fields that are
    present are always checked; with ``complete`` (reassembly) the ones it needs must be present."""
    def bad(what: str) -> ManifestError:
        return ManifestError(f"{where}: malformed manifest: {what}")

    def wrong(obj: dict[str, Any], key: str, ok: Callable[[Any], bool]) -> bool:
        return (key in obj or complete) and not ok(obj.get(key))

    if wrong(data, "architecture", lambda v: isinstance(v, str)):
        raise bad("'architecture' is not a string")
    if wrong(data, "max_fragment_bytes", lambda v: _is_int(v, 1)):
        raise bad("'max_fragment_bytes' is not a positive integer")
    src = data.get("source")
    if not isinstance(src, dict):
        raise bad("'source' is not an object")
    if wrong(src, "bytes", _is_int):
        raise bad("source.bytes is not a byte count")
    if wrong(src, "header_bytes", lambda v: _is_int(v, 0, src["bytes"] if _is_int(src.get("bytes")) else 1 << 50)):
        raise bad("source.header_bytes is not a byte count within source.bytes")
    if src.get("sha256") is not None and not (isinstance(src["sha256"], str) and _HEX64.fullmatch(src["sha256"])):
        raise bad("source.sha256 is not 64 hex digits")
    frags = data.get("fragments")
    if not isinstance(frags, list) or not frags:
        raise bad("'fragments' is not a non-empty list")
    for i, f in enumerate(frags):
        fid = f.get("id") if isinstance(f, dict) else None
        if not isinstance(fid, str) or not _HEX64.fullmatch(fid) or f.get("file") != f"{fid}.gguf":
            raise ManifestError(f"{where}: fragment #{i} has no valid id/file (64 hex digits, <id>.gguf)")
        if not _is_int(f.get("bytes"), 1):
            raise bad(f"fragment #{i} bytes is not a positive byte count")
        if wrong(f, "role", lambda v: isinstance(v, str)) or \
                wrong(f, "class", lambda v: v in ("always", "conditional")):
            raise bad(f"fragment #{i} has no valid role/class")
        if any(f.get(k) is not None and not _is_int(f.get(k)) for k in ("layer", "expert")):
            raise bad(f"fragment #{i} layer/expert is neither null nor a non-negative integer")
        if wrong(f, "slices", lambda v: isinstance(v, list)) or wrong(f, "units", lambda v: isinstance(v, dict)):
            raise bad(f"fragment #{i} has no slices list / units object")
