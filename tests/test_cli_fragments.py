"""The inspect, plan, fragment, reassemble and demo commands end to end (in-process)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from libp2pia.cli import main
from libp2pia.cli._common import parse_size
from libp2pia.gguf.presets import write_preset
from libp2pia.gguf.synth import SynthConfig, write_synthetic


@pytest.fixture(scope="module")
def moe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("cli") / "moe.gguf", SynthConfig(kind="moe", n_vocab=320))


@pytest.fixture(scope="module")
def ml3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_preset("mistral-large-3", tmp_path_factory.mktemp("ml3") / "ml3-header-only.gguf")


def run_ok(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_parse_size() -> None:
    assert parse_size("10MiB") == 10 * 1024 * 1024
    assert parse_size("4MB") == 4_000_000
    assert parse_size("1048576") == 1048576


def test_inspect_gemma_json(gemma_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = json.loads(run_ok(capsys, "inspect", str(gemma_path), "--json"))
    assert info["architecture"] == "gemma3" and len(info["tensors"]) == 236
    # counts per type as listed by gguf-py in the reference notes (llama-cpp-reference.md §1.2)
    assert {k: v["tensors"] for k, v in info["totals_by_type"].items()} == {
        "F32": 109, "Q4_K": 27, "Q5_0": 81, "Q6_K": 9, "Q8_0": 10}
    assert sum(v["bytes"] for v in info["totals_by_role"].values()) == sum(t["bytes"] for t in info["tensors"])
    t = next(t for t in info["tensors"] if t["name"] == "blk.4.ffn_down.weight")
    assert (t["role"], t["layer"], t["type"], t["shape"]) == ("ffn", 4, "Q6_K", [2048, 640])


def test_inspect_tables(ml3: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_ok(capsys, "inspect", str(ml3))
    assert "header only" in out and "deepseek2" in out
    assert "blk.60.ffn_down_exps.weight" in out and "0..127" in out


def test_plan_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mixtral = write_preset("mixtral-8x7b", tmp_path / "mixtral.gguf")
    plan = json.loads(run_ok(capsys, "plan", str(mixtral), "--json", "--replication", "3,5"))
    assert plan["architecture"] == "llama" and plan["summary"]["fragments"] == len(plan["fragments"])
    assert plan["summary"]["per_token"]["experts_used"] == 2
    assert set(plan["summary"]["peers"]["by_replication"]) == {"3", "5"}


def test_plan_mistral_large_3_from_header_only(ml3: Path) -> None:
    from libp2pia.fragments import plan as make_plan

    plan = make_plan(ml3, replication=(3, 5))
    s = plan["summary"]
    fr = plan["fragments"]
    assert s["fragments"] == len(fr) and all("id" not in f for f in fr)
    assert all(f["bytes"] <= 10 * 1024 * 1024 for f in fr) and not s["oversize"]
    cond = [f for f in fr if f["class"] == "conditional"]
    assert {f["role"] for f in cond} == {"expert"} and len({(f["layer"], f["expert"]) for f in cond}) == 58 * 128
    assert s["by_class"]["conditional"]["fragments"] == len(cond)
    per_expert = {}
    for f in cond:
        per_expert[(f["layer"], f["expert"])] = per_expert.get((f["layer"], f["expert"]), 0) + 1
    routed = sum(sum(sorted((n for (l, _), n in per_expert.items() if l == layer), reverse=True)[:4])
                 for layer in range(3, 61))
    assert s["per_token"]["routed_fragments"] == routed
    assert s["per_token"]["fragments"] == s["by_class"]["always"]["fragments"] + routed
    assert s["peers"]["by_replication"] == {"3": math.ceil(len(fr) * 3), "5": math.ceil(len(fr) * 5)}
    routers = [f for f in fr if f["role"] == "router"]
    assert sum(len(f["slices"]) for f in routers) == 58
    assert all(s_["expert"] is None for f in fr if f["role"] == "shared_expert" for s_ in f["slices"])


def test_plan_human_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mixtral = write_preset("mixtral-8x7b", tmp_path / "mixtral.gguf")
    out = run_ok(capsys, "plan", str(mixtral), "--max-fragment-size", "20MiB", "--replication", "2")
    assert "class conditional" in out and "R=2:" in out and "touched per token" in out


def test_fragment_then_reassemble(moe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    want = hashlib.sha256(moe.read_bytes()).hexdigest()
    for flags, note in (([], "the manifest records no source sha256"), (["--source-sha256"], "matches the source")):
        d = tmp_path / f"f{len(flags)}"
        out = run_ok(capsys, "fragment", str(moe), "-o", str(d), "--max-fragment-size", "64KiB", *flags)
        manifest = json.loads((d / "manifest.json").read_text())
        assert f"wrote {len(manifest['fragments'])} fragments" in out and manifest["model_id"] in out
        assert "class conditional" in out
        assert manifest["source"]["sha256"] == (want if flags else None)
        out = run_ok(capsys, "reassemble", str(d / "manifest.json"), "-o", str(d / "m.gguf"))
        assert want in out and note in out
        assert (d / "m.gguf").read_bytes() == moe.read_bytes()


def test_demo_reassemble_on_a_small_model(moe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_ok(capsys, "demo", "--reassemble", "--model", str(moe), "--max-fragment-size", "1MiB")
    assert "sha256 matches" in out and "fragments" in out


def test_help_of_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in ("inspect", "plan", "fragment", "reassemble", "demo"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert "usage: libp2pia " + cmd in capsys.readouterr().out


def test_oversize_units_are_marked_and_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_synthetic(tmp_path / "d.gguf", SynthConfig(n_vocab=320))   # F32: one Q head ~ 64 KiB
    out = run_ok(capsys, "fragment", str(src), "-o", str(tmp_path / "f"), "--max-fragment-size", "32KiB")
    manifest = json.loads((tmp_path / "f" / "manifest.json").read_text())
    over = [f for f in manifest["fragments"] if f["oversize"]]
    assert over and all(f["bytes"] > 32 * 1024 for f in over)
    assert all(f["bytes"] <= 32 * 1024 for f in manifest["fragments"] if not f["oversize"])
    assert f"{len(over)} oversize unit(s)" in out
    # the attention of the 2 KV groups fell back to single Q heads with K/V replicated
    heads = [f for f in manifest["fragments"] if f["role"] == "attention"]
    assert {f["units"]["kind"] for f in heads} == {"q_heads"}
    assert any(s["replica"] for f in heads for s in f["slices"])
