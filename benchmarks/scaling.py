"""Every figure docs/scaling.md quotes, from one run: plans of the four presets, failure sweeps,
latency per network and its variants, churn. Writes PNGs to docs/img/ (small) and the numbers to
benchmarks/results/scaling.json (or --json PATH), and prints the tables.

    /work/venv/bin/python benchmarks/scaling.py [--trials 20] [--churn-hours 24] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from libp2pia.sim import plots  # noqa: E402
from libp2pia.sim.churn import ChurnParams, simulate_churn  # noqa: E402
from libp2pia.sim.latency import LatencyParams  # noqa: E402
from libp2pia.sim.plan import PlanArrays, plan_arrays, summary  # noqa: E402
from libp2pia.sim.scenario import Config, latency_vs_rtt, run, sweep  # noqa: E402
from libp2pia.sim.source import plan_from_preset, preset_names  # noqa: E402

FINE = [round(0.01 * i, 2) for i in range(0, 71)]
THRESHOLD = 0.95     # "survives": at least 95 % of tokens (averaged over trials)


CLAIM_POINTS = [0.1, 0.3, 0.4, 0.5]


def thresholds(rows: list[dict[str, Any]]) -> dict[str, dict[int, float]]:
    """Per R, the largest failure fraction up to which the model is up with probability ≥ THRESHOLD
    (closed form, checked by the simulated points) and up *and* serving ≥ THRESHOLD of its tokens
    without a replaced expert."""
    out: dict[str, dict[int, float]] = {"up": {}, "clean": {}}
    for r in sorted({x["replication"] for x in rows}):
        pts = sorted((x for x in rows if x["replication"] == r), key=lambda x: x["fail"])
        for key, val in (("up", lambda x: x["always_whole_closed_form"]),
                         ("clean", lambda x: x["always_whole_closed_form"] * x["clean_if_up"])):
            best = 0.0
            for x in pts:
                if val(x) < THRESHOLD:
                    break
                best = x["fail"]
            out[key][r] = best
    return out


def at_claims(rows: list[dict[str, Any]], choices_per_token: int) -> list[dict[str, Any]]:
    keep = []
    for x in rows:
        if x["replication"] in (3, 5) and any(abs(x["fail"] - f) < 1e-9 for f in CLAIM_POINTS):
            keep.append({"R": x["replication"], "fail": x["fail"], "up_simulated": x["always_whole"],
                         "up_closed_form": x["always_whole_closed_form"], "clean_if_up": x["clean_if_up"],
                         "replaced_share_if_up": x["replaced_if_up"] / choices_per_token if choices_per_token else 0.0,
                         "lost_fragments": x["lost"], "lost_always": x["lost_always"]})
    return keep


def latency_row(plan: PlanArrays, cfg: Config) -> dict[str, Any]:
    rep = run(plan, cfg)
    return {**rep["latency"], "network": cfg.network, "coverage": rep["coverage"]}


def tables(res: dict[str, Any]) -> str:
    """The markdown tables docs/scaling.md quotes, from a results JSON."""
    out = ["| model | fragments | always-active | routed-expert | GB | peers ×3 | ×5 | "
           "fragment calls/token | s/token LAN | fibre | mobile | up ≥95 % to (×3 / ×5) | "
           "clean ≥95 % to (×3 / ×5) |", "|" + "---|" * 13]
    for name, m in res["models"].items():
        s, lat = m["summary"], m["latency"]
        out.append(f"| {name} | {s['fragments']:,} | {s['always_fragments']:,} | {s['conditional_fragments']:,} | "
                   f"{s['bytes'] / 1e9:.1f} | {s['peers_one_per_replica']['3']:,} | {s['peers_one_per_replica']['5']:,} | "
                   f"{lat['fibre']['fragments_per_token']:.0f} | {lat['lan']['mean_s_per_token']:.1f} | "
                   f"{lat['fibre']['mean_s_per_token']:.1f} | {lat['mobile']['mean_s_per_token']:.1f} | "
                   f"{100 * m['up_to']['3']:.0f} % / {100 * m['up_to']['5']:.0f} % | "
                   f"{100 * m['clean_up_to']['3']:.0f} % / {100 * m['clean_up_to']['5']:.0f} % |")
    out += ["", "| always-active ×RA | peers ×3 / ×5 | up ≥95 % to (×3 / ×5) | clean ≥95 % to (×3 / ×5) |",
            "|---|---|---|---|"]
    ml3 = res["models"]["mistral-large-3"]
    out.append(f"| same as R | {ml3['summary']['peers_one_per_replica']['3']:,} / "
               f"{ml3['summary']['peers_one_per_replica']['5']:,} | {100 * ml3['up_to']['3']:.0f} % / "
               f"{100 * ml3['up_to']['5']:.0f} % | {100 * ml3['clean_up_to']['3']:.0f} % / "
               f"{100 * ml3['clean_up_to']['5']:.0f} % |")
    for ra, b in res["always_boost"].items():
        out.append(f"| ×{ra} | {b['peers']['3']:,} / {b['peers']['5']:,} | {100 * b['up_to']['3']:.0f} % / "
                   f"{100 * b['up_to']['5']:.0f} % | {100 * b['clean_up_to']['3']:.0f} % / "
                   f"{100 * b['clean_up_to']['5']:.0f} % |")
    out += ["", "| R | always ×RA | failed | model up (sim) | closed form | tokens clean while up | "
            "expert choices replaced while up |", "|---|---|---|---|---|---|---|"]
    for ra, src in [("R", ml3)] + [(f"×{k}", v) for k, v in res["always_boost"].items()]:
        for x in src["at_claims"]:
            out.append(f"| ×{x['R']} | {ra} | {100 * x['fail']:.0f} % | {x['up_simulated']:.2f} | "
                       f"{x['up_closed_form']:.3g} | {100 * x['clean_if_up']:.1f} % | "
                       f"{100 * x['replaced_share_if_up']:.1f} % |")
    out += ["", "| variant (Mistral Large 3, ×3) | s/token | slowest peer per phase, Σ | serial fan-out, Σ | "
            "client upload MB/token | 30 / 100 / 500 tokens (min) |", "|---|---|---|---|---|---|"]
    for k, v in res["latency_variants"].items():
        out.append(f"| {k} | {v['mean_s_per_token']:.1f} | {v['slowest_peer_s_per_token']:.1f} | "
                   f"{v['client_serial_s_per_token']:.1f} | {v['client_upload_mb_per_token']:.1f} | "
                   f"{v['answer_30_tokens_s'] / 60:.1f} / {v['answer_100_tokens_s'] / 60:.0f} / "
                   f"{v['answer_500_tokens_s'] / 60:.0f} |")
    out += ["", "| churn, 24 h | peers registered | online (mean) | always-active part dark | "
            "dark fragment-hours | re-replication GB/h | MB per peer-hour | from origin GB |",
            "|---|---|---|---|---|---|---|---|"]
    for r, c in res["churn"].items():
        out.append(f"| ×{r} | {c['peers']:,} | {100 * c['mean_online_fraction']:.1f} % | "
                   f"{100 * c['always_part_dark_time_fraction']:.2f} % of the time | {c['dark_fragment_hours']:.2f} | "
                   f"{c['repair_gb_per_hour']:.0f} | {c['repair_mb_per_peer_hour']:.2f} | "
                   f"{c['origin_bytes'] / 1e9:.2f} |")
    return "\n".join(out)


def draw(res: dict[str, Any], img: Path) -> None:
    """The PNGs of docs/scaling.md from a results dict (as stored in JSON)."""
    img.mkdir(parents=True, exist_ok=True)
    ml3 = res["models"]["mistral-large-3"]
    choices = ml3["summary"]["moe_layers"] * ml3["summary"]["top_k"]
    plots.survival_plot(ml3["survival"], img / "ml3_survival.png",
                        f"Mistral Large 3 ({ml3['summary']['fragments']:,} fragments): a failure at once, "
                        "one peer per replica", choices)
    plots.survival_plot(res["always_boost"]["15"]["survival"], img / "ml3_survival_always15.png",
                        "Mistral Large 3, always-active fragments ×15, routed experts ×R", choices)
    plots.latency_plot(res["latency_vs_rtt"], img / "ml3_latency_vs_rtt.png",
                       "Mistral Large 3 ×3: seconds per token vs round trip", res["profiles"])
    c3 = res["churn"]["3"]
    plots.churn_plot(c3["series"], img / "ml3_churn.png",
                     f"Mistral Large 3 ×3 under churn, {c3['peers']:,} peers registered")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--churn-hours", type=float, default=24.0)
    ap.add_argument("--quick", action="store_true", help="few trials, short churn (a smoke run)")
    ap.add_argument("--tables", metavar="JSON", help="only print the markdown tables of a results JSON")
    ap.add_argument("--replot", metavar="JSON", help="only redraw the PNGs from a results JSON")
    ap.add_argument("--img", default=str(ROOT / "docs" / "img"))
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "scaling.json"))
    args = ap.parse_args()
    if args.tables:
        print(tables(json.loads(Path(args.tables).read_text())))
        return 0
    if args.replot:
        draw(json.loads(Path(args.replot).read_text()), Path(args.img))
        return 0
    if args.quick:
        args.trials, args.churn_hours = 2, 1.0
    img = Path(args.img)
    img.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res: dict[str, Any] = {"trials": args.trials, "threshold": THRESHOLD, "models": {}}
    plans = {name: plan_arrays(plan_from_preset(name)) for name in preset_names()}
    for name, p in plans.items():
        s = summary(p)
        s["peers_one_per_replica"] = {r: Config(replication=r).n_peers(p) for r in (3, 5)}
        rows = sweep(p, FINE, [1, 2, 3, 4, 5], trials=args.trials)
        th = thresholds(rows)
        m = {"summary": s, "survival": rows, "up_to": th["up"], "clean_up_to": th["clean"],
             "at_claims": at_claims(rows, int(p.moe_layers.size) * p.top_k),
             "latency": {net: latency_row(p, Config(replication=3, network=net)) for net in ("lan", "fibre", "mobile")}}
        res["models"][name] = m
        print(f"{name}: {p.n:,} fragments; up to {m['up_to']}; clean up to {m['clean_up_to']}; "
              + ", ".join(f"{k} {v['mean_s_per_token']:.2f} s/token" for k, v in m["latency"].items()), flush=True)

    ml3 = plans["mistral-large-3"]
    # the remedy: many more replicas of the 1,385 always-active fragments only
    boost: dict[str, Any] = {}
    for ra in (10, 15, 20):
        rows = sweep(ml3, FINE, [3, 5], trials=args.trials, base=Config(always_replication=ra))
        th = thresholds(rows)
        boost[ra] = {"survival": rows, "up_to": th["up"], "clean_up_to": th["clean"],
                     "at_claims": at_claims(rows, int(ml3.moe_layers.size) * ml3.top_k),
                     "peers": {r: Config(replication=r, always_replication=ra).n_peers(ml3) for r in (3, 5)}}
        print(f"always x{ra}: up to {boost[ra]['up_to']}, clean up to {boost[ra]['clean_up_to']}", flush=True)
    res["always_boost"] = boost
    # latency: variants and RTT sweep
    base = Config(replication=3)
    variants = {
        "fibre": base,
        "fibre, float16 activations": replace(base, latency=LatencyParams(activation_bytes=2)),
        "fibre, super node 1 Gbit/s": replace(base, latency=LatencyParams(supernode_mbps=1000)),
        "fibre, MLA shared projections at the client": replace(
            base, latency=LatencyParams(client_roles=("core", "router", "attn_shared"))),
        "fibre, kernels 0.5 GB/s": replace(base, weight_bytes_per_s=0.5e9),
        "fibre, kernels 10 GB/s": replace(base, weight_bytes_per_s=10e9),
        "fibre, 10 % peers failed, x5": replace(base, replication=5, fail=0.10),
        "fibre, routing skew 1.0 (Zipf)": replace(base, routing_skew=1.0),
        "mobile": replace(base, network="mobile"),
        "mobile, super node 1 Gbit/s": replace(base, network="mobile", latency=LatencyParams(supernode_mbps=1000)),
        "mobile, super node + float16": replace(base, network="mobile",
                                                latency=LatencyParams(supernode_mbps=1000, activation_bytes=2)),
        "lan": replace(base, network="lan"),
        "lan, super node 1 Gbit/s": replace(base, network="lan", latency=LatencyParams(supernode_mbps=1000)),
    }
    res["latency_variants"] = {k: latency_row(ml3, c) for k, c in variants.items()}
    for k, v in res["latency_variants"].items():
        print(f"  {k}: {v['mean_s_per_token']:.2f} s/token (slowest peers {v['slowest_peer_s_per_token']:.2f}, "
              f"serial fan-out {v['client_serial_s_per_token']:.2f}, upload {v['client_upload_mb_per_token']:.1f} MB)",
              flush=True)
    rtt_rows = latency_vs_rtt(ml3, [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0], base)
    profiles = [latency_vs_rtt(ml3, [1.0], replace(base, network=n))[0] for n in ("lan", "fibre", "mobile")]
    res["latency_vs_rtt"], res["profiles"] = rtt_rows, profiles
    # churn
    churn: dict[str, Any] = {}
    for r in (3, 5):
        c = simulate_churn(ml3, Config(replication=r), ChurnParams(hours=args.churn_hours)).summary()
        churn[r] = c
        print(f"churn x{r}: {({k: v for k, v in c.items() if k != 'series'})}", flush=True)
    res["churn"] = churn
    res["elapsed_s"] = time.perf_counter() - t0
    draw(json.loads(json.dumps(res, default=str)), img)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(res, indent=1, default=str))
    os.replace(tmp, out)
    print(tables(json.loads(out.read_text())))
    print(f"wrote {out} and {img}/*.png in {res['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
