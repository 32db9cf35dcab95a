"""``libp2pia generate``: run a model in this process (from a GGUF or a fragment directory) and print text."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._common import add_sampling_args


def register(sub: Any) -> None:
    p = sub.add_parser(
        "generate", help="generate text with a model in this process",
        description="Generate text locally through the engine (the same shard interface the network uses). "
                    "MODEL is a .gguf file or a directory with manifest.json and fragment files; "
                    "default: the bundled Gemma 3 270M Q4_K_M.")
    p.add_argument("model", nargs="?", metavar="MODEL_OR_MANIFEST", help="GGUF file or fragment directory")
    p.add_argument("--prompt", "-p", required=True, help="prompt text (with --chat: the user message)")
    p.add_argument("-n", "--max-tokens", type=int, default=64, help="tokens to generate (default 64)")
    add_sampling_args(p)
    p.add_argument("--chat", action="store_true", help="wrap the prompt with the model's chat template")
    p.add_argument("--system", default=None, help="system message (with --chat)")
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p.add_argument("--context", type=int, default=None, help="context limit in tokens (default 8192)")
    p.add_argument("--threads", type=int, default=None, help="compute threads (default: numba's, all cores)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: prompt_tokens, tokens, text, timing (no streaming)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    if args.threads:
        os.environ["NUMBA_NUM_THREADS"] = str(args.threads)   # read when the kernels are first imported
    import trio

    from ..default_model import default_model_path
    from ..engine.runner import LocalRunner
    from ..limits import DEFAULT_CONTEXT_LENGTH
    from ..model.sampling import SamplingParams

    params = SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                            repetition_penalty=args.repeat_penalty, seed=args.seed)
    params.validate()
    runner = LocalRunner.open(args.model or default_model_path(), context_limit=args.context or DEFAULT_CONTEXT_LENGTH)
    ids = runner.encode(args.prompt, chat=args.chat, system=args.system)

    def show(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    result = trio.run(lambda: runner.generate(ids, args.max_tokens, params, stop_strings=args.stop,
                                              on_text=None if args.json else show))
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
    else:
        sys.stdout.write("\n")
        t = result.to_json()["timing"]
        print(f"[{len(result.prompt_tokens)} prompt tokens at {t['prompt_tokens_per_s']} tok/s, "
              f"{len(result.tokens)} generated at {t['decode_tokens_per_s']} tok/s, stop: {result.stop_reason}]",
              file=sys.stderr)
    return 0
