"""PeerTable: who is alive and what they hold, as a pure state machine (no I/O, no clock).

Fed by announcements (heartbeats), by call outcomes, and by ``tick(now)``:

    ALIVE ──call failed / 1 missed period──▶ SUSPECT ──N missed periods──▶ DEAD
      ▲                                          │                          │
      └──── announcement or successful call ─────┴──────── announcement ────┘

A beat is "missed" for every full period without an announcement since the
last one. A failed call marks the peer SUSPECT at once (the client stops
choosing it); only missing heartbeats make it DEAD, so one slow answer never
removes a healthy peer for good. ``now`` is any monotonic clock in seconds.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from ..limits import DEFAULT_HEARTBEAT_MISSES
from ..wire.announce import Announcement


class PeerState(enum.Enum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"


@dataclass
class PeerRecord:
    peer_id: str
    state: PeerState
    last_seen: float
    seq: int = -1
    uptime_s: float = -1.0
    addrs: list[str] = field(default_factory=list)
    fragments: frozenset[str] = frozenset()
    load: float = 0.0
    sessions: int = 0
    model_id: str = ""
    failures: int = 0  # consecutive failed calls


@dataclass(frozen=True)
class PeerEvent:
    peer_id: str
    old: PeerState | None  # None: first time seen
    new: PeerState


class PeerTable:
    def __init__(self, period: float, misses: int = DEFAULT_HEARTBEAT_MISSES, self_id: str | None = None) -> None:
        if period <= 0 or misses < 1:
            raise ValueError(f"period {period} and misses {misses} must be positive")
        self.period = period
        self.misses = misses
        self.self_id = self_id
        self._peers: dict[str, PeerRecord] = {}

    # ------------------------------------------------------------ inputs

    def on_announcement(self, ann: Announcement, now: float) -> list[PeerEvent]:
        """Record a heartbeat. Stale (out-of-order) ones are ignored; our own too."""
        if ann.peer_id == self.self_id:
            return []
        rec = self._peers.get(ann.peer_id)
        if rec is None:
            rec = self._peers[ann.peer_id] = PeerRecord(ann.peer_id, PeerState.ALIVE, now)
            events = [PeerEvent(ann.peer_id, None, PeerState.ALIVE)]
        else:
            restarted = ann.uptime_s < rec.uptime_s
            if not restarted and ann.seq <= rec.seq:
                return []
            events = self._set(rec, PeerState.ALIVE)
        rec.last_seen = max(rec.last_seen, now)
        rec.seq, rec.uptime_s = ann.seq, ann.uptime_s
        rec.addrs, rec.fragments = list(ann.addrs), frozenset(ann.fragments)
        rec.load, rec.sessions, rec.model_id = ann.load, ann.sessions, ann.model_id
        rec.failures = 0
        return events

    def on_call_failure(self, peer_id: str, now: float) -> list[PeerEvent]:
        """A call failed or timed out: suspect the peer at once."""
        rec = self._peers.get(peer_id)
        if rec is None:
            rec = self._peers[peer_id] = PeerRecord(peer_id, PeerState.SUSPECT, now, failures=1)
            return [PeerEvent(peer_id, None, PeerState.SUSPECT)]
        rec.failures += 1
        return self._set(rec, PeerState.SUSPECT) if rec.state is PeerState.ALIVE else []

    def on_call_success(self, peer_id: str, now: float) -> list[PeerEvent]:
        """A call succeeded: the peer is alive (even if its heartbeats are late)."""
        rec = self._peers.get(peer_id)
        if rec is None:
            self._peers[peer_id] = PeerRecord(peer_id, PeerState.ALIVE, now)
            return [PeerEvent(peer_id, None, PeerState.ALIVE)]
        rec.failures = 0
        rec.last_seen = max(rec.last_seen, now)
        return self._set(rec, PeerState.ALIVE)

    def tick(self, now: float) -> list[PeerEvent]:
        """Apply missed periods: 1 → SUSPECT, ``misses`` → DEAD."""
        events: list[PeerEvent] = []
        for rec in self._peers.values():
            missed = self.missed(rec.peer_id, now)
            if missed >= self.misses:
                events += self._set(rec, PeerState.DEAD)
            elif missed >= 1 and rec.state is PeerState.ALIVE:
                events += self._set(rec, PeerState.SUSPECT)
        return events

    def forget(self, peer_id: str) -> None:
        self._peers.pop(peer_id, None)

    # ------------------------------------------------------------ queries

    def missed(self, peer_id: str, now: float) -> int:
        rec = self._peers[peer_id]
        return max(0, math.floor((now - rec.last_seen) / self.period))

    def get(self, peer_id: str) -> PeerRecord | None:
        return self._peers.get(peer_id)

    def state(self, peer_id: str) -> PeerState | None:
        rec = self._peers.get(peer_id)
        return rec.state if rec else None

    def peers(self, *states: PeerState) -> list[PeerRecord]:
        want = states or (PeerState.ALIVE,)
        return [r for r in self._peers.values() if r.state in want]

    def holders(self, fragment_id: str, *, include_suspect: bool = False) -> list[str]:
        """Peers that announced ``fragment_id``: alive ones (and suspect ones if asked), least loaded first."""
        ok = (PeerState.ALIVE, PeerState.SUSPECT) if include_suspect else (PeerState.ALIVE,)
        recs = [r for r in self._peers.values() if r.state in ok and fragment_id in r.fragments]
        return [r.peer_id for r in sorted(recs, key=lambda r: (r.state is not PeerState.ALIVE, r.load, r.peer_id))]

    def replica_counts(self) -> dict[str, int]:
        """Live replicas per fragment (for choosing what a new worker should fetch)."""
        counts: dict[str, int] = {}
        for r in self.peers(PeerState.ALIVE):
            for f in r.fragments:
                counts[f] = counts.get(f, 0) + 1
        return counts

    # ------------------------------------------------------------ internals

    @staticmethod
    def _set(rec: PeerRecord, new: PeerState) -> list[PeerEvent]:
        if rec.state is new:
            return []
        old, rec.state = rec.state, new
        return [PeerEvent(rec.peer_id, old, new)]
