"""``libp2pia fragment MODEL.gguf -o DIR``: write the fragment files and DIR/manifest.json."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import human_bytes, parse_size, progress
from ._report import summary_text


def register(sub: Any) -> None:
    p = sub.add_parser("fragment", help="cut a GGUF into fragments (compute units) + manifest.json",
                       description="Cut a GGUF into content-addressed fragment files (each a valid GGUF holding "
                                   "one compute unit) and write DIR/manifest.json. Streams from a memory map; "
                                   "writes into a temporary directory renamed at the end. DIR must not exist "
                                   "or be empty.")
    p.add_argument("model", help="path of the source .gguf")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--max-fragment-size", default="10MiB",
                   help="upper bound of one fragment file, e.g. 10MiB, 4MB (default 10MiB)")
    p.add_argument("--source-sha256", action="store_true",
                   help="also record the source file's sha256 in the manifest, so reassemble can compare "
                        "against it (hashes every byte a second time; fragments are verified without it)")
    p.add_argument("--threads", type=int, default=None,
                   help="fragments hashed and written at once (default: one per core)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..fragments import fragment, summary

    limit = parse_size(args.max_fragment_size)
    total = Path(args.model).stat().st_size
    with progress(total, "fragment") as bar:
        manifest = fragment(args.model, args.output, limit, on_progress=bar.update,
                            threads=args.threads, hash_source=args.source_sha256)
    s = summary(manifest["hparams"], manifest["fragments"], limit)
    print(f"wrote {len(manifest['fragments'])} fragments ({human_bytes(s['bytes'])}) and "
          f"{Path(args.output) / 'manifest.json'}; model id {manifest['model_id']}")
    print(summary_text(s))
    return 0
