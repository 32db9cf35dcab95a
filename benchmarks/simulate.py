"""Time the simulator at internet scale: Mistral Large 3's full plan on 230,625 peers.

Prints a table per stage (the issue's budget is 60 s for one failure scenario on
2 cores), and beside the simulated survival the closed form it must match, then
writes JSON (benchmarks/results/simulate.json or --json PATH).

    /work/venv/bin/python benchmarks/simulate.py [--peers 230625] [--replication 5] [--fail 0.3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from libp2pia.sim.churn import ChurnParams, simulate_churn  # noqa: E402
from libp2pia.sim.coverage import (alive_after, availability, expert_popularity, failure_ranks,  # noqa: E402
                                   live_replicas, survival_exact_fraction, token_coverage)
from libp2pia.sim.latency import token_latency  # noqa: E402
from libp2pia.sim.peers import make_peers  # noqa: E402
from libp2pia.sim.placement import place  # noqa: E402
from libp2pia.sim.plan import plan_arrays  # noqa: E402
from libp2pia.sim.scenario import Config  # noqa: E402
from libp2pia.sim.source import plan_from_preset  # noqa: E402

BUDGET_S = 60.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mistral-large-3")
    ap.add_argument("--peers", type=int, default=230_625)
    ap.add_argument("--replication", type=int, default=5)
    ap.add_argument("--fail", type=float, default=0.3)
    ap.add_argument("--network", default="fibre")
    ap.add_argument("--churn-hours", type=float, default=1.0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    stages: list[tuple[str, float]] = []

    def lap(name: str, t0: float) -> float:
        t1 = time.perf_counter()
        stages.append((name, t1 - t0))
        return t1

    t = t_start = time.perf_counter()
    plan = plan_arrays(plan_from_preset(args.preset))
    t = lap("plan (header-only GGUF -> libp2pia.fragments.plan -> arrays)", t)
    t_scen = t
    rng = np.random.default_rng(0)
    peers = make_peers(args.peers, rng, args.network)
    t = lap("draw peers", t)
    pl = place(plan, peers, args.replication, rng)
    t = lap("place replicas", t)
    ranks = failure_ranks(peers.n, rng)
    alive = alive_after(ranks, args.fail)
    live = live_replicas(pl, alive)
    av = availability(plan, live)
    pop = expert_popularity(plan.n_layers, plan.n_experts, 0.0, rng)
    cov = token_coverage(plan, av, pop, 1000, rng)
    t = lap("fail + coverage (1000 routed tokens)", t)
    lat = token_latency(plan, peers, pl, alive, pop, av.expert_ok, 64, rng)
    t = lap("latency (64 tokens)", t)
    scenario_s = t - t_scen
    cfg = replace(Config(), peers=args.peers, replication=args.replication, network=args.network)
    churn = None
    if args.churn_hours > 0:
        churn = simulate_churn(plan, cfg, ChurnParams(hours=args.churn_hours))
        t = lap(f"churn, {args.churn_hours:g} simulated hour(s)", t)

    survived = float((live > 0).mean())
    closed = survival_exact_fraction(args.fail, args.replication, peers.n)
    print(f"{args.preset}: {plan.n:,} fragments, {peers.n:,} peers, x{args.replication}, fail {args.fail:.0%}, "
          f"{args.network}")
    print("| stage | seconds |\n|---|---|")
    for name, s in stages:
        print(f"| {name} | {s:.2f} |")
    print(f"| **one failure scenario (peers → latency)** | **{scenario_s:.2f}** (budget {BUDGET_S:.0f} s, "
          f"ratio {scenario_s / BUDGET_S:.2f}) |")
    print("\n| quantity | simulated | closed form | ratio |\n|---|---|---|---|")
    print(f"| fragment survival | {survived:.6f} | {closed:.6f} | {survived / closed:.4f} |")
    down = " (the model is down: timing of the surviving fragments only)" if cov.none == 1.0 else ""
    print(f"\ntokens clean {cov.clean:.3f} degraded {cov.degraded:.3f} none {cov.none:.3f}; "
          f"{lat.seconds.mean():.2f} s/token{down}")
    result = {"preset": args.preset, "fragments": plan.n, "peers": peers.n, "replication": args.replication,
              "fail": args.fail, "network": args.network, "stages_s": dict(stages), "scenario_s": scenario_s,
              "budget_s": BUDGET_S, "total_s": time.perf_counter() - t_start,
              "fragment_survival": survived, "fragment_survival_closed_form": closed,
              "coverage": {"clean": cov.clean, "degraded": cov.degraded, "none": cov.none},
              "latency": lat.summary(),
              "churn": {k: v for k, v in churn.summary().items() if k != "series"} if churn else None}
    out = Path(args.json) if args.json else Path(__file__).resolve().parent / "results" / "simulate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
