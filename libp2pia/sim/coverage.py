"""Failures, what survives them, and which tokens can still be served.

A token is served **without degradation** when every always-active fragment has
a live replica and each of its top-k routed experts per MoE layer is
available (an expert is available when every one of its fragments has a live
replica). It is served **degraded** when the always-active part is whole but
some chosen expert is not: the router then takes the next best available
experts (DESIGN.md §1, MoE degraded mode). It is **not served** when an
always-active fragment has no live replica, or a MoE layer has no available
expert at all.

Closed forms these functions are tested against (independent failures with
probability f, R distinct holders): a fragment survives with 1 − f^R; the
always-active part with (1 − f^R)^A.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np

from ..errors import Libp2piaError
from .placement import Placement
from .plan import PlanArrays


def failure_ranks(n_peers: int, rng: np.random.Generator) -> np.ndarray:
    """A random rank per peer; ``dead = ranks < round(f * n)`` fails exactly a fraction f.

    Using one rank draw for a whole sweep nests the failure sets (the peers dead at
    10 % are also dead at 20 %), so a sweep is monotone by construction and cheap.
    """
    return rng.permutation(n_peers).astype(np.int64)


def alive_after(ranks: np.ndarray, fraction: float) -> np.ndarray:
    if not 0.0 <= fraction <= 1.0:
        raise Libp2piaError(f"failure fraction must be within 0..1, got {fraction}")
    return ranks >= int(round(fraction * ranks.size))


def live_replicas(placement: Placement, alive: np.ndarray) -> np.ndarray:
    """Live replica count per fragment."""
    ok = placement.placed
    ok[ok] = alive[placement.peer[ok]]
    return np.bincount(placement.frag[ok], minlength=placement.n_fragments)


@dataclass(frozen=True)
class Availability:
    fragment_ok: np.ndarray      # bool per fragment: at least one live replica
    always_ok: bool              # every always-active fragment is live
    expert_ok: np.ndarray        # bool (n_layers, n_experts): every fragment of the expert is live

    @property
    def lost_fragments(self) -> int:
        return int((~self.fragment_ok).sum())


def availability(plan: PlanArrays, live: np.ndarray) -> Availability:
    ok = live > 0
    eid = plan.expert_ids()
    routed = eid >= 0
    n_ids = max(plan.n_layers * plan.n_experts, 1)
    exists = np.bincount(eid[routed], minlength=n_ids) > 0
    missing = np.bincount(eid[routed & ~ok], minlength=n_ids)
    expert_ok = (exists & (missing == 0)).reshape(max(plan.n_layers, 1), -1) if plan.n_experts else \
        np.zeros((plan.n_layers, 0), bool)
    return Availability(fragment_ok=ok, always_ok=bool(ok[plan.always].all()), expert_ok=expert_ok)


def expert_popularity(n_layers: int, n_experts: int, skew: float, rng: np.random.Generator) -> np.ndarray:
    """Routing prior per layer: Zipf(skew) over a random order of the experts (skew 0 = uniform)."""
    w = 1.0 / np.arange(1, n_experts + 1, dtype=float) ** skew
    w /= w.sum()
    return np.stack([w[rng.permutation(n_experts)] for _ in range(n_layers)]) if n_experts else \
        np.zeros((n_layers, 0))


def route(popularity: np.ndarray, layers: np.ndarray, n_tokens: int, top_k: int,
          expert_ok: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sample each token's expert ranking (Gumbel-top-k on the prior) and pick the top-k available.

    Returns ``chosen`` (n_tokens, len(layers), top_k) expert ids, -1 where fewer than
    top_k are available, and ``replaced`` (n_tokens, len(layers)): how many of the
    originally chosen experts were unavailable and replaced (0 = not degraded).
    """
    n_exp = popularity.shape[1]
    keys = np.log(popularity[layers][None, :, :] + 1e-300).astype(np.float32) - np.log(
        -np.log(rng.random((n_tokens, layers.size, n_exp), dtype=np.float32) + np.float32(1e-12)))
    ideal = np.argpartition(-keys, top_k - 1, axis=2)[:, :, :top_k]
    if expert_ok is None:
        return ideal, np.zeros((n_tokens, layers.size), np.int64)
    ok = expert_ok[layers][None, :, :]
    keys = np.where(ok, keys, -np.inf)
    chosen = np.argpartition(-keys, top_k - 1, axis=2)[:, :, :top_k]
    valid = np.take_along_axis(keys, chosen, axis=2) > -np.inf
    chosen = np.where(valid, chosen, -1)
    ideal_ok = np.take_along_axis(np.broadcast_to(ok, keys.shape), ideal, axis=2)
    return chosen, (~ideal_ok).sum(axis=2)


