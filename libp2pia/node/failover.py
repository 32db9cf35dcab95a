"""Failover: a shard call that fails moves to another live replica; attention caches are rebuilt by replay.

The engine's Backend over the network, with replicas (extends node.backend.NetworkBackend):

| event                                  | what happens                                                      |
|----------------------------------------|-------------------------------------------------------------------|
| a call to peer P fails or times out    | P is marked down for this client at once (and SUSPECT in the      |
|                                        | PeerTable if one is attached); P's calls of this phase are retried |
| a fragment pinned to a down peer       | re-pinned to the fastest live replica (session opened there first |
|                                        | if needed)                                                        |
| that fragment is an attention shard    | its new replica has no KV cache: before its next call, the inputs  |
|                                        | the engine sent to that layer so far are replayed to it, chunk by  |
|                                        | chunk in the original order (same shapes → the same arithmetic →  |
|                                        | the same cache, so the tokens do not change)                      |
| no live replica left                   | MissingFragment naming the fragment (never a hang: every call is   |
|                                        | bounded by the client's request timeout)                           |
| a run (several phases on one peer)     | P is marked down and ``run`` returns None: the engine plans the    |
| fails                                  | same phases again; their fragments, pinned to a down peer, go     |
|                                        | phase by phase through ``call`` (re-pinning and replay as above)  |
|                                        | and join runs again once their replays are done                   |

The attention history is the engine's own (``Session.attn_inputs``, kept per layer for exactly this
purpose): :meth:`FailoverBackend.track` links the engine session to the backend, so the inputs are
stored once. Chunk ``k`` of layer ``L`` covered positions ``offset_k .. offset_k + rows_k``; at a call
starting at position ``p0`` the cache must hold positions ``0 .. p0``, i.e. the chunks before ``p0``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio

from ..engine.client import Session
from ..engine.interface import RunCall, RunResult, ShardCall, ShardResult
from ..errors import MissingFragment, NetworkError, SessionError
from .backend import NetworkBackend, _Session, from_wire, to_wire

log = logging.getLogger(__name__)


@dataclass
class FailoverEvent:
    """One failover, for logs and the benchmark: when, which peer, how long until the retry answered."""

    at: float                      # time.monotonic() when the failure was seen
    peer: str
    reason: str
    moved: dict[str, str] = field(default_factory=dict)     # fragment -> new peer
    replayed_layers: int = 0
    replay_rows: int = 0
    replay_seconds: float = 0.0    # time spent in requests that carried replays
    seconds: float = 0.0           # failure seen → the phase's results all in


def replay_calls(session: Session, fragment_id: str, layer: int, before: int) -> list[ShardCall]:
    """The attention calls that rebuild ``layer``'s KV cache for positions ``0 .. before``, chunk by chunk."""
    if layer >= len(session.attn_inputs):
        raise SessionError(f"session {session.id} has no attention history for layer {layer}")
    calls, off = [], 0
    for x in session.attn_inputs[layer]:
        n = x.shape[0]
        if off + n > before:
            break
        calls.append(ShardCall(fragment_id, "attention", layer, np.arange(off, off + n, dtype=np.int32), x))
        off += n
    if off != before:
        raise SessionError(f"session {session.id}: attention history of layer {layer} covers {off} positions, "
                           f"{before} needed (history disabled?)")
    return calls


