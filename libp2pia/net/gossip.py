"""Gossipsub for control messages, and heartbeats on a topic per model.

py-libp2p's gossipsub defaults lose messages (reference/py-libp2p-notes.md §4.4):
heartbeat every 120 s, 10 msg/s spam limit, eclipse protection wanting 3
distinct IPs (a loopback swarm has one). :class:`Gossip` sets them for a
low-rate control plane; nothing heavy ever travels on it.

:class:`Heartbeats` publishes this peer's :class:`Announcement` every period
on ``/libp2pia/announce/1/<model_id>`` and feeds what it hears into a pure
:class:`PeerTable`; a topic validator drops malformed announcements and any
whose claimed peer id is not the (signature-checked) sender.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID as MESHSUB_V10
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11 as MESHSUB_V11
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub

from ..errors import NetworkError, ProtocolError
from ..limits import (
    DEFAULT_HEARTBEAT_MISSES, DEFAULT_HEARTBEAT_PERIOD_S, DEFAULT_REQUEST_TIMEOUT_S,
    DEFAULT_STREAM_OPEN_TIMEOUT_S, GOSSIP_HEARTBEAT_INTERVAL_S,
    GOSSIP_MAX_MESSAGES_PER_TOPIC_PER_S, MAX_ANNOUNCE_BYTES,
)
from ..wire.announce import Announcement, decode_announcement, encode_announcement
from .framed import translate_link_errors
from .host import NetHost
from .peers import PeerEvent, PeerState, PeerTable

log = logging.getLogger(__name__)

TOPIC_PREFIX = "/libp2pia/announce/1/"


def announce_topic(model_id: str) -> str:
    return TOPIC_PREFIX + model_id


class Gossip:
    """A Pubsub + GossipSub pair tuned for small control messages."""

    def __init__(self, net: NetHost, *, heartbeat_interval: float = GOSSIP_HEARTBEAT_INTERVAL_S,
                 max_messages_per_topic_per_second: float = GOSSIP_MAX_MESSAGES_PER_TOPIC_PER_S,
                 eclipse_protection: bool = False) -> None:
        self.net = net
        self.router = GossipSub(
            protocols=[MESHSUB_V11, MESHSUB_V10], degree=6, degree_low=4, degree_high=12,
            heartbeat_initial_delay=0.1, heartbeat_interval=heartbeat_interval,  # type: ignore[arg-type]
            max_messages_per_topic_per_second=max_messages_per_topic_per_second,
            # Off by default: volunteer swarms (and every loopback test) often have < 3 distinct IPs.
            eclipse_protection_enabled=eclipse_protection,
        )
        self.pubsub = Pubsub(net.host, self.router, max_inbound_rpc_size=4 * MAX_ANNOUNCE_BYTES)

    async def start(self) -> None:
        """Start before connecting to anyone: py-libp2p's pubsub greets a peer only when
        the connection is made, so peers connected earlier never join the mesh."""
        await self.net.start_service(self.pubsub)
        await self.net.start_service(self.router)
        with translate_link_errors("pubsub start", DEFAULT_STREAM_OPEN_TIMEOUT_S):
            await self.pubsub.wait_until_ready()

    async def publish(self, topic: str, data: bytes) -> None:
        with translate_link_errors(f"publish on {topic[:40]}", DEFAULT_REQUEST_TIMEOUT_S):
            await self.pubsub.publish(topic, data)


class Heartbeats:
    """Announce ourselves every ``period`` and track everybody else's liveness."""

    def __init__(
        self,
        gossip: Gossip,
        model_id: str,
        *,
        period: float = DEFAULT_HEARTBEAT_PERIOD_S,
        misses: int = DEFAULT_HEARTBEAT_MISSES,
        on_event: Callable[[PeerEvent], None] | None = None,
    ) -> None:
        self.gossip = gossip
        self.model_id = model_id
        self.topic = announce_topic(model_id)
        self.period = period
        self.self_id = gossip.net.peer_id.to_base58()
        self.table = PeerTable(period, misses, self_id=self.self_id)
        self.on_event = on_event
        self.seq = 0
        self.received = 0
        self.rejected = 0
        self._started_at = trio.current_time()
        self._announcement: Callable[[], Announcement] | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self, announcement: Callable[[], Announcement] | None = None) -> None:
        """Subscribe and run the loops; with ``announcement``, also publish it every period.

        ``announcement()`` returns this peer's current state; ``peer_id``,
        ``model_id``, ``seq`` and ``uptime_s`` are filled in here.
        """
        self._announcement = announcement
        self.gossip.pubsub.set_topic_validator(self.topic, self._validate, False)
        with translate_link_errors(f"subscribe {self.topic[:40]}", DEFAULT_REQUEST_TIMEOUT_S):
            sub = await self.gossip.pubsub.subscribe(self.topic)
        self.gossip.net.nursery.start_soon(self._receive_loop, sub)
        self.gossip.net.nursery.start_soon(self._tick_loop)
        if announcement is not None:
            self.gossip.net.nursery.start_soon(self._announce_loop)

    async def announce_now(self) -> None:
        if self._announcement is None:
            return
        a = self._announcement()
        self.seq += 1
        a.peer_id, a.model_id, a.seq = self.self_id, self.model_id, self.seq
        a.uptime_s = trio.current_time() - self._started_at
        await self.gossip.publish(self.topic, encode_announcement(a))

    # ------------------------------------------------------------ call outcomes (from the RPC client)

    def call_failed(self, peer_id: str) -> None:
        self._emit(self.table.on_call_failure(peer_id, trio.current_time()))

    def call_succeeded(self, peer_id: str) -> None:
        self._emit(self.table.on_call_success(peer_id, trio.current_time()))

    def observe(self, peer_id: str, reachable: bool) -> None:
        """Plug into ``ComputeClient(observer=...)``: every call outcome updates the table."""
        (self.call_succeeded if reachable else self.call_failed)(peer_id)

    # ------------------------------------------------------------ internals

    def _validate(self, forwarder: ID, msg: rpc_pb2.Message) -> bool:
        try:
            ann = decode_announcement(msg.data)
            sender = ID(msg.from_id).to_base58()
        except (ProtocolError, ValueError):
            self.rejected += 1
            return False
        ok = ann.peer_id == sender and ann.model_id == self.model_id
        if not ok:
            self.rejected += 1
        return ok

    def _emit(self, events: list[PeerEvent]) -> None:
        for e in events:
            if e.new is PeerState.DEAD:
                log.info("peer %s is dead (%d heartbeats missed)", e.peer_id[:16], self.table.misses)
            elif e.new is PeerState.SUSPECT:
                log.info("peer %s is suspect", e.peer_id[:16])
            elif e.old is not None:
                log.info("peer %s is back", e.peer_id[:16])
            if self.on_event is not None:
                self.on_event(e)

    async def _receive_loop(self, sub) -> None:  # noqa: ANN001 - py-libp2p's subscription type
        async for msg in sub:
            try:
                ann = decode_announcement(msg.data)  # already validated; cheap
            except ProtocolError:
                continue
            self.received += 1
            self._emit(self.table.on_announcement(ann, trio.current_time()))

    async def _tick_loop(self) -> None:
        while True:
            await trio.sleep(self.period / 4)
            self._emit(self.table.tick(trio.current_time()))

    async def _announce_loop(self) -> None:
        while True:
            try:
                await self.announce_now()
            except NetworkError as exc:
                log.warning("announcement not published: %s", exc)
            await trio.sleep(self.period)
