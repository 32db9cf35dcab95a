"""``swarm --kill K``: which workers may die (pure), and when."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libp2pia.errors import Libp2piaError
from libp2pia.node.chaos import kill_points, safe_victims
from libp2pia.node.placement import Item, place_replicas


@given(st.integers(2, 7), st.integers(1, 3), st.integers(1, 20), st.integers(0, 3))
def test_victims_always_leave_a_replica_of_everything(n: int, r: int, items: int, k: int) -> None:
    r = min(r, n)
    plan = place_replicas([Item(f"f{i}", 1 + i % 5) for i in range(items)], n, r)
    try:
        victims = safe_victims(plan, set(), k)
    except Libp2piaError:
        assert k >= r                     # with k < R every choice is safe: one is always found
        return
    assert len(victims) == min(k, n) if k else victims == []
    left = set().union(*(set(p) for i, p in enumerate(plan) if i not in victims))
    assert left == {f"f{i}" for i in range(items)}


def test_no_safe_choice_is_a_clear_error() -> None:
    with pytest.raises(Libp2piaError, match="higher --replication"):
        safe_victims([["a"], ["b"]], set(), 1)


def test_kill_points_are_inside_the_answer_and_increasing() -> None:
    assert kill_points(50, 2) == [16, 33]
    assert kill_points(3, 2) == [1, 2]
    pts = kill_points(32, 3)
    assert pts == sorted(pts) and 0 < pts[0] and pts[-1] < 32
