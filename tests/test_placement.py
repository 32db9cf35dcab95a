from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libp2pia.errors import Libp2piaError
from libp2pia.node.placement import Item, place_replicas


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 10_000), min_size=1, max_size=60),
    n_workers=st.integers(1, 12),
    data=st.data(),
)
def test_every_fragment_on_r_distinct_workers_and_balanced(sizes: list[int], n_workers: int, data: st.DataObject) -> None:
    r = data.draw(st.integers(1, n_workers))
    items = [Item(f"f{i}", s) for i, s in enumerate(sizes)]
    held = place_replicas(items, n_workers, r)
    assert len(held) == n_workers
    counts = Counter(fid for worker in held for fid in worker)
    assert counts == Counter({i.id: r for i in items})
    assert all(len(set(w)) == len(w) for w in held)  # never two replicas on one worker
    loads = [sum(sizes[int(f[1:])] for f in w) for w in held]
    assert max(loads) - min(loads) <= max(sizes)


def test_deterministic() -> None:
    items = [Item(f"f{i}", (i * 37) % 11 + 1) for i in range(30)]
    assert place_replicas(items, 5, 2) == place_replicas(list(reversed(items)), 5, 2)


@pytest.mark.parametrize(("n", "r"), [(0, 1), (3, 0), (3, 4)])
def test_bad_arguments(n: int, r: int) -> None:
    with pytest.raises(Libp2piaError):
        place_replicas([Item("a", 1)], n, r)
