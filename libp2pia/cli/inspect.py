"""``libp2pia inspect MODEL.gguf [--json]``: architecture, hyper-parameters, every tensor with its role."""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from typing import Any

from ._common import human_bytes
from ._report import table


def register(sub: Any) -> None:
    p = sub.add_parser("inspect", help="show a GGUF's architecture, hyper-parameters and tensors",
                       description="Read a GGUF header (no tensor data is needed: header-only files work) and "
                                   "list the architecture, hyper-parameters and every tensor with its role, "
                                   "layer, expert, quant type, shape and bytes, with totals per role and per type.")
    p.add_argument("model", help="path of a .gguf file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.set_defaults(func=run)


def inspect_model(path: str) -> dict[str, Any]:
    from ..errors import UnsupportedError
    from ..gguf import hparams, read_header, tensor_role

    header = read_header(path, require_data=False)
    try:
        hp: dict[str, Any] = hparams(header)
    except UnsupportedError as exc:
        hp = {"architecture": header.architecture, "unsupported": str(exc)}
    tensors, by_role, by_type = [], defaultdict(lambda: [0, 0]), defaultdict(lambda: [0, 0])
    for t in header.tensors:
        r = tensor_role(t)
        tensors.append({"name": t.name, "role": r.role, "part": r.part, "layer": r.layer,
                        "expert": r.expert, "stacked_experts": t.n_planes if r.stacked else None,
                        "type": t.qtype.name, "shape": list(t.shape), "bytes": t.n_bytes, "offset": t.abs_offset})
        for table_, key in ((by_role, r.role), (by_type, t.qtype.name)):
            table_[key][0] += 1
            table_[key][1] += t.n_bytes
    return {"file": str(path), "gguf_version": header.version, "file_bytes": header.file_size,
            "header_bytes": header.data_start, "alignment": header.alignment, "data_present": header.data_present,
            "truncated_tensors": [t.name for t in header.tensors if t.end > header.file_size]
            if header.file_size > header.data_start else [],
            "architecture": header.architecture, "hparams": hp, "tensors": tensors,
            "totals_by_role": {k: {"tensors": v[0], "bytes": v[1]} for k, v in sorted(by_role.items())},
            "totals_by_type": {k: {"tensors": v[0], "bytes": v[1]} for k, v in sorted(by_type.items())}}


def run(args: argparse.Namespace) -> int:
    info = inspect_model(args.model)
    if args.json:
        json.dump(info, sys.stdout, indent=1)
        print()
        return 0
    hp = {k: v for k, v in info["hparams"].items() if k != "raw" and v is not None}
    print(f"{info['file']}: GGUF v{info['gguf_version']}, {human_bytes(info['file_bytes'])}, header "
          f"{human_bytes(info['header_bytes'])}, {len(info['tensors'])} tensors"
          + ("" if info["data_present"] else
             f" (TRUNCATED: {len(info['truncated_tensors'])} tensors extend past the end of the file, first "
             f"{info['truncated_tensors'][0]})" if info["truncated_tensors"] else
             " (header only: tensor data absent)"))
    print("hyper-parameters: " + ", ".join(f"{k}={v}" for k, v in hp.items()))
    print()
    rows = [[t["name"], t["role"], "" if t["layer"] is None else str(t["layer"]),
             f"0..{t['stacked_experts'] - 1}" if t["stacked_experts"] else
             "" if t["expert"] is None else str(t["expert"]), t["type"], "x".join(map(str, t["shape"])), str(t["bytes"])]
            for t in info["tensors"]]
    print(table(rows, ["tensor", "role", "layer", "expert", "type", "shape", "bytes"]))
    for title, key in (("role", "totals_by_role"), ("type", "totals_by_type")):
        print()
        print(table([[k, str(v["tensors"]), human_bytes(v["bytes"])] for k, v in info[key].items()],
                    [title, "tensors", "bytes"]))
    return 0
