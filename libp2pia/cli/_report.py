"""Human-readable tables for fragment plans and manifests (shared by plan, fragment and demo)."""

from __future__ import annotations

from typing import Any

from ._common import human_bytes


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def summary_text(s: dict[str, Any]) -> str:
    """Totals per class and role, size distribution, per-token figures and peers needed."""
    out = []
    rows = [[f"class {k}", str(v["fragments"]), human_bytes(v["bytes"])] for k, v in sorted(s["by_class"].items())]
    rows += [[f"  {k}", str(v["fragments"]), human_bytes(v["bytes"])] for k, v in s["by_role"].items()]
    rows.append(["total", str(s["fragments"]), human_bytes(s["bytes"])])
    out.append(table(rows, ["fragments by", "count", "bytes"]))
    d = s["size_distribution"]
    if d:
        out.append("fragment size: " + ", ".join(f"{k} {human_bytes(d[k])}" for k in
                                                 ("min", "p10", "median", "mean", "p90", "max")))
    t = s["per_token"]
    routed = (f" + {t['routed_fragments']} routed-expert fragments ({t['experts_used']} of the experts in each of "
              f"{t['moe_layers']} MoE layers)" if t["moe_layers"] else "")
    out.append(f"touched per token: {t['fragments']} fragments, {human_bytes(t['bytes'])} "
               f"= {t['always_fragments']} always-active{routed}")
    p = s["peers"]
    reps = ", ".join(f"R={r}: {n} peers" for r, n in p["by_replication"].items())
    out.append(f"peers needed ({human_bytes(p['budget_bytes'])} budget, {p['fragments_per_peer']} fragment(s) "
               f"per peer): {reps}")
    if s["oversize"]:
        out.append(f"{len(s['oversize'])} oversize unit(s) (one indivisible compute unit above the limit):")
        out += [f"  fragment #{o['index']} {o['role']} layer {o['layer']}: {human_bytes(o['bytes'])}"
                for o in s["oversize"][:20]]
    return "\n".join(out)
