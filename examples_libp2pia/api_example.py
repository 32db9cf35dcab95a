#!/usr/bin/env python3
"""Generate through a libp2pia network from a plain script.

    python examples_libp2pia/api_example.py --bootstrap /ip4/127.0.0.1/tcp/4001/p2p/12D3… --model <model id>

(`libp2pia swarm` or apps/bootstrap.py + apps/worker.py start such a network; the bootstrap node
prints its address and the model id.)
"""

import argparse
import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import libp2pia  # noqa: E402


async def stream(bootstrap: list[str], model: str, prompt: str, n: int) -> str:
    """The async API: tokens as they arrive."""
    parts = []
    async with libp2pia.connect(bootstrap=bootstrap, model=model) as client:
        async for token in client.generate(prompt, max_new_tokens=n, temperature=0.0):
            print(token, end="", flush=True)
            parts.append(token.text)
    print()
    return "".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap", nargs="+", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--prompt", default="The capital of France is")
    p.add_argument("-n", type=int, default=8)
    args = p.parse_args()
    streamed = trio.run(stream, args.bootstrap, args.model, args.prompt, args.n)
    # The blocking wrapper, same sampling options: greedy gives the same text again.
    again = libp2pia.generate(args.prompt, bootstrap=args.bootstrap, model=args.model, max_new_tokens=args.n)
    print("blocking:", again)
    sys.exit(0 if again == streamed else 1)


if __name__ == "__main__":
    main()
