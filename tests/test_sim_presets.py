"""The simulator's plans come from libp2pia.fragments: presets, header-only GGUFs and manifests agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from libp2pia import fragments as fplan
from libp2pia.gguf import presets
from libp2pia.sim.plan import plan_arrays, summary
from libp2pia.sim.source import load_plan, plan_from_preset

SMALL = ["mistral-7b-v0.3", "mixtral-8x7b", "magistral-small-2509"]
CASES = SMALL + [pytest.param("mistral-large-3", marks=pytest.mark.slow)]


@pytest.mark.parametrize("name", CASES)
def test_preset_counts_equal_plan_on_header_only_gguf(name: str, tmp_path: Path) -> None:
    """The simulator sees exactly the fragments `plan` finds in the preset's header-only GGUF,
    and its own counts per class, role and token agree with the planner's summary."""
    path = presets.write_preset(name, tmp_path / f"{name}.gguf")
    reference = fplan.plan(path)
    ours = plan_arrays(reference)
    s, ref = summary(ours), reference["summary"]
    assert s["fragments"] == ref["fragments"] == len(reference["fragments"])
    assert s["bytes"] == ref["bytes"]
    assert s["always_fragments"] == ref["by_class"]["always"]["fragments"]
    assert s["conditional_fragments"] == ref["by_class"].get("conditional", {"fragments": 0})["fragments"]
    assert {r: v["fragments"] for r, v in s["per_role"].items()} == \
        {r: v["fragments"] for r, v in ref["by_role"].items()}
    assert ours.moe_layers.size == ref["per_token"]["moe_layers"]
    if ours.n_experts:
        assert ours.top_k == ref["per_token"]["experts_used"]
    if name == "mistral-large-3":    # the real architecture reaches the simulator
        assert (ours.n_layers, ours.moe_layers.size, ours.n_experts, ours.top_k, ours.hidden) == \
            (61, 58, 128, 4, 7168)


def test_preset_source_is_the_planner(tmp_path: Path) -> None:
    name = "mistral-7b-v0.3"
    a = summary(plan_arrays(plan_from_preset(name)))
    b = summary(plan_arrays(fplan.plan(presets.write_preset(name, tmp_path / "x.gguf"))))
    assert a == b


def test_manifest_file_round_trip(tmp_path: Path) -> None:
    path = presets.write_preset("mistral-7b-v0.3", tmp_path / "m.gguf")
    plan = fplan.plan(path)
    (tmp_path / "manifest.json").write_text(json.dumps(plan))
    a = summary(plan_arrays(load_plan(manifest=str(tmp_path / "manifest.json"))))
    b = summary(plan_arrays(load_plan(gguf=str(path))))
    assert a == b
