"""``libp2pia reassemble DIR/manifest.json -o OUT.gguf``: rebuild the original GGUF bit for bit."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import progress


def register(sub: Any) -> None:
    p = sub.add_parser("reassemble", help="rebuild the original GGUF from its fragments",
                       description="Check the manifest and every fragment's sha256 and metadata first, then "
                                   "rebuild the source GGUF into a temporary file, check its sha256 against the "
                                   "manifest's source sha256 (when it records one: fragment --source-sha256) "
                                   "and rename it into place. Never overwrites anything on error.")
    p.add_argument("manifest", help="path of manifest.json (fragments are looked up next to it)")
    p.add_argument("-o", "--output", required=True, help="output .gguf path")
    p.add_argument("--force", action="store_true", help="replace OUTPUT if it exists (only after success)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..fragments import load_manifest, reassemble

    source = load_manifest(args.manifest)["source"]
    total = int(source.get("bytes", 0))  # progress only; verify() checks it
    with progress(total, "reassemble") as bar:
        digest = reassemble(args.manifest, args.output, overwrite=args.force, on_progress=bar.update)
    how = ("matches the source" if source.get("sha256") else
           "every fragment verified; the manifest records no source sha256")
    print(f"wrote {args.output}: sha256 {digest} ({how})")
    return 0
