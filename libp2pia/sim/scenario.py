"""One failure scenario, and sweeps over failure fraction × replication factor.

A scenario: draw N peers, place R replicas per fragment, fail a fraction f of
the peers at once, then measure what survives (fragments, experts, always-active
part), which tokens can be served (clean / degraded / not at all), and how long
a token takes on the survivors.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from .coverage import (alive_after, availability, coverage, expert_popularity, failure_ranks, live_replicas,
                       survival_exact_fraction, token_coverage, uniform_clean_probability)
from .latency import LatencyParams, token_latency
from .peers import CLASSES, DEFAULT_WEIGHT_BYTES_PER_S, make_peers, uniform_storage
from .placement import place
from .plan import PlanArrays, summary


@dataclass(frozen=True)
class Config:
    """Everything a scenario depends on besides the plan (all JSON-able)."""

    peers: int | None = None               # None: the plan's rule, one fragment per peer (one per replica)
    replication: int = 3
    always_replication: int | None = None  # None: same as replication
    fail: float = 0.0
    network: str = "fibre"
    seed: int = 0
    routing_skew: float = 0.0              # Zipf exponent of expert popularity (0 = uniform)
    latency_tokens: int = 64
    coverage_tokens: int = 1000
    weight_bytes_per_s: float = DEFAULT_WEIGHT_BYTES_PER_S
    rtt_scale: float = 1.0
    storage_bytes: int | None = None       # None: per-class budgets; else the same for every peer
    latency: LatencyParams = field(default_factory=LatencyParams)

    def n_peers(self, plan: PlanArrays) -> int:
        if self.peers is not None:
            return self.peers
        n_always = int(plan.always.sum())
        return n_always * (self.always_replication or self.replication) + (plan.n - n_always) * self.replication


def _placed(plan: PlanArrays, cfg: Config, rng: np.random.Generator) -> tuple[Any, Any]:
    peers = make_peers(cfg.n_peers(plan), rng, cfg.network, weight_bytes_per_s=cfg.weight_bytes_per_s,
                       rtt_scale=cfg.rtt_scale)
    if cfg.storage_bytes is not None:
        peers = uniform_storage(peers, cfg.storage_bytes)
    return peers, place(plan, peers, cfg.replication, rng, cfg.always_replication)


def run(plan: PlanArrays, cfg: Config, with_latency: bool = True) -> dict[str, Any]:
    """Run one scenario; returns a JSON-able report."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    peers, pl = _placed(plan, cfg, rng)
    t_place = time.perf_counter()
    ranks = failure_ranks(peers.n, rng)
    alive = alive_after(ranks, cfg.fail)
    live = live_replicas(pl, alive)
    av = availability(plan, live)
    pop = expert_popularity(plan.n_layers, plan.n_experts, cfg.routing_skew, rng)
    cov = token_coverage(plan, av, pop, cfg.coverage_tokens, rng)
    per_frag = pl.replicas_per_fragment()
    per_peer = pl.fragments_per_peer()
    out: dict[str, Any] = {
        "config": {**asdict(replace(cfg, latency=None)), "peers": peers.n},  # type: ignore[arg-type]
        "latency_params": asdict(cfg.latency),
        "plan": summary(plan),
        "placement": {
            "replicas": int(pl.placed.sum()), "unplaced_replicas": int((~pl.placed).sum()),
            "min_replicas": int(per_frag.min()), "peers_holding": int((per_peer > 0).sum()),
            "idle_peers": int((per_peer == 0).sum()), "max_fragments_per_peer": int(per_peer.max()),
            "always_replicas_by_class": {c: int(np.count_nonzero(
                peers.cls[pl.peer[pl.placed & plan.always[pl.frag]]] == i)) for i, c in enumerate(CLASSES)},
        },
        "failure": {
            "fraction": cfg.fail, "dead_peers": int((~alive).sum()),
            "lost_fragments": av.lost_fragments,
            "lost_always_fragments": int((~av.fragment_ok & plan.always).sum()),
            "lost_conditional_fragments": int((~av.fragment_ok & ~plan.always).sum()),
            "unavailable_experts": int((~av.expert_ok[plan.moe_layers]).sum()) if plan.n_experts else 0,
            "always_part_whole": av.always_ok,
            "fragment_survival_closed_form": survival_exact_fraction(cfg.fail, cfg.replication, peers.n),
            "always_part_whole_closed_form": survival_exact_fraction(
                cfg.fail, cfg.always_replication or cfg.replication, peers.n) ** int(plan.always.sum()),
        },
        "coverage": {"clean": cov.clean, "degraded": cov.degraded, "none": cov.none,
                     "replaced_experts_per_token": cov.replaced_per_token,
                     "clean_exact_uniform_routing": uniform_clean_probability(plan, av)},
    }
    if with_latency and cov.none < 1.0:
        lat = token_latency(plan, peers, pl, alive, pop, av.expert_ok if plan.n_experts else None,
                            cfg.latency_tokens, rng, cfg.latency)
        out["latency"] = lat.summary()
    t1 = time.perf_counter()
    out["timing_s"] = {"peers_and_placement": t_place - t0, "total": t1 - t0}
    return out


