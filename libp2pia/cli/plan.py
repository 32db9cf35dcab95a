"""``libp2pia plan MODEL.gguf``: the fragment plan from the GGUF header alone (no tensor data read)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .. import limits
from ..errors import Libp2piaError
from ._common import human_bytes, parse_size
from ._report import summary_text


def parse_replication(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise Libp2piaError(f"not a list of replication factors: {text!r} (example: 3,5)") from exc
    if not values or any(v < 1 for v in values):
        raise Libp2piaError(f"replication factors must be positive integers: {text!r}")
    return values


def register(sub: Any) -> None:
    p = sub.add_parser("plan", help="fragment plan of a GGUF from its header alone",
                       description="Plan how a GGUF would be cut into fragments, reading only its header (a "
                                   "header-only file of a 450 GB model works): fragments and bytes per class "
                                   "(always-active vs routed experts) and role, fragments touched per token, and "
                                   "peers needed at each replication factor "
                                   "(ceil(fragments x R / fragments_per_peer)).")
    p.add_argument("model", help="path of a .gguf file (tensor data not needed)")
    p.add_argument("--max-fragment-size", default="10MiB", type=str,
                   help="upper bound of one fragment file, e.g. 10MiB, 4MB, 1048576 (default 10MiB)")
    p.add_argument("--replication", default=",".join(map(str, limits.DEFAULT_PLAN_REPLICATION)),
                   help="comma-separated replication factors to size the swarm for (default 3,5)")
    p.add_argument("--json", action="store_true", help="print the full plan (manifest shape + summary) as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..fragments import plan

    limit = parse_size(args.max_fragment_size)
    result = plan(args.model, limit, parse_replication(args.replication))
    if args.json:
        # One line: json's C encoder is only used without indent (a 450 GB model has ~50k fragments).
        sys.stdout.write(json.dumps(result) + "\n")
        return 0
    src = result["source"]
    print(f"{args.model}: {result['architecture']}, {human_bytes(src['bytes'])}, header "
          f"{human_bytes(src['header_bytes'])}, limit {human_bytes(limit)} per fragment")
    print(summary_text(result["summary"]))
    return 0
