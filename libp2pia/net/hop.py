"""Circuit relay v2 *hop* service with limits (the relay side only; reservations by NATed peers
and DCUtR are the next step).

py-libp2p registers its hop/stop handlers unguarded; we re-register them through
``NetHost.handle`` so a bad peer cannot take the relay down (py-libp2p-notes §4.2).
"""

from __future__ import annotations

from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP_PROTOCOL_ID
from libp2p.relay.circuit_v2.protocol import STOP_PROTOCOL_ID, CircuitV2Protocol
from libp2p.relay.circuit_v2.resources import RelayLimits

from ..limits import (
    RELAY_MAX_CIRCUIT_BYTES, RELAY_MAX_CIRCUIT_SECONDS, RELAY_MAX_CIRCUITS, RELAY_MAX_RESERVATIONS,
    RELAY_RESERVATION_TTL_S,
)
from .host import NetHost

__all__ = ["HOP_PROTOCOL_ID", "default_limits", "start_hop"]


def default_limits() -> RelayLimits:
    return RelayLimits(duration=RELAY_MAX_CIRCUIT_SECONDS, data=RELAY_MAX_CIRCUIT_BYTES,
                       max_circuit_conns=RELAY_MAX_CIRCUITS, max_reservations=RELAY_MAX_RESERVATIONS,
                       reservation_ttl=RELAY_RESERVATION_TTL_S)


async def start_hop(net: NetHost, limits: RelayLimits | None = None) -> CircuitV2Protocol:
    """Serve /libp2p/circuit/relay/0.2.0/hop on ``net`` until the host closes."""
    proto = CircuitV2Protocol(net.host, limits=limits or default_limits(), allow_hop=True)
    await net.start_service(proto)
    await proto.event_started.wait()                            # its run() has registered the raw handlers
    net.handle(HOP_PROTOCOL_ID, proto._handle_hop_stream)      # guarded versions of its handlers
    net.handle(STOP_PROTOCOL_ID, proto._handle_stop_stream)
    return proto
