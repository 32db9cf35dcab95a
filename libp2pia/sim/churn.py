"""Churn over time: peers come and go, heartbeats detect the departed, replicas are rebuilt.

Time advances in heartbeat periods (30 s). Each step:

1. every peer flips online/offline with the per-class exponential session and
   offline lengths of ``peers.py`` (memoryless, so one probability per step);
2. a peer silent for ``misses`` periods (3 × 30 s) is declared dead: its
   replicas are dropped from the network's books, and if it returns it comes
   back empty (a peer back before detection keeps its fragments);
3. every fragment with fewer known replicas than its target gets new ones on
   online peers with a free slot (always-active fragments on the most stable
   candidates), downloaded from a live holder — or from the model's origin
   seed when no live holder is left — taking bytes / min(source up, target
   down) + RTT before the copy serves;
4. every ``sample_s`` the coverage is measured as in :mod:`coverage`.

Replicas whose holder left but is not yet detected still count as "known": the
network does not know yet, the client finds out by a failed call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..limits import DEFAULT_HEARTBEAT_MISSES, DEFAULT_HEARTBEAT_PERIOD_S
from .coverage import availability, coverage, expert_popularity
from .peers import CLASSES, ClassProfile, make_peers, uniform_storage
from .placement import place
from .plan import PlanArrays


@dataclass(frozen=True)
class ChurnParams:
    hours: float = 24.0
    step_s: float = DEFAULT_HEARTBEAT_PERIOD_S
    misses: int = DEFAULT_HEARTBEAT_MISSES
    sample_s: float = 120.0
    origin_bps: float = 125e6        # the publisher's seed: 1 Gbit/s, used only when no peer holds a copy
    coverage_tokens: int = 200
    classes: Mapping[str, ClassProfile] | None = None   # None: peers.DEFAULT_CLASSES


@dataclass
class ChurnResult:
    hours: float
    series: dict[str, list[float]]
    repair_bytes: float
    origin_bytes: float
    repairs: int
    n_peers: int
    always_dark_fraction: float     # fraction of steps with some always-active fragment without a live replica
    dark_fragment_hours: float      # Σ over fragments of the time without a live replica

    def summary(self) -> dict[str, Any]:
        s = self.series
        servable = np.array(s["clean"]) + np.array(s["degraded"])
        return {"hours": self.hours, "peers": self.n_peers,
                "mean_online_fraction": float(np.mean(s["online_fraction"])),
                "servable_time_fraction": float(np.mean(servable > 0)),
                "always_part_dark_time_fraction": self.always_dark_fraction,
                "dark_fragment_hours": self.dark_fragment_hours,
                "mean_clean": float(np.mean(s["clean"])), "mean_degraded": float(np.mean(s["degraded"])),
                "max_fragments_without_live_replica": int(np.max(s["fragments_without_live_replica"])),
                "repair_bytes": self.repair_bytes, "origin_bytes": self.origin_bytes, "repairs": self.repairs,
                "repair_gb_per_hour": self.repair_bytes / 1e9 / max(self.hours, 1e-9),
                "repair_mb_per_peer_hour": self.repair_bytes / 1e6 / max(self.hours, 1e-9) / self.n_peers,
                "series": s}


def simulate_churn(plan: PlanArrays, cfg: Any, params: ChurnParams = ChurnParams()) -> ChurnResult:
    """Run churn for ``params.hours`` on the scenario ``cfg`` (a :class:`scenario.Config`)."""
    rng = np.random.default_rng([cfg.seed, 7])
    peers = make_peers(cfg.n_peers(plan), rng, cfg.network, classes=params.classes,
                       weight_bytes_per_s=cfg.weight_bytes_per_s)
    if cfg.storage_bytes is not None:
        peers = uniform_storage(peers, cfg.storage_bytes)
    n = peers.n
    prof = [peers.classes[c] for c in CLASSES]
    sess = np.array([c.mean_session_s for c in prof])[peers.cls]
    off = np.array([c.mean_offline_s for c in prof])[peers.cls]
    dt = params.step_s
    p_leave, p_return = 1 - np.exp(-dt / sess), 1 - np.exp(-dt / off)
    online = rng.random(n) < peers.stability
    pl = place(plan, peers, cfg.replication, rng, cfg.always_replication, eligible=online)
    target = np.where(plan.always, cfg.always_replication or cfg.replication, cfg.replication)
    slots = np.maximum(peers.storage // max(plan.max_fragment_bytes, 1), 1)
    # replica table, grown as repairs add rows
    frag, peer = pl.frag[pl.placed].copy(), pl.peer[pl.placed].copy()
    ready = np.zeros(frag.size)
    active = np.ones(frag.size, bool)
    used = np.bincount(peer, minlength=n)
    off_since = np.zeros(n)
    detected = np.zeros(n, bool)
    pop = expert_popularity(plan.n_layers, plan.n_experts, cfg.routing_skew, rng)
    series: dict[str, list[float]] = {k: [] for k in (
        "t_s", "online_fraction", "fragments_without_live_replica", "clean", "degraded", "repair_bytes_cum")}
    repair_bytes = origin_bytes = 0.0
    repairs = 0
    dark_steps = 0
    dark_frag_s = 0.0
    steps = int(round(params.hours * 3600 / dt))
    every = max(1, int(round(params.sample_s / dt)))
    for step in range(steps + 1):
        t = step * dt
        if step:
            # 1. sessions end and begin
            u = rng.random(n)
            leave = online & (u < p_leave)
            back = ~online & (u < p_return)
            online[leave] = False
            off_since[leave] = t
            online[back] = True
            detected[back] = False
            # 2. heartbeat detection: silent for `misses` periods
            newly = ~online & ~detected & (t - off_since >= params.misses * dt)
            if newly.any():
                detected |= newly
                active &= ~newly[peer]
                used[newly] = 0
            # 3. re-replication of under-replicated fragments
            known = np.bincount(frag[active], minlength=plan.n)
            need = np.flatnonzero(known < target)
            if need.size:
                grown = _repair(plan, peers, rng, t, need, target[need] - known[need], frag, peer, ready, active,
                                online, detected, used, slots, params)
                if grown is not None:
                    frag, peer, ready, active, nb, nob, nr = grown
                    repair_bytes += nb
                    origin_bytes += nob
                    repairs += nr
        # every step: is anything without a live replica right now?
        live = active & online[peer] & (ready <= t)
        live_count = np.bincount(frag[live], minlength=plan.n)
        dark = live_count == 0
        dark_steps += bool(dark[plan.always].any())
        dark_frag_s += float(dark.sum()) * dt
        if step % every == 0:
            av = availability(plan, live_count)
            cov = coverage(plan, av, pop, cfg.routing_skew, params.coverage_tokens, rng)
            clean, deg = cov.clean, cov.degraded
            series["t_s"].append(t)
            series["online_fraction"].append(float(online.mean()))
            series["fragments_without_live_replica"].append(av.lost_fragments)
            series["clean"].append(clean)
            series["degraded"].append(deg)
            series["repair_bytes_cum"].append(repair_bytes)
    return ChurnResult(params.hours, series, repair_bytes, origin_bytes, repairs, n,
                       dark_steps / (steps + 1), dark_frag_s / 3600)


def _repair(plan: PlanArrays, peers: Any, rng: np.random.Generator, t: float, need: np.ndarray,
            deficit: np.ndarray, frag: np.ndarray, peer: np.ndarray, ready: np.ndarray, active: np.ndarray,
            online: np.ndarray, detected: np.ndarray, used: np.ndarray, slots: np.ndarray,
            params: ChurnParams) -> tuple[Any, ...] | None:
    """Schedule new replicas, at most one per target peer per step.

    Returns the grown replica arrays (frag, peer, ready, active) and the bytes moved,
    the bytes taken from the origin and the number of copies; None when nothing moved.
    """
    want = np.repeat(need, deficit)
    cand = np.flatnonzero(online & ~detected & (used < slots))
    if cand.size == 0 or want.size == 0:
        return None
    # always-active first, onto the most stable candidates; the rest onto random candidates
    want = want[np.argsort(~plan.always[want], kind="stable")]
    cand = cand[np.lexsort((rng.random(cand.size), -peers.stability[cand]))]
    n_always = int(plan.always[want].sum())
    rest = rng.permutation(cand[n_always:])
    cand = np.concatenate([cand[:n_always], rest])
    m = min(want.size, cand.size)
    want, tgt = want[:m], cand[:m].astype(np.int32)
    # a live holder to copy from (any one; the origin when none is left)
    live = active & online[peer] & (ready <= t)
    src = np.full(plan.n, -1, np.int64)
    src[frag[live]] = peer[live]
    s = src[want]
    src_bps = np.where(s >= 0, peers.up_bps[np.maximum(s, 0)], params.origin_bps)
    bps = np.minimum(src_bps, peers.down_bps[tgt])
    nbytes = plan.bytes[want].astype(float)
    done = t + nbytes / bps + peers.rtt_s[tgt]
    np.add.at(used, tgt, 1)
    return (np.concatenate([frag, want.astype(frag.dtype)]), np.concatenate([peer, tgt.astype(peer.dtype)]),
            np.concatenate([ready, done]), np.concatenate([active, np.ones(m, bool)]),
            float(nbytes.sum()), float(nbytes[s < 0].sum()), m)
