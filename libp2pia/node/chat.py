"""The client app's terminal side: one-shot prompt or interactive chat, tokens shown as they arrive."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import trio

from .client import ClientConfig, NetworkClient, parse_addrs


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _footer(client: NetworkClient) -> str:
    s = client.last
    return (f"[{s.tokens} tokens, {s.tokens_per_s:.2f} tok/s, {len(s.peers)} peers used: "
            f"{', '.join(p[-8:] for p in s.peers)}]")


async def one_shot(client: NetworkClient, args: argparse.Namespace, params: Any) -> dict[str, Any]:
    """Generate for --prompt; stream text unless --json. Returns the JSON summary."""
    ids = client.encode(args.prompt, chat=args.chat)
    results: list[Any] = []
    async for tok in client.stream(ids, args.max_tokens, params, on_result=results.append):
        if not args.json:
            _out(tok.text)
    res = results[0]
    summary = {**res.to_json(), "peers": client.last.peers, "model_id": client.model_id,
               "messages": client.backend.stats.messages, "phases": client.backend.stats.phases}
    if args.json:
        print(json.dumps(summary, ensure_ascii=False), flush=True)
    else:
        _out("\n")
        print(_footer(client), file=sys.stderr, flush=True)
    return summary


async def interactive(client: NetworkClient, args: argparse.Namespace, params: Any) -> None:
    """A chat in the terminal: the whole conversation goes through the chat template each turn."""
    history: list[dict[str, str]] = []
    print(f"connected to model {client.model_id[:16]}… ({len(client.backend.peers())} peers); "
          "empty line or Ctrl-D to quit", file=sys.stderr)
    while True:
        try:
            line = await trio.to_thread.run_sync(input, "> ")
        except EOFError:
            break
        if not line.strip():
            break
        history.append({"role": "user", "content": line})
        reply: list[str] = []
        async for tok in client.stream(client.tokenizer.encode_chat(history), args.max_tokens, params):
            reply.append(tok.text)
            _out(tok.text)
        _out("\n")
        print(_footer(client), file=sys.stderr, flush=True)
        history.append({"role": "assistant", "content": "".join(reply).strip()})


async def run_client(args: argparse.Namespace) -> None:
    from .run import sampling_params

    params = sampling_params(args)
    cfg = ClientConfig(parse_addrs(args.bootstrap), args.model, data_dir=args.data_dir,
                       wire_dtype=args.wire_dtype, relays=getattr(args, "relay", []))
    async with NetworkClient.connect(cfg) as client:
        if args.prompt is not None:
            await one_shot(client, args, params)
        else:
            await interactive(client, args, params)
