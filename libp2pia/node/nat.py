"""NAT traversal for the node processes: what a worker does behind a NAT, how a client reaches it.

| who     | step                                                                                   |
|---------|----------------------------------------------------------------------------------------|
| worker  | accept relayed connections (STOP), run DCUtR, answer AutoNAT dial-backs for others       |
|         | ask the relays (AutoNAT) whether we can be dialed; if private, reserve a slot on each     |
|         | relay: we are then reachable at ``<relay>/p2p-circuit/p2p/<us>``                           |
| client  | run DCUtR and a relay client; to reach a peer: an open connection is used as is, else a    |
|         | direct dial to its known addresses, else a dial through each known relay's circuit         |
|         | DCUtR upgrades the relayed link when hole punching works; ComputeClient then moves the     |
|         | session's stream to the direct link (heavy traffic never stays on the relay when a direct  |
|         | link exists)                                                                               |

The circuit address is built from the relay's address and the peer id, so a client that knows the
relays needs nothing else from the worker (its DHT provider record carries only private addresses).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from ..errors import NetworkError, PeerUnavailable
from ..limits import DEFAULT_DIAL_TIMEOUT_S, RELAY_DIAL_TIMEOUT_S
from ..net.framed import to_peer_id
from ..net.host import NetHost
from ..net.relay import Reachability, RelayClient, circuit_addr, connection_kinds, start_dcutr

log = logging.getLogger(__name__)

#: A direct dial to a peer that announced only private addresses fails fast in a LAN/NAT lab
#: (no route) but can hang on the internet: bounded tighter than a normal dial, the relay follows.
DIRECT_FIRST_TIMEOUT_S = 2.0


@dataclass
class NatState:
    """What a node learned about its own reachability (reported in its readiness line)."""

    reachability: str = "unknown"
    circuits: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"reachability": self.reachability, "circuits": self.circuits}


async def start_nat(net: NetHost, dcutr: bool = True) -> RelayClient:
    """Relay client (STOP + dial) and DCUtR on ``net`` (without DCUtR relayed links stay relayed)."""
    relay = RelayClient(net)
    await relay.start()
    if dcutr:
        await start_dcutr(net)
    return relay


async def worker_nat(net: NetHost, relays: Sequence[str]) -> NatState:
    """AutoNAT against the relays; reserve a slot on each one if we are private."""
    relay = await start_nat(net)
    reach = Reachability(net)
    state = NatState()
    ids = []
    for r in relays:
        try:
            ids.append(await net.connect(r, RELAY_DIAL_TIMEOUT_S))
        except PeerUnavailable as exc:
            log.warning("relay %s unreachable: %s", r, exc)
    if not ids:
        return state
    state.reachability = await reach.check(ids)
    if state.reachability != "public":            # private or unknown: be reachable through the relays
        for r in relays:
            try:
                state.circuits.append(await relay.reserve(r))
            except NetworkError as exc:
                log.warning("reservation on %s failed: %s", r, exc)
    return state


@dataclass
class Reacher:
    """``await reacher(peer)``: make sure we have a connection to ``peer`` (direct, else relayed)."""

    net: NetHost
    relay: RelayClient | None
    relays: Sequence[str] = ()
    how: dict[str, str] = field(default_factory=dict)    # peer -> "connected" | "direct" | "relayed"

    async def __call__(self, peer: str) -> None:
        if connection_kinds(self.net, peer):
            self.how.setdefault(peer, "connected")
            return
        pid = to_peer_id(peer)
        addrs = self.net.host.get_peerstore().addrs(pid) if self._known(pid) else []
        errors = []
        if addrs:
            try:
                from libp2p.peer.peerinfo import PeerInfo

                await self.net.connect(PeerInfo(pid, addrs), min(DIRECT_FIRST_TIMEOUT_S, DEFAULT_DIAL_TIMEOUT_S))
                self.how[peer] = "direct"
                return
            except PeerUnavailable as exc:
                errors.append(str(exc))
        if self.relay is not None:
            for r in self.relays:
                try:
                    await self.relay.dial(circuit_addr(r, peer), RELAY_DIAL_TIMEOUT_S)
                    self.how[peer] = "relayed"
                    return
                except PeerUnavailable as exc:
                    errors.append(str(exc))
        raise PeerUnavailable(f"{peer[-8:]} unreachable: {'; '.join(errors) or 'no address and no relay'}")

    def _known(self, pid: Any) -> bool:
        try:
            return bool(self.net.host.get_peerstore().addrs(pid))
        except Exception:  # noqa: BLE001 - py-libp2p raises PeerStoreError for unknown peers
            return False


async def wait_direct(net: NetHost, peers: Sequence[str], timeout: float) -> dict[str, list[str]]:
    """Wait (bounded) until DCUtR gave each peer a direct link; returns the connection kinds."""
    with trio.move_on_after(timeout):
        while not all("direct" in connection_kinds(net, p) for p in peers):
            await trio.sleep(0.2)
    return {p: list(connection_kinds(net, p)) for p in peers}


async def nat_reacher(net: NetHost, relays: Sequence[str], hole_punch: bool,
                      providers: dict[str, list[str]]) -> Reacher | None:
    """A client's Reacher (None without relays), with every provider already reached (in parallel)."""
    if not relays:
        return None
    reacher = Reacher(net, await start_nat(net, dcutr=hole_punch), list(relays))

    async def one(peer: str) -> None:
        try:
            await reacher(peer)
        except NetworkError as exc:
            log.info("provider %s unreachable: %s", peer[-8:], exc)

    async with trio.open_nursery() as n:
        for peer in sorted({p for ps in providers.values() for p in ps}):
            n.start_soon(one, peer)
    return reacher
