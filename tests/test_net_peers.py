"""PeerTable state machine, without sockets or clocks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from libp2pia.net.peers import PeerEvent, PeerState, PeerTable
from libp2pia.wire.announce import Announcement

A, S, D = PeerState.ALIVE, PeerState.SUSPECT, PeerState.DEAD
F1, F2 = "1" * 64, "2" * 64


def ann(pid: str, seq: int, frags=(F1,), uptime: float | None = None, load: float = 0.0) -> Announcement:
    return Announcement(pid, "m" * 64, seq, ["/ip4/1.2.3.4/tcp/1"], list(frags), load, seq if uptime is None else uptime)


def test_alive_suspect_dead_by_missed_periods() -> None:
    t = PeerTable(period=1.0, misses=3)
    assert t.on_announcement(ann("p", 1), 0.0) == [PeerEvent("p", None, A)]
    assert t.tick(0.99) == []
    assert t.tick(1.0) == [PeerEvent("p", A, S)]
    assert t.tick(2.9) == []
    assert t.tick(3.0) == [PeerEvent("p", S, D)]
    assert t.tick(10) == []
    assert t.holders(F1) == [] and t.holders(F1, include_suspect=True) == []
    # a new beat revives it
    assert t.on_announcement(ann("p", 2), 11.0) == [PeerEvent("p", D, A)]
    assert t.holders(F1) == ["p"]


def test_call_failure_suspects_at_once_and_heartbeats_decide_death() -> None:
    t = PeerTable(period=10.0, misses=3)
    t.on_announcement(ann("p", 1), 0.0)
    assert t.on_call_failure("p", 0.5) == [PeerEvent("p", A, S)]
    assert t.on_call_failure("p", 0.6) == []
    assert t.get("p").failures == 2
    assert t.holders(F1) == [] and t.holders(F1, include_suspect=True) == ["p"]
    assert t.on_announcement(ann("p", 2), 5.0) == [PeerEvent("p", S, A)]
    assert t.get("p").failures == 0
    t.on_call_failure("p", 6.0)
    assert t.on_call_success("p", 7.0) == [PeerEvent("p", S, A)]
    assert t.tick(36.9) == [PeerEvent("p", A, S)]
    assert t.tick(37.0) == [PeerEvent("p", S, D)]


def test_stale_and_own_announcements_are_ignored_restarts_are_not() -> None:
    t = PeerTable(period=1.0, self_id="me")
    assert t.on_announcement(ann("me", 1), 0) == []
    t.on_announcement(ann("p", 5, frags=(F1,), uptime=100), 0)
    assert t.on_announcement(ann("p", 4, frags=(F2,), uptime=100), 0.5) == []
    assert t.get("p").fragments == {F1}
    t.on_announcement(ann("p", 0, frags=(F2,), uptime=0.1), 0.6)  # restarted: seq starts again
    assert t.get("p").fragments == {F2}


def test_holders_prefer_low_load_and_replica_counts() -> None:
    t = PeerTable(period=1.0)
    t.on_announcement(ann("busy", 1, (F1, F2), load=0.9), 0)
    t.on_announcement(ann("idle", 1, (F1,), load=0.1), 0)
    assert t.holders(F1) == ["idle", "busy"]
    assert t.replica_counts() == {F1: 2, F2: 1}


@given(st.lists(st.tuples(st.sampled_from(["beat", "fail", "ok", "tick"]), st.sampled_from("abc"),
                          st.floats(0, 5)), max_size=60))
def test_invariants_under_any_event_sequence(events) -> None:
    """Events only report real transitions; dead means N periods without a beat or a success."""
    t, now, seqs = PeerTable(period=1.0, misses=3), 0.0, {}
    for kind, pid, dt in events:
        now += dt
        before = t.state(pid)
        if kind == "beat":
            seqs[pid] = seqs.get(pid, 0) + 1
            evs = t.on_announcement(ann(pid, seqs[pid]), now)
        elif kind == "fail":
            evs = t.on_call_failure(pid, now)
        elif kind == "ok":
            evs = t.on_call_success(pid, now)
        else:
            evs = t.tick(now)
        for e in evs:
            assert e.old != e.new
        if kind in ("beat", "ok"):
            assert t.state(pid) is A
        if kind == "fail":
            assert t.state(pid) in (S, D) or before is None and t.state(pid) is S
        if kind == "tick":
            for r in t.peers(A, S, D):
                assert (r.state is D) == (t.missed(r.peer_id, now) >= 3)