@dataclass
class FailoverBackend(NetworkBackend):
    """NetworkBackend + replica failover and attention replay (see the module docstring)."""

    reach: Any = None                                           # async (peer) -> None: dial (relays, ...)
    rediscover: Any = None                                      # async (fragment) -> [peer]: fresh holders
    down: set[str] = field(default_factory=set)
    engine_sessions: dict[str, Session] = field(default_factory=dict)
    pending_replay: dict[str, set[str]] = field(default_factory=dict)   # session -> attention fragments
    events: list[FailoverEvent] = field(default_factory=list)
    max_rounds: int = 8

    # --- sessions -----------------------------------------------------------
    def track(self, session: Session) -> None:
        """Give the backend the engine session whose attention history it replays on failover."""
        self.engine_sessions[session.id] = session

    async def open_session(self, session_id: str) -> None:
        if self.reach is not None:                 # make sure every holder is connected (relayed or direct)
            async with trio.open_nursery() as n:
                for peer in self.peers():
                    if peer not in self.down:
                        n.start_soon(self._reach, peer)
        await super().open_session(session_id)
        s = self.sessions[session_id]
        s.opened = [p for p in s.opened if p not in self.down]
        for fid, peer in list(s.pinned.items()):
            if peer in self.down:
                del s.pinned[fid]
        self.pending_replay[session_id] = set()

    async def _reach(self, peer: str) -> None:
        try:
            await self.reach(peer)
        except NetworkError as exc:
            log.info("peer %s unreachable: %s", peer[-8:], exc)

    async def close_session(self, session_id: str) -> None:
        s = self.sessions.get(session_id)
        if s is not None:
            s.opened = [p for p in s.opened if p not in self.down]
        self.engine_sessions.pop(session_id, None)
        self.pending_replay.pop(session_id, None)
        await super().close_session(session_id)

    # --- replicas -----------------------------------------------------------
    def live(self, fragment_id: str) -> list[str]:
        """Holders of a fragment not known to be down, fastest first (unmeasured ones last)."""
        from ..net.peers import PeerState

        bad = set(self.down)
        if self.table is not None:
            bad |= {r.peer_id for r in self.table.peers(PeerState.SUSPECT, PeerState.DEAD)}
        peers = [p for p in self.providers.get(fragment_id, []) if p not in bad]
        return sorted(peers, key=lambda p: (self.rpc.rtt(p) is None, self.rpc.rtt(p) or 0.0, p))

    def mark_down(self, peer: str, reason: str) -> FailoverEvent:
        self.down.add(peer)
        if self.table is not None:
            self.table.on_call_failure(peer, time.monotonic())
        ev = FailoverEvent(time.monotonic(), peer, reason)
        self.events.append(ev)
        log.warning("peer %s failed (%s): failing over", peer[-8:], reason)
        return ev

    async def _pin(self, session_id: str, s: _Session, call: ShardCall, ev: FailoverEvent | None) -> str:
        """The peer serving ``call``'s fragment in this session, re-pinned if its peer is down. When no
        known holder is left, ask the network once more (the first lookup stops at the first holder it
        finds, so the client may know fewer replicas than exist) before giving up."""
        fid = call.fragment_id
        peer = s.pinned.get(fid)
        if peer is not None and peer not in self.down:
            return peer
        reasons: list[str] = []
        cand = await self._first_live(session_id, s, call, ev, reasons)
        if cand is None and self.rediscover is not None:
            known = self.providers.setdefault(fid, [])
            fresh = [p for p in await self.rediscover(fid) if p not in known]
            if fresh:
                log.info("fragment %s: %d more holder(s) found", fid[:12], len(fresh))
                known.extend(fresh)
                cand = await self._first_live(session_id, s, call, ev, reasons)
        if cand is not None:
            return cand
        gone = ", ".join(sorted(p[-8:] for p in self.providers.get(fid, []))) or "none known"
        raise MissingFragment(fid, f"{call.kind} layer {call.layer}: every replica is down (holders: {gone})"
                              + (f"; {'; '.join(reasons)}" if reasons else ""))

    async def _first_live(self, session_id: str, s: _Session, call: ShardCall, ev: FailoverEvent | None,
                          reasons: list[str]) -> str | None:
        """Pin the fragment to the fastest live holder that opens the session; None if there is none."""
        fid = call.fragment_id
        for cand in self.live(fid):
            if cand not in s.opened:
                try:
                    if self.reach is not None:
                        await self.reach(cand)
                    await self.rpc.open_session(cand, session_id)
                except NetworkError as exc:
                    reasons.append(f"{cand[-8:]}: {exc}")
                    self.mark_down(cand, f"open session: {exc}")
                    continue
                s.opened.append(cand)
            s.pinned[fid] = cand
            if call.kind == "attention":
                self.pending_replay[session_id].add(fid)
            target = ev or (self.events[-1] if self.events else None)   # moved because of the last failure
            if target is not None:
                target.moved[fid] = cand
            log.debug("fragment %s now on %s", fid[:12], cand[-8:])
            return cand
        return None

    # --- runs -----------------------------------------------------------------
    def runnable(self, session_id: str, peer: str, fragments: Sequence[str]) -> bool:
        """Not on a down peer, and no attention replay owed for these fragments (replays go phase by phase)."""
        pending = self.pending_replay.get(session_id, set())
        return peer not in self.down and not any(f in pending for f in fragments)

    async def run(self, session_id: str, run: RunCall) -> RunResult | None:
        """NetworkBackend.run; if the peer fails it is marked down and None tells the engine to re-plan."""
        peer = self.run_peer(session_id, run)
        try:
            return await self.send_run(session_id, peer, run)
        except NetworkError as exc:
            ev = self.mark_down(peer, f"{type(exc).__name__}: {exc}")
            ev.seconds = time.monotonic() - ev.at
            return None

    # --- one phase ------------------------------------------------------------
    async def call(self, session_id: str, calls: list[ShardCall]) -> list[ShardResult]:
        s = self.sessions.get(session_id)
        if s is None:
            raise SessionError(f"session {session_id} was not opened on the network backend")
        out: list[ShardResult | None] = [None] * len(calls)
        todo = list(range(len(calls)))
        ev: FailoverEvent | None = None
        messages = 0
        t0 = time.perf_counter()
        for _ in range(self.max_rounds):
            groups: dict[str, list[int]] = {}
            for i in todo:
                groups.setdefault(await self._pin(session_id, s, calls[i], ev), []).append(i)
            failed: dict[str, str] = {}

            async def send(peer: str, idx: list[int]) -> None:
                try:
                    await self._send(session_id, peer, calls, idx, out, ev)
                except NetworkError as exc:
                    failed[peer] = f"{type(exc).__name__}: {exc}"

            if len(groups) == 1:
                [(peer, idx)] = groups.items()
                await send(peer, idx)
            else:
                async with trio.open_nursery() as n:
                    for peer, idx in groups.items():
                        n.start_soon(send, peer, idx)
            messages += len(groups)
            if not failed:
                break
            for peer, reason in failed.items():
                e = self.mark_down(peer, reason)
                ev = ev or e
            todo = [i for i in todo if out[i] is None]
        else:
            raise NetworkError(f"phase still failing after {self.max_rounds} failovers")
        if ev is not None:
            ev.seconds = time.monotonic() - ev.at
        self.stats.seconds += time.perf_counter() - t0
        self.stats.phases += 1
        self.stats.messages += messages
        self.stats.calls += len(calls)
        return out  # type: ignore[return-value]

    async def _send(self, session_id: str, peer: str, calls: list[ShardCall], idx: list[int],
                    out: list[ShardResult | None], ev: FailoverEvent | None) -> None:
        """One message to ``peer``: replays owed to it first (results dropped), then the phase's calls."""
        pending = self.pending_replay.get(session_id, set())
        replay: list[ShardCall] = []
        replayed: list[str] = []
        for i in idx:
            c = calls[i]
            if c.kind == "attention" and c.fragment_id in pending:
                sess = self.engine_sessions.get(session_id)
                if sess is None:
                    raise SessionError(f"session {session_id}: no attention history to rebuild "
                                       f"{c.fragment_id[:12]} on another replica (engine session not tracked)")
                replay += replay_calls(sess, c.fragment_id, int(c.layer or 0), int(c.positions[0]))
                replayed.append(c.fragment_id)
        wire = [to_wire(c) for c in replay + [calls[i] for i in idx]]
        t0 = time.perf_counter()
        rs = await self.rpc.compute_results(peer, session_id, wire, activation_dtype=self.wire_dtype,
                                            result_dtype=self.wire_dtype)
        for i, r in zip(idx, rs[len(replay):]):
            out[i] = from_wire(r)
        if replayed:
            pending.difference_update(replayed)
            if ev is None and self.events:
                ev = self.events[-1]
            if ev is not None:
                ev.replayed_layers += len(replayed)
                ev.replay_rows += sum(int(c.x.shape[0]) for c in replay)
                ev.replay_seconds += time.perf_counter() - t0
                ev.seconds = max(ev.seconds, time.monotonic() - ev.at)   # a run's failure ends with its replays


def failover_summary(events: list[FailoverEvent]) -> list[dict[str, Any]]:
    """Events as plain dicts (CLI output, benchmark JSON)."""
    return [{"peer": e.peer, "reason": e.reason, "moved": len(e.moved), "replayed_layers": e.replayed_layers,
             "replay_rows": e.replay_rows, "replay_s": round(e.replay_seconds, 4), "failover_s": round(e.seconds, 4)}
            for e in events]


__all__ = ["FailoverBackend", "FailoverEvent", "failover_summary", "replay_calls"]

