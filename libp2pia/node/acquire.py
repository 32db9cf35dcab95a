"""A worker without ``--fragments``: fetch from peers the fragments the network is shortest of.

    store_dir = await acquire_store(AcquireConfig(bootstrap, model_id, root, storage))

| step | what                                                                                     |
|------|------------------------------------------------------------------------------------------|
| 1    | join the DHT (bootstrap), read the manifest by model id (validated: it hashes to the id)  |
| 2    | keep what the store already has (re-verified: sha256 = id), drop anything else            |
| 3    | count live replicas per fragment (DHT providers, fresh lookups); order: core first, then  |
|      | fewest replicas, then manifest order; take as many as fit the storage budget              |
| 4    | download each with net.transfer (temp name → sha256 check → rename); a corrupt or failed  |
|      | transfer is dropped and the next provider tried (providers in peer-id order)              |
| 5    | write manifest.json (atomically); the worker then opens the store (verifying again) and   |
|      | announces what it holds like any worker                                                   |

The store survives restarts: on the next start step 2 keeps the verified files and step 3 tops up.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from ..errors import MissingFragment, PeerUnavailable
from ..fragments import file_sha256
from ..net.dht import Dht
from ..net.host import DEFAULT_LISTEN, open_host
from ..net.transfer import fetch_from_any
from ..wire.manifest import canonical_json
from .nat import nat_reacher

log = logging.getLogger(__name__)

#: How long a new worker looks for the manifest and providers (a swarm may still be starting).
ACQUIRE_DISCOVERY_S = 60.0


@dataclass
class AcquireConfig:
    bootstrap: Sequence[str]
    model_id: str
    root: Path                           # the store directory (created)
    storage: int                         # byte budget for non-core fragments
    data_dir: Path | None = None         # identity (the worker keeps its peer id)
    listen: Sequence[str] = (DEFAULT_LISTEN,)
    relays: Sequence[str] = ()
    discovery_deadline: float = ACQUIRE_DISCOVERY_S


@dataclass
class AcquireReport:
    kept: list[str] = field(default_factory=list)             # verified files already in the store
    fetched: dict[str, str] = field(default_factory=dict)     # fragment -> provider used
    rejected: dict[str, list[str]] = field(default_factory=dict)   # fragment -> providers dropped (corrupt/failed)
    missing: list[str] = field(default_factory=list)          # wanted but no provider delivered
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"acquired": {"kept": len(self.kept), "fetched": len(self.fetched),
                             "rejected": {f[:12]: [p[-8:] for p in ps] for f, ps in self.rejected.items()},
                             "missing": len(self.missing), "seconds": round(self.seconds, 2)}}


def choose_fragments(manifest: dict[str, Any], replicas: dict[str, int], budget: int,
                     have: Sequence[str] = ()) -> list[str]:
    """Core always; then the fewest live replicas first (manifest order breaks ties), within ``budget``.

    Pure. Fragments already held count against the budget first and are always kept.
    """
    entries = manifest["fragments"]
    order = {f["id"]: i for i, f in enumerate(entries)}
    core = [f["id"] for f in entries if f["role"] == "core"]
    held = set(have)
    used = sum(int(f["bytes"]) for f in entries if f["id"] in held and f["role"] != "core")
    chosen = core + [f for f in have if f not in core]
    rest = sorted((f for f in entries if f["role"] != "core" and f["id"] not in held),
                  key=lambda f: (replicas.get(f["id"], 0), order[f["id"]]))
    for f in rest:
        if used + int(f["bytes"]) <= budget:
            chosen.append(f["id"])
            used += int(f["bytes"])
    return chosen


def verified_files(root: Path, manifest: dict[str, Any]) -> list[str]:
    """Fragments whose file in ``root`` hashes to its id (others are deleted: never served)."""
    ok = []
    for f in manifest["fragments"]:
        path = root / f["file"]
        if not path.exists():
            continue
        if file_sha256(path) == f["id"]:
            ok.append(f["id"])
        else:
            log.warning("%s does not match its id: deleted", path)
            path.unlink(missing_ok=True)
    return ok


async def acquire_store(cfg: AcquireConfig) -> tuple[Path, AcquireReport]:
    """Fill ``cfg.root`` from the network; returns it (a store FragmentStore.open accepts) and a report."""
    t0 = time.monotonic()
    report = AcquireReport()
    root = Path(cfg.root)
    root.mkdir(parents=True, exist_ok=True)
    async with open_host(cfg.listen, data_dir=cfg.data_dir) as net:
        dht = Dht(net, server=False)
        if not await dht.start(cfg.bootstrap):
            raise PeerUnavailable(f"none of the bootstrap nodes answered: {', '.join(cfg.bootstrap)}")
        manifest = await dht.wait_manifest(cfg.model_id, cfg.discovery_deadline)
        have = await trio.to_thread.run_sync(verified_files, root, manifest)
        report.kept = list(have)
        providers = await _providers(dht, [f["id"] for f in manifest["fragments"]], net.peer_id.to_base58(),
                                     cfg.discovery_deadline)
        await nat_reacher(net, cfg.relays, True, providers)   # providers behind NATs: through the relays
        want = choose_fragments(manifest, {f: len(p) for f, p in providers.items()}, cfg.storage, have)
        by_id = {f["id"]: f for f in manifest["fragments"]}
        for fid in want:
            if fid in have:
                continue
            bad: list[str] = []
            try:
                _, used = await fetch_from_any(net, sorted(providers.get(fid, [])), fid, root,
                                               expected_bytes=int(by_id[fid]["bytes"]),
                                               on_bad_provider=lambda p, exc: bad.append(p))
                report.fetched[fid] = used
            except MissingFragment as exc:
                log.warning("could not fetch %s: %s", fid[:12], exc)
                report.missing.append(fid)
            if bad:
                report.rejected[fid] = bad
    _write_manifest(root, manifest)
    report.seconds = time.monotonic() - t0
    return root, report


async def _providers(dht: Dht, ids: list[str], self_id: str, deadline: float) -> dict[str, list[str]]:
    from .client import find_providers

    found = await find_providers(dht, ids, deadline, self_id)
    return {f: [p for p in ps if p != self_id] for f, ps in found.items()}


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    path = root / "manifest.json"
    tmp = path.with_name(f".manifest.json.{os.getpid()}.tmp")
    tmp.write_bytes(canonical_json(dict(manifest)))
    os.replace(tmp, path)


def default_store_dir(data_dir: Path | None, model_id: str) -> Path:
    from ..default_model import cache_dir

    return (data_dir or cache_dir() / "worker") / "store" / model_id


__all__ = ["AcquireConfig", "AcquireReport", "acquire_store", "choose_fragments", "default_store_dir",
           "verified_files"]


async def acquire_from_args(args: Any) -> tuple[Path, dict[str, Any]]:
    """``worker`` without ``--fragments`` (node.run): acquire into DATA_DIR/store/<model>."""
    from ..errors import Libp2piaError

    if not args.model:
        raise Libp2piaError("a worker without --fragments needs --model MODEL_ID (what to fetch from peers)")
    if not args.bootstrap:
        raise Libp2piaError("a worker without --fragments needs --bootstrap (where to find peers)")
    root, report = await acquire_store(AcquireConfig(args.bootstrap, args.model,
                                                     default_store_dir(args.data_dir, args.model), args.storage,
                                                     args.data_dir, tuple(args.listen or (DEFAULT_LISTEN,)),
                                                     tuple(args.relay)))
    return root, report.to_json()