def sweep(plan: PlanArrays, fails: Sequence[float], replications: Sequence[int], trials: int = 3,
          base: Config = Config()) -> list[dict[str, Any]]:
    """Coverage over failure fraction × replication factor (no latency), ``trials`` seeds each.

    Token coverage is exact for uniform routing and Monte-Carlo otherwise (:func:`coverage.coverage`).
    ``clean_if_up`` / ``replaced_if_up`` measure the routed experts alone, as if the always-active
    part were whole: averaged over thousands of experts they are smooth where ``always_whole``
    (one rare event per trial) is noisy, and the closed form covers that part.
    One placement per (R, trial); the failure sets are nested across f (see
    :func:`failure_ranks`), so more failures can never look better than fewer.
    Peers per R: ``base.peers`` if set, else one per replica (the plan's rule, fragments × R).
    """
    rows = []
    for r in replications:
        acc = {f: {"always_whole": 0.0, "clean": 0.0, "degraded": 0.0, "none": 0.0, "lost": 0.0,
                   "lost_always": 0.0, "unavail_experts": 0.0, "replaced": 0.0, "served": 0.0,
                   "clean_if_up": 0.0, "replaced_if_up": 0.0} for f in fails}
        cfg = replace(base, replication=r)
        for t in range(trials):
            rng = np.random.default_rng([base.seed, r, t])
            peers, pl = _placed(plan, cfg, rng)
            ranks = failure_ranks(peers.n, rng)
            pop = expert_popularity(plan.n_layers, plan.n_experts, base.routing_skew, rng)
            for f in fails:
                av = availability(plan, live_replicas(pl, alive_after(ranks, f)))
                cov = coverage(plan, av, pop, base.routing_skew, base.coverage_tokens, rng)
                a = acc[f]
                a["always_whole"] += av.always_ok
                a["clean"] += cov.clean
                a["degraded"] += cov.degraded
                a["none"] += cov.none
                a["lost"] += av.lost_fragments
                a["lost_always"] += int((~av.fragment_ok & plan.always).sum())
                a["unavail_experts"] += int((~av.expert_ok[plan.moe_layers]).sum()) if plan.n_experts else 0
                a["replaced"] += cov.replaced_per_token if cov.none < 1.0 else 0.0
                a["served"] += cov.none < 1.0
                # the experts alone, as if the always-active part were whole: smooth, low-noise
                up = coverage(plan, replace(av, always_ok=True), pop, base.routing_skew, base.coverage_tokens, rng)
                a["clean_if_up"] += up.clean
                a["replaced_if_up"] += up.replaced_per_token
        for f in fails:
            row = {"replication": r, "fail": f, "peers": cfg.n_peers(plan), "trials": trials}
            a = acc[f]
            row["replaced_experts_per_served_token"] = a.pop("replaced") / a["served"] if a["served"] else None
            row.update({k: v / trials for k, v in a.items() if k != "served"})
            row["fragment_survival_closed_form"] = 1 - f ** r
            row["always_whole_closed_form"] = (1 - f ** (base.always_replication or r)) ** int(plan.always.sum())
            rows.append(row)
    return rows


def latency_vs_rtt(plan: PlanArrays, scales: Sequence[float], base: Config) -> list[dict[str, Any]]:
    """Seconds per token as the peers' RTT is scaled (no failures)."""
    rows = []
    for s in scales:
        rep = run(plan, replace(base, rtt_scale=s, fail=0.0), with_latency=True)
        lat = rep["latency"]
        rows.append({"rtt_scale": s, "network": base.network, "median_rtt_ms": _median_rtt_ms(plan, base, s),
                     **{k: lat[k] for k in ("mean_s_per_token", "p95_s_per_token", "phases_x_median_rtt_s",
                                            "peers_per_token", "phases_per_token")}})
    return rows


def _median_rtt_ms(plan: PlanArrays, base: Config, scale: float) -> float:
    rng = np.random.default_rng(base.seed)
    p = make_peers(min(base.n_peers(plan), 20000), rng, base.network, rtt_scale=scale)
    return float(np.median(p.rtt_s) * 1e3)
