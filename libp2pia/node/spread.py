"""Give each local worker its own fragment directory: R replicas of every fragment (node.placement).

Each worker directory holds manifest.json, the core fragment(s) (every worker needs the config
and norms to build its shards, and serves them to clients) and its share of the rest, as hard
links to the source directory (copies where links are impossible). Written into a temporary
directory and renamed, so a half-built spread is never mistaken for a finished one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..fragments import load_manifest
from .placement import Item, place_contiguous, place_replicas


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


#: fragment roles of an MoE model: its FFN phases need the client's router, so nothing chains and the
#: fragments are spread for balance instead (experts of one layer on many workers compute in parallel)
MOE_ROLES = ("expert", "shared_expert", "router")


def model_order(fragments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fragments in the order a token flows through them: layer by layer (attention before FFN), then
    those without a layer (vocabulary) in manifest order."""
    def key(ix: tuple[int, dict[str, Any]]) -> tuple[bool, int, int, int]:
        i, f = ix
        layer = f.get("layer")
        return layer is None, int(layer or 0), 0 if f["role"] == "attention" else 1, i
    return [f for _, f in sorted(enumerate(fragments), key=key)]


def plan_spread(manifest: dict[str, Any], n_workers: int, replication: int) -> list[list[str]]:
    """Per worker, the fragment ids it holds: core everywhere, the rest R times. Dense models in
    contiguous stretches of layers (placement.place_contiguous: a worker's layers chain into runs),
    MoE models bytes-balanced (placement.place_replicas)."""
    core = [f["id"] for f in manifest["fragments"] if f["role"] == "core"]
    rest = [f for f in manifest["fragments"] if f["role"] != "core"]
    if any(f["role"] in MOE_ROLES for f in rest):
        held = place_replicas([Item(f["id"], int(f["bytes"])) for f in rest], n_workers, replication)
    else:
        held = place_contiguous([Item(f["id"], int(f["bytes"])) for f in model_order(rest)], n_workers, replication)
    return [core + h for h in held]


def spread(source: Path, out: Path, n_workers: int, replication: int) -> list[Path]:
    """Build ``out/worker-<i>`` directories (replacing ``out``) and return them."""
    manifest = load_manifest(source / "manifest.json")
    by_id = {f["id"]: f for f in manifest["fragments"]}
    plan = plan_spread(manifest, n_workers, replication)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    dirs = []
    for i, held in enumerate(plan):
        d = tmp / f"worker-{i}"
        d.mkdir(parents=True)
        _link(source / "manifest.json", d / "manifest.json")
        for fid in held:
            _link(source / by_id[fid]["file"], d / by_id[fid]["file"])
        dirs.append(out / d.name)
    (tmp / "placement.json").write_text(json.dumps({"replication": replication, "workers": plan}))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return dirs


def worker_bytes(manifest: dict[str, Any], held: list[str]) -> int:
    by_id = {f["id"]: int(f["bytes"]) for f in manifest["fragments"]}
    return sum(by_id[f] for f in held)
