"""The per-token latency model against hand computations on tiny plans."""

from __future__ import annotations

import numpy as np
import pytest

from libp2pia.limits import MiB
from libp2pia.sim.coverage import expert_popularity
from libp2pia.sim.latency import LatencyParams, token_latency
from libp2pia.sim.peers import Peers, client_link
from libp2pia.sim.placement import place
from libp2pia.sim.plan import plan_arrays
from libp2pia.sim.scenario import Config, run
from libp2pia.sim.toy import toy_plan


def _same_peers(n: int, rtt: float, bps: float, w: float, storage: int) -> Peers:
    return Peers(cls=np.zeros(n, np.int8), storage=np.full(n, storage, np.int64), rtt_s=np.full(n, rtt),
                 down_bps=np.full(n, bps), up_bps=np.full(n, bps), weight_bps=np.full(n, w),
                 stability=np.ones(n), network="fibre")


def _dense_plan(layers: int) -> dict:
    # per layer: 2 attention shards, 1 FFN shard; vocab: 1 embedding + 1 output shard; all 4 MiB
    return toy_plan(layers=layers, experts=0, attention_frags=2, dense_ffn_frags=1, vocab_frags=1,
                    fragment_bytes=4 * MiB, hidden=512)


@pytest.mark.parametrize("layers", [1, 3])
def test_identical_peers_match_hand_computation(layers: int) -> None:
    p = plan_arrays(_dense_plan(layers))
    rtt, bps, w = 0.02, 10e6, 1e9
    peers = _same_peers(p.n, rtt, bps, w, 10 * MiB)           # one fragment per peer
    rng = np.random.default_rng(0)
    pl = place(p, peers, 1, rng)
    prm = LatencyParams()
    lat = token_latency(p, peers, pl, np.ones(peers.n, bool), expert_popularity(p.n_layers, 0, 0.0, rng),
                        None, 5, rng, prm)
    act = 512 * 4
    c = client_link("fibre")
    c_up, c_down = c.up_mbps * 1e6 / 8, c.down_mbps * 1e6 / 8
    comp = 4 * MiB / w

    def phase(n_peers: int, req: float, resp: float) -> float:
        one = rtt + prm.peer_overhead_s + req / bps + comp + resp / bps
        return one + n_peers * (prm.client_msg_cpu_s + req / c_up + resp / c_down)

    expect = phase(1, 16, act) + layers * (phase(2, act, act) + phase(1, act, act)) + \
        phase(1, act, prm.logits_response_bytes)
    assert lat.phases == 2 + 2 * layers
    assert lat.seconds == pytest.approx(np.full(5, expect))
    assert (lat.fragments == 2 + 3 * layers).all() and (lat.peers == 2 + 3 * layers).all()
    assert lat.seconds.min() > lat.rtt_yardstick_s   # identical peers: the median RTT is every RTT


def test_one_peer_gets_one_message_per_phase() -> None:
    p = plan_arrays(_dense_plan(2))
    peers = _same_peers(1, 0.01, 1e8, 1e9, 10**12)            # holds every fragment
    rng = np.random.default_rng(0)
    pl = place(p, peers, 1, rng)
    lat = token_latency(p, peers, pl, np.ones(1, bool), np.zeros((2, 0)), None, 3, rng)
    assert (lat.peers == 1).all() and (lat.fragments == 2 + 3 * 2).all()
    # 6 phases, each one message: the RTT is paid once per phase, not per fragment
    assert lat.seconds[0] < 6 * 0.01 + 8 * (4 * MiB / 1e9) + 6 * 0.01


def test_moe_calls_top_k_experts_per_layer() -> None:
    p = plan_arrays(toy_plan(layers=4, experts=8, top_k=2, frags_per_expert=3, attention_frags=2, vocab_frags=1))
    rng = np.random.default_rng(0)
    peers = _same_peers(p.n, 0.01, 1e8, 1e9, 10 * MiB)
    pl = place(p, peers, 1, rng)
    lat = token_latency(p, peers, pl, np.ones(peers.n, bool), expert_popularity(4, 8, 0.0, rng), None, 10, rng)
    # embed 1 + logits 1 + per layer 2 attention + 2 experts × 3 fragments
    assert (lat.fragments == 2 + 4 * (2 + 2 * 3)).all()


def test_networks_order_lan_fibre_mobile() -> None:
    p = plan_arrays(toy_plan(layers=6, experts=8, top_k=2))
    s = {net: run(p, Config(replication=2, network=net, seed=1, latency_tokens=16))["latency"]["mean_s_per_token"]
         for net in ("lan", "fibre", "mobile")}
    assert s["lan"] < s["fibre"] < s["mobile"]


def test_seconds_grow_with_round_trip_time() -> None:
    p = plan_arrays(toy_plan(layers=4, experts=8, top_k=2))
    s = [run(p, Config(replication=2, seed=1, rtt_scale=k, latency_tokens=8))["latency"]["mean_s_per_token"]
         for k in (0.1, 1.0, 3.0)]
    assert s[0] < s[1] < s[2]


def test_super_node_takes_the_fan_out_off_the_client_link() -> None:
    from dataclasses import replace

    p = plan_arrays(toy_plan(layers=6, experts=8, top_k=2, attention_frags=8, frags_per_expert=4, hidden=4096))
    direct = Config(replication=2, network="mobile", seed=1, latency_tokens=8)
    via = replace(direct, latency=LatencyParams(supernode_mbps=1000.0))
    a, b = run(p, direct)["latency"], run(p, via)["latency"]
    # the client now uploads one activation per phase (the embedding request is a token id)
    assert b["client_upload_mb_per_token"] == pytest.approx(
        ((b["phases_per_token"] - 1) * 4096 * 4 + 16) / 1e6)
    assert a["client_upload_mb_per_token"] > 5 * b["client_upload_mb_per_token"]
    assert b["mean_s_per_token"] < a["mean_s_per_token"]
