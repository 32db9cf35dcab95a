"""``libp2pia demo``: the main job on the default model (for now: fragment it, reassemble it, compare)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from ._common import human_bytes, parse_size, progress
from ._report import summary_text


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="fragment the default model (Gemma 3 270M Q4_K_M), reassemble it, compare",
                       description="Assemble the bundled default model if needed, cut it into fragments in a "
                                   "temporary directory, reassemble it and check the sha256 matches.")
    p.add_argument("--model", help="use this GGUF instead of the default model")
    p.add_argument("--max-fragment-size", default="10MiB", help="fragment size limit (default 10MiB)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..default_model import default_model_path
    from ..fragments import file_sha256, fragment, reassemble, summary

    model = Path(args.model) if args.model else default_model_path()
    limit = parse_size(args.max_fragment_size)
    size = model.stat().st_size
    print(f"model: {model} ({human_bytes(size)})")
    with tempfile.TemporaryDirectory(prefix="libp2pia-demo-") as tmp:
        frag_dir, out = Path(tmp) / "fragments", Path(tmp) / "reassembled.gguf"
        with progress(size, "fragment") as bar:
            manifest = fragment(model, frag_dir, limit, on_progress=bar.update)
        print(f"fragmented into {len(manifest['fragments'])} fragments in {frag_dir}")
        print(summary_text(summary(manifest["hparams"], manifest["fragments"], limit)))
        with progress(size, "reassemble") as bar:
            digest = reassemble(frag_dir / "manifest.json", out, on_progress=bar.update)
        original = manifest["source"]["sha256"]
        ok = digest == original == file_sha256(model)
        print(f"reassembled sha256 {digest}")
        print(f"original    sha256 {original}")
        print("sha256 matches: the reassembled file is bit-identical" if ok else "MISMATCH")
        return 0 if ok else 1
