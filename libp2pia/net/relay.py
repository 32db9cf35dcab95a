"""NAT traversal: circuit relay v2 (hop and client), AutoNAT, DCUtR.

| piece          | who runs it                 | what it does                                         |
|----------------|-----------------------------|------------------------------------------------------|
| relay hop      | apps/relay.py (public host) | forwards circuits, within RelayLimits                |
| RelayClient    | every worker and client     | accepts relayed connections (STOP), reserves slots,  |
|                |                             | dials ``/p2p-circuit`` addresses                     |
| Reachability   | every peer                  | AutoNAT: asks known peers to dial us back            |
| DCUtR          | workers and clients         | upgrades relayed links to direct ones (hole punching)|

py-libp2p traps (reference/py-libp2p-notes.md §3d, §4.6-4.7): ``host.connect``
cannot use ``/p2p-circuit`` addresses (we dial through the relay transport);
reservations need a nursery for their refresher; DCUtR's return value is
unreliable, so we check the connections themselves (:func:`connection_kinds`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import trio
from libp2p.host.autonat import AutoNATService, AutoNATStatus
from libp2p.host.autonat.autonat import AUTONAT_PROTOCOL_ID
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
from libp2p.relay.circuit_v2.dcutr import PROTOCOL_ID as DCUTR_PROTOCOL_ID
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP_PROTOCOL_ID
from libp2p.relay.circuit_v2.protocol import STOP_PROTOCOL_ID, CircuitV2Protocol
from libp2p.relay.circuit_v2.resources import RelayLimits
from libp2p.relay.circuit_v2.transport import CircuitV2Transport

from ..errors import PeerUnavailable
from ..limits import (
    AUTONAT_QUERY_TIMEOUT_S, DEFAULT_DIAL_TIMEOUT_S, RELAY_CIRCUIT_BYTES, RELAY_CIRCUIT_DURATION_S,
    RELAY_DIAL_TIMEOUT_S, RELAY_MAX_CIRCUITS, RELAY_MAX_RESERVATIONS, RELAY_RESERVATION_TTL_S,
)
from .framed import open_stream, to_peer_id, translate_link_errors
from .host import NetHost, conn_kind, parse_multiaddr

log = logging.getLogger(__name__)

CIRCUIT = "/p2p-circuit"


def relay_limits(
    duration_s: int = RELAY_CIRCUIT_DURATION_S,
    bytes_per_circuit: int = RELAY_CIRCUIT_BYTES,
    max_circuits: int = RELAY_MAX_CIRCUITS,
    max_reservations: int = RELAY_MAX_RESERVATIONS,
) -> RelayLimits:
    return RelayLimits(duration=duration_s, data=bytes_per_circuit, max_circuit_conns=max_circuits,
                       max_reservations=max_reservations, reservation_ttl=RELAY_RESERVATION_TTL_S)


def is_circuit_addr(addr: str) -> bool:
    return CIRCUIT in addr


def circuit_addr(relay_addr: str, peer: ID | str) -> str:
    """``<relay addr with /p2p/R>/p2p-circuit/p2p/<peer>``: how others reach ``peer`` through R."""
    return f"{relay_addr}{CIRCUIT}/p2p/{to_peer_id(peer).to_base58()}"


def connection_kinds(net: NetHost, peer: ID | str) -> list[Literal["direct", "relayed"]]:
    """The kind of every open connection to ``peer`` (empty if none)."""
    return [conn_kind(c) for c in net.host.get_network().get_connections(to_peer_id(peer))]  # type: ignore[misc]


async def start_relay_hop(net: NetHost, limits: RelayLimits | None = None) -> CircuitV2Protocol:
    """Serve as a circuit relay v2 hop (apps/relay.py)."""
    proto = CircuitV2Protocol(net.host, limits=limits or relay_limits(), allow_hop=True)
    await net.start_service(proto)
    # run() registered raw handlers; replace them with guarded ones (one bad peer != dead relay)
    net.handle(HOP_PROTOCOL_ID, proto._handle_hop_stream, close=False)  # noqa: SLF001 - py-libp2p exposes no public handler
    net.handle(STOP_PROTOCOL_ID, proto._handle_stop_stream, close=False)  # noqa: SLF001
    return proto


class RelayClient:
    """Accept relayed connections, reserve slots on relays, dial through relays."""

    def __init__(self, net: NetHost, limits: RelayLimits | None = None) -> None:
        self.net = net
        lim = limits or relay_limits()
        self.protocol = CircuitV2Protocol(net.host, limits=lim, allow_hop=False)
        self.transport = CircuitV2Transport(net.host, self.protocol,
                                            RelayConfig(roles=RelayRole.STOP | RelayRole.CLIENT, limits=lim))
        self.reservations: dict[str, str] = {}  # relay addr -> our circuit addr through it

    async def start(self) -> None:
        await self.net.start_service(self.protocol)
        self.net.handle(STOP_PROTOCOL_ID, self.protocol._handle_stop_stream, close=False)  # noqa: SLF001

    async def reserve(self, relay_addr: str, timeout: float = RELAY_DIAL_TIMEOUT_S) -> str:
        """Reserve a slot on the relay at ``relay_addr``; returns our circuit address through it.

        The transport renews the reservation in the background (in our nursery).
        """
        relay_id = await self.net.connect(relay_addr, timeout)
        stream = await open_stream(self.net.host, relay_id, [HOP_PROTOCOL_ID], timeout)
        try:
            with translate_link_errors(f"reserve on {relay_id.to_base58()[:16]}", timeout):
                ok = await self.transport.reserve(stream, relay_id, self.net.nursery)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await stream.close()
        if not ok:
            raise PeerUnavailable(f"relay {relay_id.to_base58()[:16]} refused the reservation")
        addr = circuit_addr(relay_addr, self.net.peer_id)
        self.reservations[relay_addr] = addr
        log.info("reserved a relay slot: %s", addr)
        return addr

    async def dial(self, addr: str, timeout: float = RELAY_DIAL_TIMEOUT_S) -> ID:
        """Connect to a peer through ``<relay>/p2p-circuit/p2p/<peer>``; returns the peer id."""
        maddr = parse_multiaddr(addr)
        with translate_link_errors(f"relayed dial {addr[-20:]}", timeout):
            conn = await self.transport.dial(maddr)
        return conn.muxed_conn.peer_id


async def connect_any(net: NetHost, addrs: Sequence[str], relay: RelayClient | None = None,
                      timeout: float = DEFAULT_DIAL_TIMEOUT_S) -> ID:
    """Reach a peer from its announced addresses: direct ones first, then through relays."""
    direct = [a for a in addrs if not is_circuit_addr(a)]
    relayed = [a for a in addrs if is_circuit_addr(a)]
    errors: list[str] = []
    for a in direct:
        try:
            return await net.connect(a, timeout)
        except PeerUnavailable as exc:
            errors.append(str(exc))
    if relay is not None:
        for a in relayed:
            try:
                return await relay.dial(a, timeout)
            except PeerUnavailable as exc:
                errors.append(str(exc))
    elif relayed:
        errors.append("only relayed addresses and no relay client")
    raise PeerUnavailable("; ".join(errors) or "no address to dial")


# ---------------------------------------------------------------- AutoNAT, DCUtR


Reach = Literal["public", "private", "unknown"]
_STATUS: dict[int, Reach] = {AutoNATStatus.PUBLIC: "public", AutoNATStatus.PRIVATE: "private",
                             AutoNATStatus.UNKNOWN: "unknown"}


class Reachability:
    """AutoNAT: serve dial-backs for others and ask known peers whether we are reachable."""

    def __init__(self, net: NetHost, confirmations: int = 1) -> None:
        self.net = net
        self.service = AutoNATService(net.host, serve=False, confirmations=confirmations)  # type: ignore[arg-type]
        net.handle(AUTONAT_PROTOCOL_ID, self.service.handle_stream, close=False)

    @property
    def status(self) -> Reach:
        return _STATUS.get(self.service.get_status(), "unknown")

    async def check(self, servers: Sequence[ID | str], timeout: float = AUTONAT_QUERY_TIMEOUT_S) -> Reach:
        """Ask ``servers`` (already connected peers) to dial us back; returns the verdict."""
        with trio.move_on_after(timeout * max(1, len(servers))):
            await self.service.check_reachability([to_peer_id(s) for s in servers])
        return self.status


async def start_dcutr(net: NetHost) -> DCUtRProtocol:
    """Run DCUtR: relayed links get upgraded to direct ones when hole punching works.

    Its own report is unreliable; use :func:`connection_kinds` to see what happened.
    """
    proto = DCUtRProtocol(net.host)
    await net.start_service(proto)
    net.handle(DCUTR_PROTOCOL_ID, proto._handle_dcutr_stream, close=False)  # noqa: SLF001 - guarded
    return proto
