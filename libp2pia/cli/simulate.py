"""``libp2pia simulate``: a fragment plan served by simulated volunteers (coverage, failures, latency)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import Libp2piaError

SWEEP_FAILS = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]
SWEEP_RTT_SCALES = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "simulate", help="simulate a model's fragments on N volunteer peers: failures, coverage, seconds per token",
        description="Place R replicas of every fragment of a plan on N simulated peers (desktops, laptops, "
                    "phones), fail a fraction of them at once, and report which tokens can still be served "
                    "(clean / degraded MoE / not at all) and how long a token takes on a LAN, fibre or mobile "
                    "links. --sweep runs failure 0-70 % x replication 1-5 and writes a table and PNG plots.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", help="built-in real shapes: mistral-large-3, mistral-7b-v0.3, "
                                      "magistral-small-2509, mixtral-8x7b")
    src.add_argument("--manifest", help="a manifest.json written by `libp2pia fragment` (or a plan --json)")
    src.add_argument("--gguf", help="plan a GGUF from its header and simulate that")
    p.add_argument("--peers", type=int, default=None, help="number of peers (default: one per replica, fragments x R, "
                                                          "the plan's one-fragment-per-peer rule)")
    p.add_argument("--replication", type=int, default=3, help="replicas per fragment (default 3)")
    p.add_argument("--always-replication", type=int, default=None,
                   help="replicas of always-active fragments (default: same as --replication)")
    p.add_argument("--fail", type=float, default=0.0, help="fraction of peers failing at once (0..1)")
    p.add_argument("--network", choices=("lan", "fibre", "mobile"), default="fibre")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--routing-skew", type=float, default=0.0,
                   help="Zipf exponent of expert popularity (0 = uniform routing)")
    p.add_argument("--weight-gbps", type=float, default=6.0,
                   help="GB/s of quantized weights a desktop/laptop peer multiplies (phones: 0.4x); default 6, "
                        "from benchmarks/kernels.py (docs/kernels.md)")
    p.add_argument("--activation-bytes", type=int, choices=(2, 4), default=4,
                   help="bytes per activation value on the wire (4 = float32, 2 = float16)")
    p.add_argument("--client-holds", default="core,router",
                   help="roles the client computes itself instead of calling peers (default core,router; "
                        "add attn_shared to run MLA's shared projections locally)")
    p.add_argument("--supernode-mbps", type=float, default=None,
                   help="fan out through a super node with this symmetric bandwidth (Mbit/s) instead of "
                        "from the client (the plan's super nodes)")
    p.add_argument("--uniform-storage", default=None,
                   help="give every peer this storage budget (e.g. 10MiB) instead of per-class budgets")
    p.add_argument("--tokens", type=int, default=64, help="tokens simulated for the latency figures")
    p.add_argument("--churn-hours", type=float, default=0.0,
                   help="also run churn for this many simulated hours (heartbeat detection, re-replication)")
    p.add_argument("--sweep", metavar="DIR", default=None,
                   help="sweep failure 0-70%% x replication 1-5, write DIR/sweep.{json,md} and PNG plots")
    p.add_argument("--trials", type=int, default=3, help="seeds per sweep point (default 3)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.set_defaults(func=run)


def _config(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from ..sim.latency import LatencyParams
    from ..sim.scenario import Config
    from ._common import parse_size

    if not 0.0 <= args.fail <= 1.0:
        raise Libp2piaError(f"--fail must be within 0..1, got {args.fail}")
    if args.replication < 1 or (args.peers is not None and args.peers < 1):
        raise Libp2piaError("--replication and --peers must be at least 1")
    lat = replace(LatencyParams(), activation_bytes=args.activation_bytes, client_weight_bps=args.weight_gbps * 1e9,
                  supernode_mbps=args.supernode_mbps,
                  client_roles=tuple(r.strip() for r in args.client_holds.split(",") if r.strip()))
    return Config(peers=args.peers, replication=args.replication, always_replication=args.always_replication,
                  fail=args.fail, network=args.network, seed=args.seed, routing_skew=args.routing_skew,
                  latency_tokens=args.tokens, weight_bytes_per_s=args.weight_gbps * 1e9,
                  storage_bytes=parse_size(args.uniform_storage) if args.uniform_storage else None, latency=lat)


def run(args: argparse.Namespace) -> int:
    from ..sim.plan import plan_arrays
    from ..sim.source import load_plan

    cfg = _config(args)
    name = args.preset or Path(args.manifest or args.gguf).name
    plan = plan_arrays(load_plan(args.preset, args.manifest, args.gguf))
    if args.sweep:
        return _sweep(plan, cfg, name, Path(args.sweep), args)
    from ..sim.scenario import run as run_scenario

    report = run_scenario(plan, cfg)
    if args.churn_hours > 0:
        from ..sim.churn import ChurnParams, simulate_churn

        report["churn"] = simulate_churn(plan, cfg, ChurnParams(hours=args.churn_hours)).summary()
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        print(_text(name, report))
    return 0


def _text(name: str, r: dict[str, Any]) -> str:
    pl, fa, cv, cfg = r["plan"], r["failure"], r["coverage"], r["config"]
    lines = [
        f"{name}: {pl['fragments']:,} fragments ({pl['always_fragments']:,} always-active, "
        f"{pl['conditional_fragments']:,} routed-expert), {pl['bytes'] / 1e9:.1f} GB",
        f"peers {cfg['peers']:,} ({cfg['network']}), replication x{cfg['replication']}"
        + (f" (always-active x{cfg['always_replication']})" if cfg["always_replication"] else "")
        + f", {r['placement']['unplaced_replicas']:,} replicas without room",
        f"failed at once: {100 * cfg['fail']:.0f}% = {fa['dead_peers']:,} peers -> fragments lost "
        f"{fa['lost_fragments']:,} (always-active {fa['lost_always_fragments']:,}), experts unavailable "
        f"{fa['unavailable_experts']:,}",
        f"tokens served: clean {100 * cv['clean']:.1f}%  degraded {100 * cv['degraded']:.1f}%  "
        f"not at all {100 * cv['none']:.1f}%",
    ]
    if "latency" in r:
        lt = r["latency"]
        lines.append(f"per token: {lt['mean_s_per_token']:.2f} s (p95 {lt['p95_s_per_token']:.2f} s; phases x median RTT "
                     f"{lt['phases_x_median_rtt_s']:.2f} s), {lt['phases_per_token']} phases, "
                     f"{lt['fragments_per_token']:.0f} fragment calls, {lt['peers_per_token']:.0f} peers")
        lines.append("answer: " + ", ".join(f"{n} tokens {lt[f'answer_{n}_tokens_s'] / 60:.1f} min"
                                            for n in (30, 100, 500)))
    if "churn" in r:
        ch = r["churn"]
        lines.append(f"churn {ch['hours']:.0f} h: always-active part whole {100 * (1 - ch['always_part_dark_time_fraction']):.1f}% "
                     f"of the time, clean tokens {100 * ch['mean_clean']:.1f}%, re-replication "
                     f"{ch['repair_bytes'] / 1e9:.1f} GB ({ch['repair_gb_per_hour']:.1f} GB/h)")
    lines.append(f"({r['timing_s']['total']:.1f} s)")
    return "\n".join(lines)


def _sweep(plan: Any, cfg: Any, name: str, out: Path, args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..sim import plots
    from ..sim.scenario import latency_vs_rtt, sweep

    out.mkdir(parents=True, exist_ok=True)
    rows = sweep(plan, SWEEP_FAILS, [1, 2, 3, 4, 5], trials=args.trials, base=cfg)
    base = replace(cfg, replication=3, peers=None)
    rtt_rows = latency_vs_rtt(plan, SWEEP_RTT_SCALES, replace(base, network="fibre"))
    profiles = [latency_vs_rtt(plan, [1.0], replace(base, network=n))[0] for n in ("lan", "fibre", "mobile")]
    data = {"model": name, "survival": rows, "latency_vs_rtt": rtt_rows, "profiles": profiles}
    _write(out / "sweep.json", json.dumps(data, indent=1))
    _write(out / "sweep.md", _table(rows, profiles))
    plots.survival_plot(rows, out / "survival.png", f"{name}: tokens served after a failure at once")
    plots.latency_plot(rtt_rows, out / "latency_vs_rtt.png", f"{name}: seconds per token vs round trip",
                       profiles)
    print(_table(rows, profiles))
    print(f"wrote {out}/sweep.json, sweep.md, survival.png, latency_vs_rtt.png")
    return 0


def _table(rows: list[dict[str, Any]], profiles: list[dict[str, Any]]) -> str:
    lines = ["| R | fail | peers | always part whole | closed form | tokens clean | degraded | not served | "
             "lost fragments |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['replication']} | {100 * r['fail']:.0f}% | {r['peers']:,} | {r['always_whole']:.2f} | "
                     f"{r['always_whole_closed_form']:.2f} | {r['clean']:.3f} | {r['degraded']:.3f} | "
                     f"{r['none']:.3f} | {r['lost']:.0f} |")
    lines += ["", "| network | median RTT | s/token | p95 | phases x median RTT | peers/token | phases |",
              "|---|---|---|---|---|---|---|"]
    for p in profiles:
        lines.append(f"| {p['network']} | {p['median_rtt_ms']:.1f} ms | {p['mean_s_per_token']:.2f} | "
                     f"{p['p95_s_per_token']:.2f} | {p['phases_x_median_rtt_s']:.2f} | {p['peers_per_token']:.0f} | "
                     f"{p['phases_per_token']} |")
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
