"""`libp2pia simulate` end to end on a manifest (small hand-made plan), text, JSON, sweep and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from libp2pia.cli import main
from libp2pia.sim.toy import toy_plan


@pytest.fixture()
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(toy_plan(layers=4, experts=8, top_k=2)))
    return path


def test_json_report(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--manifest", str(manifest), "--replication", "3", "--fail", "0.2",
                 "--network", "lan", "--seed", "1", "--json", "--tokens", "8"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["config"]["replication"] == 3 and rep["failure"]["dead_peers"] == round(0.2 * rep["config"]["peers"])
    assert rep["coverage"]["clean"] + rep["coverage"]["degraded"] + rep["coverage"]["none"] == pytest.approx(1)


def test_text_report_with_churn(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--manifest", str(manifest), "--churn-hours", "2", "--tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert "tokens served" in out and "churn 2 h" in out


def test_sweep_writes_table_and_plots(manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    assert main(["simulate", "--manifest", str(manifest), "--sweep", str(out), "--trials", "1",
                 "--tokens", "4"]) == 0
    data = json.loads((out / "sweep.json").read_text())
    assert len(data["survival"]) == 15 * 5 and {p["network"] for p in data["profiles"]} == {"lan", "fibre", "mobile"}
    for png in ("survival.png", "latency_vs_rtt.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob("*.tmp*"))


def test_bad_input_is_one_line(manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["simulate", "--manifest", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("libp2pia: error:") and "not JSON" in err and len(err.strip().splitlines()) == 1
    assert main(["simulate", "--manifest", str(tmp_path / "missing.json")]) == 1
    capsys.readouterr()
    assert main(["simulate", "--manifest", str(manifest), "--fail", "2"]) == 1
    assert "--fail must be within 0..1" in capsys.readouterr().err
