"""libp2pia.sim against closed forms, plus determinism and monotonicity."""

from __future__ import annotations

from math import comb, sqrt
from typing import Any

import numpy as np
import pytest

from libp2pia.errors import ManifestError
from libp2pia.limits import MiB
from libp2pia.sim import coverage as cv
from libp2pia.sim.peers import make_peers, uniform_storage
from libp2pia.sim.placement import place
from libp2pia.sim.plan import plan_arrays
from libp2pia.sim.scenario import Config, run, sweep
from libp2pia.sim.toy import toy_plan


def _flat_plan(n_always: int, n_cond: int, experts: int = 0) -> dict[str, Any]:
    """n_always always-active fragments (one layer) and n_cond single-fragment experts."""
    frags = [{"role": "attention", "class": "always", "bytes": MiB, "layer": 0, "expert": None}
             for _ in range(n_always)]
    frags += [{"role": "expert", "class": "conditional", "bytes": MiB, "layer": i // max(experts, 1),
               "expert": i % max(experts, 1)} for i in range(n_cond)]
    hp = {"t.block_count": max(1, n_cond // max(experts, 1)), "t.expert_count": experts, "t.expert_used_count": 2}
    return {"architecture": "t", "hparams": hp, "max_fragment_bytes": 10 * MiB, "fragments": frags}


def _placed(plan: dict[str, Any], r: int, seed: int, per_peer_slots: int = 1, ra: int | None = None):
    p = plan_arrays(plan)
    rng = np.random.default_rng(seed)
    n = p.n * max(r, ra or 0)
    peers = uniform_storage(make_peers(n, rng), per_peer_slots * 10 * MiB)
    return p, peers, place(p, peers, r, rng, ra), rng


@pytest.mark.parametrize("r,f", [(1, 0.3), (2, 0.5), (3, 0.4), (5, 0.6)])
def test_fragment_survival_matches_closed_form(r: int, f: float) -> None:
    p, peers, pl, rng = _placed(_flat_plan(0, 3000, experts=100), r, seed=r)
    alive = cv.alive_after(cv.failure_ranks(peers.n, rng), f)
    survived = (cv.live_replicas(pl, alive) > 0).mean()
    expect = cv.survival_exact_fraction(f, r, peers.n)
    assert abs(expect - cv.survival_closed_form(f, r)) < 1e-3      # large n: hypergeometric ≈ 1 − f^R
    sigma = sqrt(expect * (1 - expect) / p.n)
    assert abs(survived - expect) <= 5 * sigma + 1e-9


def test_always_part_survival_matches_closed_form() -> None:
    """P(every always-active fragment survives) = (1 − f^R)^A, over many placements."""
    r, f, a, trials = 2, 0.5, 3, 400
    plan = _flat_plan(a, 0)
    wins = 0
    for t in range(trials):
        p, peers, pl, rng = _placed(plan, r, seed=1000 + t)
        alive = rng.random(peers.n) >= f                     # independent failures
        wins += cv.availability(p, cv.live_replicas(pl, alive)).always_ok
    expect = cv.survival_closed_form(f, r) ** a
    assert abs(wins / trials - expect) <= 5 * sqrt(expect * (1 - expect) / trials)


def test_token_coverage_follows_from_independent_experts() -> None:
    """Uniform routing over independent single-fragment experts: P(clean) = (1 − f^R)^(k·L)."""
    r, f, experts, layers, k = 2, 0.3, 16, 4, 2
    plan = _flat_plan(0, experts * layers, experts)
    vals = []
    for t in range(150):
        p, peers, pl, rng = _placed(plan, r, seed=t)
        alive = rng.random(peers.n) >= f
        av = cv.availability(p, cv.live_replicas(pl, alive))
        vals.append(cv.uniform_clean_probability(p, av))
    assert p.top_k == k and p.moe_layers.size == layers
    expect = cv.survival_closed_form(f, r) ** (k * layers)
    assert abs(np.mean(vals) - expect) <= 5 * np.std(vals) / sqrt(len(vals))


def test_monte_carlo_coverage_matches_exact_uniform_routing() -> None:
    p, peers, pl, rng = _placed(_flat_plan(0, 32 * 6, 32), 1, seed=3)
    alive = cv.alive_after(cv.failure_ranks(peers.n, rng), 0.15)
    av = cv.availability(p, cv.live_replicas(pl, alive))
    exact = cv.uniform_clean_probability(p, av)
    assert 0.05 < exact < 0.95
    pop = cv.expert_popularity(p.n_layers, p.n_experts, 0.0, rng)
    mc = cv.token_coverage(p, av, pop, 20000, rng)
    assert abs(mc.clean - exact) < 5 * sqrt(exact * (1 - exact) / 20000)
    assert mc.clean + mc.degraded + mc.none == pytest.approx(1.0)


def test_one_missing_expert_degrades_k_over_e_of_tokens() -> None:
    """Kill every fragment of expert 5 in layer 1: a fraction k/E of tokens route to it."""
    p = plan_arrays(toy_plan(layers=3, experts=8, top_k=2, frags_per_expert=3))
    live = np.ones(p.n, np.int64)
    live[(p.layer == 1) & (p.expert == 5)] = 0
    av = cv.availability(p, live)
    assert av.always_ok and av.expert_ok.sum() == 3 * 8 - 1
    rng = np.random.default_rng(0)
    cov = cv.token_coverage(p, av, cv.expert_popularity(p.n_layers, 8, 0.0, rng), 20000, rng)
    assert cov.none == 0 and abs(cov.degraded - 2 / 8) < 5 * sqrt(0.25 * 0.75 / 20000)
    assert cv.uniform_clean_probability(p, av) == pytest.approx(comb(7, 2) / comb(8, 2))


def test_placement_distinct_peers_storage_and_stability() -> None:
    p = plan_arrays(toy_plan(layers=6, experts=8, frags_per_expert=2, attention_frags=3))
    rng = np.random.default_rng(1)
    peers = make_peers(p.n * 2, rng)                 # mixed budgets: desktops hold several
    pl = place(p, peers, 3, rng)
    assert (pl.replicas_per_fragment() == 3).all()
    pairs = pl.frag.astype(np.int64) * peers.n + pl.peer
    assert np.unique(pairs).size == pairs.size       # never two replicas of a fragment on one peer
    slots = np.maximum(peers.storage // (10 * MiB), 1)
    assert (pl.fragments_per_peer() <= slots).all()
    always_peers = pl.peer[p.always[pl.frag]]
    assert peers.stability[always_peers].min() >= peers.stability.max() - 1e-12   # desktops only


def test_deterministic_under_seed() -> None:
    p = plan_arrays(toy_plan(layers=4, experts=8))
    a = run(p, Config(replication=2, fail=0.3, seed=7, latency_tokens=8))
    b = run(p, Config(replication=2, fail=0.3, seed=7, latency_tokens=8))
    c = run(p, Config(replication=2, fail=0.3, seed=8, latency_tokens=8))
    for d in (a, b, c):
        d.pop("timing_s")
    assert a == b and a != c


def test_monotone_in_failures_and_replicas() -> None:
    p = plan_arrays(toy_plan(layers=4, experts=16, frags_per_expert=2, attention_frags=2, vocab_frags=1))
    fails = [0.0, 0.1, 0.2, 0.3, 0.5, 0.7]
    rows = sweep(p, fails, [1, 2, 3, 4, 5], trials=6, base=Config(coverage_tokens=300, seed=2))
    by = {(r["replication"], r["fail"]): r for r in rows}
    for r in range(1, 6):
        for f0, f1 in zip(fails, fails[1:]):
            assert by[r, f1]["lost"] >= by[r, f0]["lost"]                 # more failures never help
            assert by[r, f1]["always_whole"] <= by[r, f0]["always_whole"]
            assert by[r, f1]["clean"] <= by[r, f0]["clean"] + 1e-9
    for f in fails[1:]:
        for r in range(1, 5):
            assert by[r + 1, f]["lost"] <= by[r, f]["lost"]               # more replicas never hurt
    assert by[1, 0.0]["clean"] == 1.0 and by[1, 0.7]["lost"] > 0


def test_bad_plans_are_clear_errors() -> None:
    with pytest.raises(ManifestError, match="fragments"):
        plan_arrays({"fragments": []})
    with pytest.raises(ManifestError, match="unknown role"):
        plan_arrays({"fragments": [{"role": "x", "class": "always", "bytes": 1}]})
    with pytest.raises(ManifestError, match="fragment 0"):
        plan_arrays({"fragments": [{"role": "core", "bytes": 1}]})


def test_exact_uniform_coverage_matches_monte_carlo_with_replacements() -> None:
    p, peers, pl, rng = _placed(_flat_plan(2, 32 * 6, 32), 1, seed=5)
    av = cv.availability(p, cv.live_replicas(pl, cv.alive_after(cv.failure_ranks(peers.n, rng), 0.1)))
    if not av.always_ok:                       # make the always part whole: only experts matter here
        av = cv.Availability(av.fragment_ok, True, av.expert_ok)
    exact = cv.uniform_coverage(p, av)
    mc = cv.token_coverage(p, av, cv.expert_popularity(p.n_layers, 32, 0.0, rng), 20000, rng)
    assert abs(mc.clean - exact.clean) < 0.02 and abs(mc.degraded - exact.degraded) < 0.02
    assert mc.replaced_per_token == pytest.approx(exact.replaced_per_token, rel=0.05)
    assert exact.replaced_per_token > 0
