"""``libp2pia demo``: the main job on the default model — the peer-to-peer swarm demo (``libp2pia swarm``
with its defaults); ``--reassemble`` runs the fragment → reassemble → sha256 check instead."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from ._common import human_bytes, parse_size, progress
from ._report import summary_text


def register(sub: Any) -> None:
    from .swarm import add_swarm_args

    p = sub.add_parser("demo", help="the main demo: generate through a local peer-to-peer swarm (default model)",
                       description="Same as `libp2pia swarm`: fragment the default model (Gemma 3 270M Q4_K_M), "
                                   "start a bootstrap node, a relay and worker processes on loopback, generate an "
                                   "answer through them, stop everything. --reassemble instead cuts the model "
                                   "into fragments, reassembles it and checks the sha256.")
    add_swarm_args(p)
    p.add_argument("--reassemble", action="store_true", help="run the fragment/reassemble round trip instead")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.reassemble:
        from .swarm import run as run_swarm

        return run_swarm(args)
    return reassemble_demo(args)


def reassemble_demo(args: argparse.Namespace) -> int:
    from ..default_model import default_model_path
    from ..fragments import file_sha256, fragment, reassemble, summary

    model = Path(args.model) if args.model else default_model_path()
    limit = parse_size(args.max_fragment_size)
    size = model.stat().st_size
    print(f"model: {model} ({human_bytes(size)})")
    with tempfile.TemporaryDirectory(prefix="libp2pia-demo-") as tmp:
        frag_dir, out = Path(tmp) / "fragments", Path(tmp) / "reassembled.gguf"
        with progress(size, "fragment") as bar:
            manifest = fragment(model, frag_dir, limit, on_progress=bar.update, hash_source=True)
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
