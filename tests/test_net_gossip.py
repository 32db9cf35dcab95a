"""Heartbeats over gossipsub between processes: peers appear, a killed one is declared dead."""

from __future__ import annotations

import trio

from libp2pia.net.dht import Dht
from libp2pia.net.gossip import Gossip, Heartbeats
from libp2pia.net.host import open_host
from libp2pia.net.peers import PeerEvent, PeerState
from netpeer import spawn

MODEL = "d" * 64
F1, F2 = "1" * 64, "2" * 64
PERIOD = 0.5
MISSES = 3


async def wait_for(cond, what: str, timeout: float = 20) -> None:  # noqa: ANN001
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.05)


async def test_a_stopped_worker_is_declared_dead_after_the_missed_periods() -> None:
    gossip_args = ("--gossip", MODEL, "--period", str(PERIOD))
    events: list[PeerEvent] = []
    with trio.fail_after(90):
        async with spawn("dht", *gossip_args) as boot:
            b = boot["addrs"][0]
            async with spawn("dht", "--bootstrap", b, "--provide", F1, "--announce", *gossip_args) as w1, \
                    spawn("dht", "--bootstrap", b, "--provide", F1, F2, "--announce", *gossip_args) as w2:
                async with open_host() as net:
                    gossip = Gossip(net)  # before connecting: pubsub greets peers on connect
                    await gossip.start()
                    hb = Heartbeats(gossip, MODEL, period=PERIOD, misses=MISSES, on_event=events.append)
                    await hb.start()  # listen only
                    await Dht(net).start([b])  # joins, so we are connected to the workers too
                    t = hb.table
                    await wait_for(lambda: t.state(w1["peer_id"]) is PeerState.ALIVE
                                   and t.state(w2["peer_id"]) is PeerState.ALIVE, "both workers alive")
                    assert sorted(t.holders(F1)) == sorted([w1["peer_id"], w2["peer_id"]])
                    assert t.holders(F2) == [w2["peer_id"]]
                    assert t.get(w1["peer_id"]).addrs == w1["addrs"]
                    assert t.state(boot["peer_id"]) is None  # listens, does not announce

                    w1["process"].kill()
                    await w1["process"].wait()
                    killed_at = trio.current_time()
                    await wait_for(lambda: t.state(w1["peer_id"]) is PeerState.DEAD, "w1 dead")
                    # dead only after the configured number of silent periods, never before
                    last_beat = t.get(w1["peer_id"]).last_seen
                    assert trio.current_time() - last_beat >= MISSES * PERIOD
                    assert last_beat <= killed_at + 0.5  # no beat of w1 was seen after its death
                    mine = [e.new for e in events if e.peer_id == w1["peer_id"]]
                    assert mine[-2:] == [PeerState.SUSPECT, PeerState.DEAD]
                    assert t.state(w2["peer_id"]) is PeerState.ALIVE
                    assert t.holders(F1) == [w2["peer_id"]]
                    assert hb.rejected == 0
