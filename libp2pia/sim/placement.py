"""Placement of R replicas per fragment over peers, vectorised.

Rule (the plan's stability rule, §5.3): always-active fragments go to the most
stable peers first (stacking several on a desktop rather than spilling to
laptops); conditional (routed expert) fragments fill the rest, spread before
stacked: every peer's first storage slot is used before any second one. A storage slot is one plan fragment limit (10 MiB), so a
phone with a 10 MiB budget holds exactly one fragment.

Concretely the replicas are ordered by (always first, replica number,
fragment) and the slots as :func:`fill_order` says; replica i goes to slot i. Two replicas of one fragment landing on
the same peer are then rare; the few that do are swapped with random replicas
of the same class until no fragment has two replicas on one peer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import Libp2piaError
from .peers import Peers
from .plan import PlanArrays

_MAX_REPAIR_ROUNDS = 50


@dataclass(frozen=True)
class Placement:
    """Replica table: replica i is fragment ``frag[i]`` on peer ``peer[i]`` (-1 = no room)."""

    frag: np.ndarray       # int32
    peer: np.ndarray       # int32
    n_fragments: int
    n_peers: int

    @property
    def placed(self) -> np.ndarray:
        return self.peer >= 0

    def replicas_per_fragment(self) -> np.ndarray:
        return np.bincount(self.frag[self.placed], minlength=self.n_fragments)

    def fragments_per_peer(self) -> np.ndarray:
        return np.bincount(self.peer[self.placed], minlength=self.n_peers)


def slots(peers: Peers, slot_bytes: int, eligible: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every storage slot as (owner peer, index of the slot within its peer)."""
    n_slots = np.maximum(peers.storage // max(int(slot_bytes), 1), 1)
    if eligible is not None:
        n_slots = np.where(eligible, n_slots, 0)
    owner = np.repeat(np.arange(peers.n, dtype=np.int32), n_slots)
    start = np.repeat(np.cumsum(n_slots) - n_slots, n_slots)
    return owner, np.arange(owner.size) - start


def fill_order(peers: Peers, slot_bytes: int, n_always: int, rng: np.random.Generator,
               eligible: np.ndarray | None = None) -> np.ndarray:
    """Owner of each slot in filling order: ``n_always`` most-stable slots, then spread-first.

    Always-active replicas take slots by (stability descending, slot index): the
    most stable peers, stacked only once every one of them holds one. The rest
    go by (slot index, stability descending): every peer's first slot before any
    second one.
    """
    owner, j = slots(peers, slot_bytes, eligible)
    noise = rng.random(owner.size)
    stab = peers.stability[owner]
    first = np.lexsort((noise, j, -stab))[:n_always]
    rest = np.ones(owner.size, bool)
    rest[first] = False
    idx = np.flatnonzero(rest)
    second = idx[np.lexsort((noise[idx], -stab[idx], j[idx]))]
    return owner[np.concatenate([first, second])]


def place(plan: PlanArrays, peers: Peers, replication: int, rng: np.random.Generator,
          always_replication: int | None = None, eligible: np.ndarray | None = None) -> Placement:
    """Place ``replication`` replicas of each fragment (``always_replication`` for always-active ones)."""
    ra = replication if always_replication is None else always_replication
    if replication < 1 or ra < 1:
        raise Libp2piaError(f"replication must be at least 1, got {replication}/{ra}")
    n_avail = peers.n if eligible is None else int(np.count_nonzero(eligible))
    if max(replication, ra) > n_avail:
        raise Libp2piaError(f"replication {max(replication, ra)} needs at least that many peers, have {n_avail}")
    always_ids = np.flatnonzero(plan.always).astype(np.int32)
    cond_ids = np.flatnonzero(~plan.always).astype(np.int32)
    # replica-major within each class: r0 of every fragment, then r1, ...
    frag = np.concatenate([np.tile(always_ids, ra), np.tile(cond_ids, replication)])
    is_always = np.concatenate([np.ones(always_ids.size * ra, bool), np.zeros(cond_ids.size * replication, bool)])
    order = fill_order(peers, plan.max_fragment_bytes, always_ids.size * ra, rng, eligible)
    peer = np.full(frag.size, -1, np.int32)
    m = min(frag.size, order.size)
    peer[:m] = order[:m]
    _repair_duplicates(frag, peer, is_always, rng)
    return Placement(frag=frag, peer=peer, n_fragments=plan.n, n_peers=peers.n)


def _duplicates(frag: np.ndarray, peer: np.ndarray) -> np.ndarray:
    """Indices of replicas whose (fragment, peer) pair already occurred earlier."""
    placed = np.flatnonzero(peer >= 0)
    key = frag[placed].astype(np.int64) * (int(peer.max()) + 1) + peer[placed]
    order = np.argsort(key, kind="stable")
    dup = np.zeros(placed.size, bool)
    dup[order[1:]] = key[order[1:]] == key[order[:-1]]
    return placed[dup]


def _repair_duplicates(frag: np.ndarray, peer: np.ndarray, is_always: np.ndarray,
                       rng: np.random.Generator) -> None:
    """Swap peers of duplicate replicas with random replicas of the same class (in place)."""
    for _ in range(_MAX_REPAIR_ROUNDS):
        dup = _duplicates(frag, peer)
        if dup.size == 0:
            return
        for cls in (True, False):
            d = dup[is_always[dup] == cls]
            mask = (is_always == cls) & (peer >= 0)
            mask[d] = False
            pool = np.flatnonzero(mask)
            if d.size == 0 or pool.size < d.size:
                continue
            partner = rng.choice(pool, d.size, replace=False)
            peer[d], peer[partner] = peer[partner].copy(), peer[d].copy()
    if _duplicates(frag, peer).size:
        raise Libp2piaError("placement could not give every replica of a fragment a distinct peer "
                            "(too few peers for this replication factor)")
