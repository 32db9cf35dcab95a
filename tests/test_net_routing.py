"""plan_phase: replica choice and per-peer batching, without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libp2pia.errors import MissingFragment
from libp2pia.net.routing import plan_phase

COST = {"fast": 1.0, "ok": 1.4, "slow": 3.0}


def test_cheapest_holder_and_batching_within_slack() -> None:
    holders = {"f1": ["fast"], "f2": ["ok", "fast"], "f3": ["ok", "slow"]}
    # f1 must go to fast; f2 can join it; f3: ok (1.4) is the cheapest
    assert plan_phase(["f1", "f2", "f3"], holders, COST.get) == {"fast": [0, 1], "ok": [2]}
    # f3 prefers batching on 'ok' only if 'ok' is already used and within slack
    holders = {"f1": ["ok"], "f2": ["fast", "ok"]}
    assert plan_phase(["f1", "f2"], holders, COST.get) == {"ok": [0, 1]}  # 1.4 <= 1.5 × 1.0
    assert plan_phase(["f1", "f2"], holders, COST.get, batch_slack=1.2) == {"ok": [0], "fast": [1]}


def test_missing_fragment_names_it() -> None:
    with pytest.raises(MissingFragment, match="f9"):
        plan_phase(["f1", "f9"], {"f1": ["fast"], "f9": []}, COST.get)


@given(st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, max_size=12),
       st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e"]),
                       st.lists(st.sampled_from(["p1", "p2", "p3", "p4"]), min_size=1, max_size=4), min_size=5),
       st.dictionaries(st.sampled_from(["p1", "p2", "p3", "p4"]), st.floats(0.1, 10), min_size=4))
def test_every_call_served_once_by_a_holder(fids, holders, costs) -> None:
    plan = plan_phase(fids, holders, costs.__getitem__)
    served = sorted(i for ix in plan.values() for i in ix)
    assert served == list(range(len(fids)))
    for peer, ix in plan.items():
        for i in ix:
            assert peer in holders[fids[i]]
            cheapest = min(costs[p] for p in holders[fids[i]])
            assert costs[peer] <= 1.5 * cheapest + 1e-12
