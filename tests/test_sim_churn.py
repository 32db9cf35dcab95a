"""Churn: sessions, heartbeat detection and re-replication, on small hand-made plans."""

from __future__ import annotations

import numpy as np

from libp2pia.limits import MiB
from libp2pia.sim.churn import ChurnParams, simulate_churn
from libp2pia.sim.peers import ClassProfile
from libp2pia.sim.plan import plan_arrays
from libp2pia.sim.scenario import Config
from libp2pia.sim.toy import toy_plan

PLAN = plan_arrays(toy_plan(layers=4, experts=8, top_k=2, frags_per_expert=2))
FLAKY = {c: ClassProfile(1 / 3, 10 * MiB, 1.0, 1800.0, 1800.0) for c in ("desktop", "laptop", "phone")}


def test_no_churn_no_repairs() -> None:
    stable = {c: ClassProfile(1 / 3, 10 * MiB, 1.0, 1e12, 1e-6) for c in ("desktop", "laptop", "phone")}
    r = simulate_churn(PLAN, Config(replication=3, peers=PLAN.n * 4), ChurnParams(hours=2, classes=stable))
    s = r.summary()
    assert s["repair_bytes"] == 0 and s["always_part_dark_time_fraction"] == 0
    assert s["mean_online_fraction"] == 1.0 and s["mean_clean"] == 1.0


def test_detection_drives_re_replication() -> None:
    cfg = Config(replication=2, peers=PLAN.n * 8, seed=3)
    blind = simulate_churn(PLAN, cfg, ChurnParams(hours=4, classes=FLAKY, misses=10**6)).summary()
    seeing = simulate_churn(PLAN, cfg, ChurnParams(hours=4, classes=FLAKY)).summary()
    assert blind["repair_bytes"] == 0                 # nobody is ever declared dead: nothing is rebuilt
    assert seeing["repairs"] > 0 and seeing["repair_bytes"] >= seeing["repairs"] * PLAN.bytes.min()
    assert seeing["dark_fragment_hours"] < blind["dark_fragment_hours"]
    assert np.isclose(seeing["mean_online_fraction"], 0.5, atol=0.1)   # 30 min on, 30 min off


def test_churn_is_deterministic() -> None:
    cfg = Config(replication=2, peers=PLAN.n * 6, seed=1)
    a = simulate_churn(PLAN, cfg, ChurnParams(hours=1, classes=FLAKY)).summary()
    b = simulate_churn(PLAN, cfg, ChurnParams(hours=1, classes=FLAKY)).summary()
    assert a == b
