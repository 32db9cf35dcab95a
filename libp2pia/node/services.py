"""The two services without compute: the bootstrap node (DHT server + manifests) and the relay.

Both report readiness with ``task_status.started(info)`` (info: peer id, dialable addresses)
and run until cancelled; the host is always closed on the way out (net.host.open_host).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from ..fragments import load_manifest
from ..net.dht import Dht
from ..errors import NetworkError
from ..net.gossip import Gossip, Heartbeats
from ..net.relay import Reachability, start_relay_hop
from ..net.host import DEFAULT_LISTEN, open_host

log = logging.getLogger(__name__)

#: How often a bootstrap node publishes its manifests again (DHT records age out upstream).
MANIFEST_REPUBLISH_S = 600.0


@dataclass
class ServiceConfig:
    listen: Sequence[str] = (DEFAULT_LISTEN,)
    data_dir: Path | None = None
    bootstrap: Sequence[str] = ()          # other bootstrap nodes to peer with
    manifests: Sequence[Path] = ()         # bootstrap only: manifest.json files to publish


async def start_gossip(net: Any) -> Gossip | None:
    """Gossipsub for heartbeats; a failure leaves the node on the DHT alone (logged)."""
    gossip = Gossip(net)
    try:
        await gossip.start()
    except NetworkError as exc:
        log.warning("gossip unavailable (DHT only): %s", exc)
        return None
    return gossip


def ready_info(role: str, net: Any, **extra: Any) -> dict[str, Any]:
    return {"role": role, "peer_id": net.peer_id.to_base58(), "addrs": net.addrs, **extra}


async def serve_bootstrap(cfg: ServiceConfig, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """A DHT server that publishes the given model manifests; no compute."""
    manifests = [load_manifest(p if p.name == "manifest.json" else p / "manifest.json") for p in cfg.manifests]
    async with open_host(cfg.listen, data_dir=cfg.data_dir) as net:
        gossip = await start_gossip(net)
        dht = Dht(net, server=True)
        await dht.start(cfg.bootstrap)
        models = [await dht.put_manifest(m) for m in manifests]
        if gossip is not None:            # subscribe, so heartbeats flow through the node everybody knows
            for mid in models:
                await Heartbeats(gossip, mid).start()
        task_status.started(ready_info("bootstrap", net, models=models))
        while True:
            await trio.sleep(MANIFEST_REPUBLISH_S)
            for m in manifests:
                await dht.put_manifest(m)


async def serve_relay(cfg: ServiceConfig, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Circuit relay v2 hop with limits (libp2pia.limits.RELAY_*); also a DHT server if given peers."""
    async with open_host(cfg.listen, data_dir=cfg.data_dir) as net:
        await start_relay_hop(net)
        Reachability(net)                  # answer AutoNAT dial-backs: workers learn whether they are private
        if cfg.bootstrap:
            await Dht(net, server=True).start(cfg.bootstrap)
        task_status.started(ready_info("relay", net))
        await trio.sleep_forever()


def print_ready(info: dict[str, Any]) -> None:
    """The one machine-readable line a parent process waits for (stdout, JSON, flushed)."""
    print(json.dumps(info), flush=True)
