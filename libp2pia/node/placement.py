"""Where fragments go: pure placement of R replicas over a set of workers.

Used by ``libp2pia swarm`` to spread a model over local workers, and by the
simulator's idea of the same rule. Deterministic: the same inputs give the
same placement, so a demo is reproducible.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import Libp2piaError


@dataclass(frozen=True)
class Item:
    """A fragment to place: its id and size in bytes."""

    id: str
    bytes: int


def place_replicas(items: Sequence[Item], n_workers: int, replication: int) -> list[list[str]]:
    """Assign each item to ``replication`` distinct workers, balancing bytes.

    Largest items first, each to the ``replication`` least-loaded workers
    (ties broken by worker index), the classic greedy that keeps the heaviest
    worker within one item of the lightest. Returns, per worker, the ids it holds.
    """
    if n_workers < 1:
        raise Libp2piaError("placement needs at least one worker")
    if not 1 <= replication <= n_workers:
        raise Libp2piaError(f"replication {replication} needs between 1 and {n_workers} workers")
    load = [(0, w) for w in range(n_workers)]
    heapq.heapify(load)
    held: list[list[str]] = [[] for _ in range(n_workers)]
    for item in sorted(items, key=lambda i: (-i.bytes, i.id)):
        chosen = [heapq.heappop(load) for _ in range(replication)]
        for used, w in chosen:
            held[w].append(item.id)
            heapq.heappush(load, (used + item.bytes, w))
    return held