@dataclass(frozen=True)
class TokenCoverage:
    clean: float        # fraction of tokens served without degradation
    degraded: float     # served with at least one replaced expert
    none: float         # not served at all
    replaced_per_token: float   # mean replaced (layer, expert) choices per token, counted as if served


def token_coverage(plan: PlanArrays, avail: Availability, popularity: np.ndarray, n_tokens: int,
                   rng: np.random.Generator) -> TokenCoverage:
    """Monte-Carlo token coverage over ``n_tokens`` routed tokens.

    ``replaced_per_token`` counts replaced choices as if the token were served (an
    expert-only measure), so it stays defined when the model is down.
    """
    layers = plan.moe_layers
    if layers.size == 0 or plan.n_experts == 0:
        return TokenCoverage(1.0, 0.0, 0.0, 0.0) if avail.always_ok else TokenCoverage(0.0, 0.0, 1.0, 0.0)
    _, replaced = route(popularity, layers, n_tokens, plan.top_k, avail.expert_ok, rng)
    per_token = float(replaced.sum() / n_tokens)
    if not avail.always_ok or (~avail.expert_ok[layers].any(axis=1)).any():
        return TokenCoverage(0.0, 0.0, 1.0, per_token)
    tok_deg = replaced.any(axis=1)
    return TokenCoverage(float(1 - tok_deg.mean()), float(tok_deg.mean()), 0.0, per_token)


def uniform_coverage(plan: PlanArrays, avail: Availability) -> TokenCoverage:
    """Exact token coverage for uniform routing (what the Monte-Carlo estimates; tested against it).

    Replaced choices per token: Σ over MoE layers of k · (1 − A_l / E).
    """
    layers = plan.moe_layers
    if layers.size == 0 or plan.n_experts == 0:
        return TokenCoverage(1.0, 0.0, 0.0, 0.0) if avail.always_ok else TokenCoverage(0.0, 0.0, 1.0, 0.0)
    a = avail.expert_ok[layers].sum(axis=1)
    replaced = float((plan.top_k * (1 - a / plan.n_experts)).sum())
    if not avail.always_ok or (a == 0).any():
        return TokenCoverage(0.0, 0.0, 1.0, replaced)
    clean = uniform_clean_probability(plan, avail)
    return TokenCoverage(clean, 1.0 - clean, 0.0, replaced)


def coverage(plan: PlanArrays, avail: Availability, popularity: np.ndarray, skew: float, n_tokens: int,
             rng: np.random.Generator) -> TokenCoverage:
    """Exact for uniform routing, Monte-Carlo over ``n_tokens`` routed tokens otherwise."""
    if skew == 0:
        return uniform_coverage(plan, avail)
    return token_coverage(plan, avail, popularity, n_tokens, rng)


def uniform_clean_probability(plan: PlanArrays, avail: Availability) -> float:
    """Exact P(no degradation) for uniform routing: Π over MoE layers of C(A_l, k) / C(E, k)."""
    if not avail.always_ok:
        return 0.0
    p = 1.0
    for layer in plan.moe_layers:
        a = int(avail.expert_ok[layer].sum())
        p *= comb(a, plan.top_k) / comb(plan.n_experts, plan.top_k)
    return p


def survival_closed_form(f: float, r: int) -> float:
    """P(a fragment with r replicas on distinct, independently failing peers survives)."""
    return 1.0 - f ** r


def survival_exact_fraction(f: float, r: int, n_peers: int) -> float:
    """Same when exactly round(f·n) of n peers fail (hypergeometric): 1 − Π_{i<r} (k−i)/(n−i)."""
    k = int(round(f * n_peers))
    p_all_dead = 1.0
    for i in range(r):
        p_all_dead *= max(k - i, 0) / (n_peers - i)
    return 1.0 - p_all_dead
