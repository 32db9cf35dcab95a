"""PNG plots of sweeps (matplotlib with the Agg backend, imported only when plotting)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    """Write through a temporary name so a half-written PNG never looks complete."""
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=80)
    os.replace(tmp, path)


def survival_plot(rows: Sequence[dict[str, Any]], path: Path, title: str, choices_per_token: int = 0) -> None:
    """Left: P(model up) = every always-active fragment alive, simulated (dots) and closed form
    (dashed). Middle: share of tokens with no replaced expert while up. Right (MoE only): share of
    a token's expert choices replaced by the next best available expert."""
    plt = _pyplot()
    n = 3 if choices_per_token else 2
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4))
    reps = sorted({r["replication"] for r in rows})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, rep in enumerate(reps):
        c = colors[i % len(colors)]
        pts = sorted((r for r in rows if r["replication"] == rep), key=lambda r: r["fail"])
        x = [100 * r["fail"] for r in pts]
        axes[0].plot(x, [r["always_whole"] for r in pts], "o", ms=2.5, color=c)
        axes[0].plot(x, [r["always_whole_closed_form"] for r in pts], "--", lw=1, color=c, label=f"×{rep}")
        axes[1].plot(x, [r["clean_if_up"] for r in pts], "-", color=c, label=f"×{rep}")
        if choices_per_token:
            axes[2].plot(x, [100 * r["replaced_if_up"] / choices_per_token for r in pts], "-", color=c,
                         label=f"×{rep}")
    axes[0].set_title("model up: every always-active fragment alive\n(dots: simulated, dashed: (1 − f^R)^A)",
                      fontsize=9)
    axes[0].set_ylabel("probability")
    axes[1].set_title("tokens with no replaced expert, while up", fontsize=9)
    axes[1].set_ylabel("fraction of tokens")
    if choices_per_token:
        axes[2].set_title(f"expert choices replaced, while up (of {choices_per_token} per token)", fontsize=9)
        axes[2].set_ylabel("% of choices")
    for ax in axes:
        ax.set_xlabel("peers failed at once (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(title="replication", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def latency_plot(rows: Sequence[dict[str, Any]], path: Path, title: str,
                 profiles: Sequence[dict[str, Any]] = ()) -> None:
    """Seconds per token vs median round trip; phases × median RTT for reference."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    pts = sorted(rows, key=lambda r: r["median_rtt_ms"])
    x = [r["median_rtt_ms"] for r in pts]
    ax.plot(x, [r["mean_s_per_token"] for r in pts], marker="o", ms=3, label="simulated (fibre links, RTT scaled)")
    ax.plot(x, [r["phases_x_median_rtt_s"] for r in pts], ls="--", label="phases × median RTT")
    for p in profiles:
        ax.scatter([p["median_rtt_ms"]], [p["mean_s_per_token"]], zorder=3, s=30)
        ax.annotate(p["network"], (p["median_rtt_ms"], p["mean_s_per_token"]), textcoords="offset points",
                    xytext=(5, -10), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("median round trip client ↔ peer (ms)")
    ax.set_ylabel("seconds per token")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def churn_plot(series: dict[str, Any], path: Path, title: str) -> None:
    """Churn run over time: online peers, lost fragments, clean coverage, repair traffic."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True)
    h = [t / 3600 for t in series["t_s"]]
    axes[0, 0].plot(h, series["online_fraction"])
    axes[0, 0].set_title("peers online (fraction)")
    axes[0, 1].plot(h, series["fragments_without_live_replica"])
    axes[0, 1].set_title("fragments without a live replica")
    axes[1, 0].plot(h, series["clean"], label="clean")
    axes[1, 0].plot(h, [c + d for c, d in zip(series["clean"], series["degraded"])], label="served")
    axes[1, 0].set_title("token coverage")
    axes[1, 0].legend(fontsize=8)
    axes[1, 1].plot(h, [b / 1e9 for b in series["repair_bytes_cum"]])
    axes[1, 1].set_title("re-replication traffic, cumulative (GB)")
    for ax in axes[1]:
        ax.set_xlabel("hours")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
