"""``libp2pia swarm``: a whole peer-to-peer network on this machine, one answer through it."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_PROMPT = "The capital of France is"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "swarm", help="run a bootstrap node, a relay and N workers on loopback and generate through them",
        description="Fragment the model (cached), start a bootstrap node, a relay and N worker processes on "
                    "127.0.0.1, spread the fragments over the workers with R replicas each, run a client that "
                    "finds everything through the DHT and prints the answer as it arrives, then stop every "
                    "process.")
    add_swarm_args(p)
    p.set_defaults(func=run)


def add_swarm_args(p: argparse.ArgumentParser) -> None:
    from ._common import add_sampling_args

    p.add_argument("--workers", type=int, default=6, help="worker processes (default 6)")
    p.add_argument("--replication", type=int, default=2, help="replicas of every fragment (default 2)")
    p.add_argument("--prompt", "-p", default=DEFAULT_PROMPT, help=f"prompt (default {DEFAULT_PROMPT!r})")
    p.add_argument("-n", "--max-tokens", type=int, default=32, help="tokens to generate (default 32)")
    add_sampling_args(p)
    p.add_argument("--chat", action="store_true", help="wrap the prompt with the model's chat template")
    p.add_argument("--json", action="store_true", help="print one JSON object (tokens, text, timing, peers)")
    p.add_argument("--model", default=None, help="GGUF to use instead of the default Gemma 3 270M Q4_K_M")
    p.add_argument("--max-fragment-size", default="10MiB", help="fragment size limit (default 10MiB)")
    p.add_argument("--kill", type=int, default=0, metavar="K",
                   help="SIGKILL K workers while the answer is generated (failover demo; chosen so that every "
                        "fragment keeps a replica); the answer must not change")
    p.add_argument("--wire-dtype", choices=("float32", "float16", "bfloat16"), default="float16",
                   help="activation encoding on the wire (default float16: half the bytes; float32: output "
                            "bit-identical to the local engine's)")


def run(args: argparse.Namespace) -> int:
    import trio

    from ..default_model import default_model_path
    from ..errors import Libp2piaError
    from ..node.chat import one_shot
    from ..node.client import ClientConfig, NetworkClient
    from ..node.run import sampling_params, silence_libp2p
    from ..node.swarm import LocalSwarm, fragment_cache
    from ._common import parse_size

    if args.workers < 1 or not 1 <= args.replication <= args.workers:
        raise Libp2piaError(f"need 1 ≤ replication ({args.replication}) ≤ workers ({args.workers})")
    params = sampling_params(args)
    if not args.debug:
        silence_libp2p()
    model = Path(args.model) if args.model else default_model_path()
    frags = fragment_cache(model, parse_size(args.max_fragment_size))
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    say(f"model {model.name}: fragments in {frags}")
    with tempfile.TemporaryDirectory(prefix="libp2pia-swarm-") as tmp:
        say(f"starting a bootstrap node, a relay and {args.workers} workers (R={args.replication}) on 127.0.0.1 …")
        with LocalSwarm(frags, args.workers, args.replication, work_dir=Path(tmp)) as swarm:
            say(f"bootstrap {swarm.bootstrap_addrs[0]}")
            for w in swarm.workers:
                say(f"  {w.name}: {w.info['peer_id'][-8:]}  {w.info['fragments']} fragments "
                    f"({w.info['bytes'] / 2**20:.1f} MiB), warm-up {w.info['warmup_seconds']:.1f} s")
            cfg = ClientConfig(swarm.bootstrap_addrs, swarm.model_id, data_dir=Path(tmp) / "client",
                               wire_dtype=args.wire_dtype)

            async def client() -> None:
                async with NetworkClient.connect(cfg) as c:
                    say(f"client joined: model {c.model_id[:16]}…, {len(c.backend.peers())} peers hold its "
                        f"{len(c.manifest['fragments'])} fragments\n")
                    if getattr(args, "kill", 0):
                        from ..node.chaos import generate_with_kills

                        await generate_with_kills(c, swarm, args, params, say)  # echoes the prompt itself
                    else:
                        if not args.json:
                            sys.stdout.write(args.prompt)
                        await one_shot(c, args, params)

            trio.run(client)
        say("all processes stopped")
    return 0
