"""Node pieces without a swarm: replica choice, spreading, the fragment store (transfer: tests/test_net_transfer*)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from libp2pia.node.backend import choose_replicas
from libp2pia.node.spread import plan_spread


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
