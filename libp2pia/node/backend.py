"""The engine's Backend over libp2p: shard calls travel to the peers that hold the fragments.

| engine asks                 | what happens on the network                                            |
|-----------------------------|------------------------------------------------------------------------|
| open_session(s)             | `open` on every known holder in parallel (one round trip each, which   |
|                             | also measures it); each fragment is then pinned to its fastest holder  |
|                             | (KV caches live there), load spread by a small per-fragment penalty    |
| call(s, calls) (one phase)  | calls grouped by pinned peer: one message per peer, all peers at once  |
| span(s, phases)             | how many leading phases have every fragment pinned to one peer         |
| run(s, run)                 | those phases in one `run` message to that peer (layer chaining)        |
| close_session(s)            | `close` on every peer opened, streams closed                           |

Pinning for runs: the dense layers' fragments (``order``, in phase order) are pinned as few
consecutive stretches as possible: at each point the live holder that holds the longest stretch
from there on is chosen (fastest first among equals), which is the classic greedy cover and gives
the fewest peer changes per token. The other fragments (vocabulary, MoE experts) are pinned to the
fastest holder with a load penalty, so a logits phase fans out over several peers.

Streams are reused per (peer, session) by ComputeClient. Activations travel in ``wire_dtype``:
ClientConfig's default is float16 (half the bytes); float32 makes the distributed output equal the
local engine's bit for bit (the tests ask for it). Top-k logits always come back in float32.
Failover (replay of the attention history on a replica) is the next step; today a failed call
raises a clear error naming the peer and the fragment.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import multiaddr
import numpy as np
import trio

from ..engine.interface import RunCall, RunResult, ShardCall, ShardResult
from ..errors import MissingFragment, NetworkError, SessionError
from ..net.framed import to_peer_id
from ..net.peers import PeerState, PeerTable
from ..net.rpc import ComputeClient
from ..wire.compute import WireCall, WireResult

log = logging.getLogger(__name__)

#: Added to a peer's measured round trip per fragment already pinned to it in a session, so that
#: equally fast replicas share the work (seconds; about a third of a loopback round trip).
LOAD_PENALTY_S = 0.0005
#: Tries to open a session on one peer before it is left out of the session.
OPEN_ATTEMPTS = 2


def to_wire(c: ShardCall) -> WireCall:
    return WireCall(c.fragment_id, c.kind, int(c.layer or 0), c.positions, c.x, c.weight,  # type: ignore[arg-type]
                    c.top_k, c.embeddings)


def from_wire(r: WireResult) -> ShardResult:
    return ShardResult(np.asarray(r.y, np.float32), r.ids, r.embeddings)


def choose_replicas(providers: Mapping[str, Sequence[str]], rtt: Mapping[str, float],
                    penalty: float = LOAD_PENALTY_S, order: Sequence[str] = ()) -> dict[str, str]:
    """Pin each fragment to one live holder.

    The fragments of ``order`` (consecutive phases, in order) go in stretches: at each point, the live
    holder of the longest stretch of them from there on, then lowest round trip + load penalty. Every
    other fragment: lowest measured round trip + penalty × fragments pinned to that peer so far.
    Pure and deterministic (ties broken by peer id). Fragments without a live holder are left out.
    """
    pinned: dict[str, str] = {}
    load: dict[str, int] = {}

    def live(fid: str) -> list[str]:
        return [p for p in providers.get(fid, ()) if p in rtt]

    def cost(p: str) -> tuple[float, str]:
        return rtt[p] + penalty * load.get(p, 0), p

    def pin(fid: str, peer: str) -> None:
        pinned[fid] = peer
        load[peer] = load.get(peer, 0) + 1

    chain = [f for f in order if f in providers]
    i = 0
    while i < len(chain):
        cands = live(chain[i])
        if not cands:
            i += 1
            continue

        def reach(p: str) -> int:
            j = i
            while j < len(chain) and p in live(chain[j]):
                j += 1
            return j

        ends = {p: reach(p) for p in cands}
        best = min(cands, key=lambda p: (-ends[p], cost(p)))
        for fid in chain[i:ends[best]]:
            pin(fid, best)
        i = ends[best]
    for fid in sorted(providers):
        if fid not in pinned:
            cands = live(fid)
            if cands:
                pin(fid, min(cands, key=cost))
    return pinned


@dataclass
class BackendStats:
    phases: int = 0              # sequential network phases (a run counts as one)
    messages: int = 0
    calls: int = 0               # shard calls (a run's count every shard of its phases)
    runs: int = 0
    run_phases: int = 0          # layer phases computed inside runs
    seconds: float = 0.0         # wall time inside call() and run(): network + remote compute


@dataclass
class _Session:
    pinned: dict[str, str]
    opened: list[str]


@dataclass
class NetworkBackend:
    """Implements engine.interface.Backend over a ComputeClient and a view of who holds what."""

    rpc: ComputeClient
    providers: dict[str, list[str]]                 # fragment id -> peer ids (base58), from DHT + announcements
    wire_dtype: str = "float32"
    table: PeerTable | None = None                  # heartbeat view: announced holders, suspect/dead peers
    order: list[str] = field(default_factory=list)  # dense layers' fragments in phase order (ModelLayout.run_order)
    runs: bool = True                               # False: every phase on its own (span is always 1)
    stats: BackendStats = field(default_factory=BackendStats)
    sessions: dict[str, _Session] = field(default_factory=dict)

    def peers(self) -> list[str]:
        return sorted({p for ps in self.providers.values() for p in ps})

    def merge_announcements(self) -> None:
        """Add the holders heard on gossip to the DHT's view (their addresses into the peer store)."""
        if self.table is None:
            return
        store = self.rpc.net.host.get_peerstore()
        for rec in self.table.peers(PeerState.ALIVE):
            known = [f for f in rec.fragments if f in self.providers]
            if not known:
                continue
            with contextlib.suppress(Exception):   # a malformed address in an announcement is skipped
                store.add_addrs(to_peer_id(rec.peer_id), [multiaddr.Multiaddr(a) for a in rec.addrs], 3600)
            for f in known:
                if rec.peer_id not in self.providers[f]:
                    self.providers[f].append(rec.peer_id)

    def usable(self, peer: str) -> bool:
        """Not known to be suspect or dead (calls that failed, heartbeats missed)."""
        return self.table is None or self.table.state(peer) in (None, PeerState.ALIVE)

    async def open_session(self, session_id: str) -> None:
        self.merge_announcements()
        rtt: dict[str, float] = {}

        async def open_on(peer: str) -> None:
            for attempt in range(OPEN_ATTEMPTS):      # a loaded peer may miss one stream-open deadline
                try:
                    await self.rpc.open_session(peer, session_id)
                    break
                except NetworkError as exc:
                    if attempt + 1 == OPEN_ATTEMPTS:
                        log.warning("peer %s unavailable for session %s: %s", peer[-8:], session_id[:8], exc)
                        return
            rtt[peer] = self.rpc.rtt(peer) or 0.0

        async with trio.open_nursery() as n:
            for peer in self.peers():
                if self.usable(peer):
                    n.start_soon(open_on, peer)
        pinned = choose_replicas(self.providers, rtt, order=self.order)
        self.sessions[session_id] = _Session(pinned, sorted(rtt))

    def used_peers(self, session_id: str) -> list[str]:
        s = self.sessions.get(session_id)
        return sorted(set(s.pinned.values())) if s else []

    async def call(self, session_id: str, calls: list[ShardCall]) -> list[ShardResult]:
        s = self.sessions.get(session_id)
        if s is None:
            raise SessionError(f"session {session_id} was not opened on the network backend")
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(calls):
            peer = s.pinned.get(c.fragment_id)
            if peer is None:
                raise MissingFragment(c.fragment_id, "no reachable peer holds it")
            groups.setdefault(peer, []).append(i)
        out: list[ShardResult | None] = [None] * len(calls)
        t0 = time.perf_counter()

        async def send(peer: str, idx: list[int]) -> None:
            wire = [to_wire(calls[i]) for i in idx]
            rs = await self.rpc.compute_results(peer, session_id, wire, activation_dtype=self.wire_dtype,
                                                result_dtype=self.wire_dtype)
            for i, r in zip(idx, rs):
                out[i] = from_wire(r)

        if len(groups) == 1:                                   # no nursery for the common single-peer phase
            [(peer, idx)] = groups.items()
            await send(peer, idx)
        else:
            errors: list[Exception] = []

            async def guarded_send(peer: str, idx: list[int]) -> None:
                try:
                    await send(peer, idx)
                except Exception as exc:  # noqa: BLE001 - re-raised below, one clear error not a group
                    errors.append(exc)

            async with trio.open_nursery() as n:
                for peer, idx in groups.items():
                    n.start_soon(guarded_send, peer, idx)
            if errors:
                raise errors[0]
        self.stats.seconds += time.perf_counter() - t0
        self.stats.phases += 1
        self.stats.messages += len(groups)
        self.stats.calls += len(calls)
        return out  # type: ignore[return-value]

    # --- runs (layer chaining) ------------------------------------------------
    def runnable(self, session_id: str, peer: str, fragments: Sequence[str]) -> bool:
        """Whether ``peer`` can take these fragments' phase inside a run now (FailoverBackend: not while
        a replay is owed to one of them)."""
        return True

    def span(self, session_id: str, phases: Sequence[Sequence[str]]) -> int:
        """How many leading phases have every fragment pinned to one and the same peer (at least 1)."""
        s = self.sessions.get(session_id)
        if s is None or not self.runs:
            return 1
        peer, n = None, 0
        for frags in phases:
            held = {s.pinned.get(f) for f in frags}
            p = held.pop() if len(held) == 1 else None
            if p is None or (peer is not None and p != peer) or not self.runnable(session_id, p, frags):
                break
            peer, n = p, n + 1
        return max(n, 1)

    async def run(self, session_id: str, run: RunCall) -> RunResult | None:
        """The run's phases in one message to the peer they are pinned to (``span`` chose them)."""
        return await self.send_run(session_id, self.run_peer(session_id, run), run)

    def run_peer(self, session_id: str, run: RunCall) -> str:
        """The peer a run goes to: the one its first fragment is pinned to."""
        s = self.sessions.get(session_id)
        if s is None:
            raise SessionError(f"session {session_id} was not opened on the network backend")
        first = run.phases[0].fragment_ids[0]
        peer = s.pinned.get(first)
        if peer is None:
            raise MissingFragment(first, "no reachable peer holds it")
        return peer

    async def send_run(self, session_id: str, peer: str, run: RunCall) -> RunResult:
        t0 = time.perf_counter()
        r = await self.rpc.run(peer, session_id, run, activation_dtype=self.wire_dtype)
        self.count_run(run, time.perf_counter() - t0)
        return RunResult(r.h, r.attention_inputs)

    def count_run(self, run: RunCall, seconds: float) -> None:
        self.stats.seconds += seconds
        self.stats.phases += 1
        self.stats.messages += 1
        self.stats.runs += 1
        self.stats.run_phases += len(run.phases)
        self.stats.calls += sum(len(ph.fragment_ids) for ph in run.phases)

    async def close_session(self, session_id: str) -> None:
        s = self.sessions.pop(session_id, None)
        if s is None:
            return
        with trio.move_on_after(self.rpc.timeout) as cs:
            cs.shield = True
            async with trio.open_nursery() as n:
                for peer in s.opened:
                    n.start_soon(self.rpc.close_session, peer, session_id)
