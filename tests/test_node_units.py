"""Node pieces without a swarm: replica choice, spreading, the fragment store (transfer: tests/test_net_transfer*)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from libp2pia.node.backend import choose_replicas
from libp2pia.node.placement import Item, contiguous_stretches, place_contiguous
from libp2pia.node.spread import plan_spread

PEERS = ["p1", "p2", "p3", "p4"]


@given(st.dictionaries(st.text("abcdef", min_size=1, max_size=3),
                       st.lists(st.sampled_from(["p1", "p2", "p3", "p4"]), min_size=1, max_size=4, unique=True),
                       max_size=30),
       st.dictionaries(st.sampled_from(["p1", "p2", "p3", "p4"]), st.floats(0.0005, 0.05), min_size=1))
def test_choose_replicas_pins_each_fragment_to_a_live_holder(providers, rtt) -> None:
    pinned = choose_replicas(providers, rtt)
    for fid, holders in providers.items():
        live = [p for p in holders if p in rtt]
        if live:
            assert pinned[fid] in live
        else:
            assert fid not in pinned


def test_choose_replicas_prefers_the_fastest_and_spreads_equals() -> None:
    providers = {f"f{i}": ["slow", "fast"] for i in range(4)}
    assert set(choose_replicas(providers, {"slow": 0.020, "fast": 0.001}).values()) == {"fast"}
    even = choose_replicas({f"f{i}": ["a", "b"] for i in range(4)}, {"a": 0.001, "b": 0.001})
    assert sorted(even.values()) == ["a", "a", "b", "b"]


def _fewest_stretches(chain: list[str], holders: dict[str, set[str]]) -> int:
    """Brute force: fewest one-peer stretches covering the chain's fragments that have a live holder."""
    best = [0] + [10**9] * len(chain)
    for j in range(1, len(chain) + 1):
        if not holders[chain[j - 1]]:
            best[j] = best[j - 1]          # no live holder: skipped, it starts nothing
            continue
        for i in range(j):                 # chain[i:j] on one peer
            common = set.intersection(*(holders[f] for f in chain[i:j]))
            if common:
                best[j] = min(best[j], best[i] + 1)
    return best[-1]


@given(st.lists(st.lists(st.sampled_from(PEERS), min_size=0, max_size=3, unique=True), min_size=1, max_size=9),
       st.dictionaries(st.sampled_from(PEERS), st.floats(0.0005, 0.05), min_size=1))
def test_choose_replicas_covers_the_layers_in_fewest_stretches(holders: list[list[str]], rtt) -> None:
    """The layers' fragments (``order``) go to as few consecutive one-peer stretches as possible: the
    fewest requests per decode step (each stretch is one run)."""
    chain = [f"f{i}" for i in range(len(holders))]
    providers = dict(zip(chain, holders))
    pinned = choose_replicas(providers, rtt, order=chain)
    live = {f: {p for p in providers[f] if p in rtt} for f in chain}
    assert all(pinned[f] in live[f] for f in chain if live[f]) and all(f not in pinned for f in chain if not live[f])
    seq = [pinned[f] for f in chain if f in pinned]
    changes = sum(1 for a, b in zip(seq, seq[1:]) if a != b) + bool(seq)
    # a stretch may resume after a fragment nobody holds, so count against the brute force's upper bound
    assert changes <= _fewest_stretches(chain, live) + sum(1 for f in chain if not live[f])
    if all(live.values()):
        assert changes == _fewest_stretches(chain, live)


@given(st.lists(st.integers(1, 100), min_size=1, max_size=40), st.integers(1, 8), st.data())
def test_place_contiguous_keeps_neighbours_together(sizes: list[int], n: int, data: st.DataObject) -> None:
    r = data.draw(st.integers(1, n))
    items = [Item(f"f{i}", b) for i, b in enumerate(sizes)]
    stretches = contiguous_stretches(sizes, n)
    # n stretches tiling the items in order, none empty while there are items enough
    assert len(stretches) == n and stretches[0][0] == 0 and stretches[-1][1] == len(sizes)
    assert all(a[1] == b[0] for a, b in zip(stretches, stretches[1:]))
    assert sum(e > s for s, e in stretches) == min(n, len(sizes))
    # no stretch much above an even share: each stops within half an item of its running target
    assert max(sum(sizes[s:e]) for s, e in stretches) <= sum(sizes) / n * 2 + max(sizes)
    held = place_contiguous(items, n, r)
    for i, it in enumerate(items):
        owners = [w for w in range(n) if it.id in held[w]]
        assert len(owners) == r                                  # R replicas on distinct workers
    for w in range(n):                                           # a worker's items: at most R stretches
        idx = sorted(int(f[1:]) for f in held[w])
        assert sum(1 for a, b in zip(idx, idx[1:]) if b != a + 1) + bool(idx) <= r


def test_plan_spread_dense_in_layer_order_moe_balanced() -> None:
    dense = [{"id": "core", "role": "core", "bytes": 5}] + [
        {"id": f"{kind[0]}{il}", "role": kind, "layer": il, "bytes": 10} for il in range(4) for kind in ("ffn", "attention")
    ] + [{"id": f"v{i}", "role": "vocab", "bytes": 20} for i in range(2)]
    plan = plan_spread({"fragments": dense}, 2, 1)
    assert [h[1:] for h in plan] == [["a0", "f0", "a1", "f1", "a2", "f2"], ["a3", "f3", "v0", "v1"]]
    moe = [{"id": "core", "role": "core", "bytes": 5}] + [
        {"id": f"e{i}", "role": "expert", "layer": 0, "expert": i, "bytes": 10} for i in range(4)]
    assert sorted(len(h) for h in plan_spread({"fragments": moe}, 2, 1)) == [3, 3]   # balanced, not in order


def test_plan_spread_core_everywhere_rest_r_times() -> None:
    frags = [{"id": "core", "role": "core", "bytes": 5}] + \
            [{"id": f"x{i}", "role": "ffn", "bytes": 10 + i} for i in range(7)]
    plan = plan_spread({"fragments": frags}, 3, 2)
    assert all(held[0] == "core" for held in plan)
    for f in frags[1:]:
        assert sum(f["id"] in held for held in plan) == 2


def test_store_serves_core_first_then_within_budget(tmp_path: Path) -> None:
    from libp2pia.node.store import FragmentStore
    from libp2pia.wire.manifest import canonical_json

    entries = []
    for role, data in (("core", b"c" * 100), ("ffn", b"f" * 60), ("ffn", b"g" * 60)):
        fid = hashlib.sha256(data).hexdigest()
        (tmp_path / f"{fid}.gguf").write_bytes(data)
        entries.append({"id": fid, "file": f"{fid}.gguf", "bytes": len(data), "role": role})
    (tmp_path / f"{entries[2]['id']}.gguf").write_bytes(b"corrupt")
    m = {"format": "libp2pia-manifest", "format_version": 1, "architecture": "x", "source": {},
         "max_fragment_bytes": 100, "fragments": entries}
    m["model_id"] = hashlib.sha256(canonical_json(m)).hexdigest()
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    store = FragmentStore.open(tmp_path, budget=1000)
    assert list(store.held) == [entries[0]["id"], entries[1]["id"]]   # the corrupt one is never served
    assert FragmentStore.open(tmp_path, budget=10).held.keys() == {entries[0]["id"]}
