"""Where fragments go: pure placement of R replicas over a set of workers.

| rule               | how                                                     | for                              |
|--------------------|---------------------------------------------------------|----------------------------------|
| place_replicas     | largest first, each to the R least-loaded workers       | bytes balanced, layers scattered |
| place_contiguous   | the ordered items cut into n stretches of similar bytes; | dense models: a worker holds     |
|                    | stretch k on workers k, k+1, ..., k+R-1 (mod n)          | consecutive layers (runs)        |

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


def contiguous_stretches(sizes: Sequence[int], n: int) -> list[tuple[int, int]]:
    """Cut ``sizes`` (in order) into ``n`` stretches [start, end) of similar totals: each takes items
    while that brings it nearer to an even share of what is left; every stretch gets at least one
    item while there are items enough."""
    out: list[tuple[int, int]] = []
    start, left = 0, sum(sizes)
    for k in range(n):
        workers_left = n - k
        if workers_left == 1:
            end = len(sizes)
        else:
            target = left / workers_left
            last = max(start, len(sizes) - (workers_left - 1))   # leave an item for each later stretch
            end, acc = start, 0
            while end < last and (end == start or acc + sizes[end] / 2 <= target):
                acc += sizes[end]
                end += 1
        out.append((start, end))
        left -= sum(sizes[start:end])
        start = end
    return out


def place_contiguous(items: Sequence[Item], n_workers: int, replication: int) -> list[list[str]]:
    """Items in their given order (a model's layers first to last) cut into ``n_workers`` stretches of
    similar bytes; stretch k goes to workers k, k+1, ..., k+R-1 (mod n). A worker then holds R
    neighbouring stretches, so consecutive layers sit together and a client can chain them (runs)."""
    if n_workers < 1:
        raise Libp2piaError("placement needs at least one worker")
    if not 1 <= replication <= n_workers:
        raise Libp2piaError(f"replication {replication} needs between 1 and {n_workers} workers")
    held: list[list[str]] = [[] for _ in range(n_workers)]
    for k, (a, b) in enumerate(contiguous_stretches([i.bytes for i in items], n_workers)):
        for r in range(replication):
            held[(k + r) % n_workers] += [i.id for i in items[a:b]]
    return held
