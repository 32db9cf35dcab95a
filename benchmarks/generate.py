"""Prompt and decode speed of our engine vs llama.cpp on the same model, same thread count, one run.

    /work/venv/bin/python benchmarks/generate.py [--model PATH] [--threads 2] [--prompt-tokens 128]
        [--decode-tokens 32] [--repeats 3] [--json out.json]

Runs alternate (ours, llama.cpp, ours, ...) so both see the same machine load. Prints a table (tokens/s, ours / llama.cpp) and where our decode time goes (per shard kind,
measured at the backend, plus the client's own work), and writes JSON (default
benchmarks/results/generate.json). llama.cpp runs with its defaults (repacking on, F16 KV): it is
the speed reference here, not the numerics reference. Goal (issue #4): decode ≥ 50 %, prompt ≥ 25 %.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEXT = ("The history of the city begins with a small fishing village on the banks of a wide river. Over the "
        "centuries merchants, scholars and travellers arrived, built bridges, markets and libraries, and the "
        "village grew into a capital known for its music, its food and its long evenings by the water. ")


def prompt_ids(tok, n: int) -> list[int]:  # type: ignore[no-untyped-def]
    ids = tok.encode(TEXT * (n // 40 + 2))
    return ids[:n]


class TimedBackend:
    """Wraps a backend and adds up the seconds spent per shard kind."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    async def open_session(self, sid: str) -> None:
        await self.inner.open_session(sid)

    async def close_session(self, sid: str) -> None:
        await self.inner.close_session(sid)

    async def call(self, sid, calls):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        out = await self.inner.call(sid, calls)
        self.seconds[calls[0].kind] += time.perf_counter() - t
        self.calls[calls[0].kind] += len(calls)
        return out


def setup_ours(path: Path, n_prompt: int, n_decode: int):  # type: ignore[no-untyped-def]
    """Load our engine; returns (prompt ids, run-once function -> (prompt s, decode s), profile function)."""
    import trio

    from libp2pia.engine.client import Engine
    from libp2pia.engine.inprocess import InProcessBackend
    from libp2pia.engine.loader import load_model
    from libp2pia.model.tokenizer import Tokenizer

    t0 = time.perf_counter()
    model = load_model(path)
    load_s = time.perf_counter() - t0
    tok = Tokenizer.from_metadata(model.metadata)
    ids = prompt_ids(tok, n_prompt)
    backend = TimedBackend(InProcessBackend(model.shards))
    eng = Engine(model.layout, backend)

    async def once() -> tuple[float, float, float]:
        s = await eng.open_session()
        t = time.perf_counter()
        logits = await eng.forward(s, ids)
        tp = time.perf_counter() - t
        nxt = int(logits[-1].argmax())
        backend.seconds.clear()
        backend.calls.clear()
        t = time.perf_counter()
        for _ in range(n_decode):
            nxt = int((await eng.forward(s, [nxt]))[-1].argmax())
        td = time.perf_counter() - t
        await eng.close_session(s)
        return tp, td, sum(backend.seconds.values())

    async def warm() -> None:
        s = await eng.open_session()                 # warm-up: JIT caches, page-in
        await eng.forward(s, ids[:8])
        await eng.forward(s, [ids[8]])
        await eng.close_session(s)

    trio.run(warm)

    def run_once() -> tuple[float, float]:
        tp, td, _ = trio.run(once)
        return tp, td

    def profile(td: float) -> dict:
        shard_total = sum(backend.seconds.values())
        prof = {k: round(v / n_decode * 1000, 2) for k, v in sorted(backend.seconds.items())}
        prof["client (norms, sums, routing, argmax)"] = round((td - shard_total) / n_decode * 1000, 2)
        return {"load_s": round(load_s, 2), "decode_profile_ms_per_token": prof,
                "calls_per_token": {k: v / n_decode for k, v in backend.calls.items()}}

    return ids, run_once, profile


def setup_llama(path: Path, ids: list[int], n_decode: int, threads: int):  # type: ignore[no-untyped-def]
    """llama.cpp with its defaults and the same thread count; returns run-once -> (prompt s, decode s)."""
    import llama_cpp
    import numpy as np

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=max(512, len(ids) + n_decode + 8), n_threads=threads,
                          n_threads_batch=threads, n_batch=512, verbose=False)
    llm.eval(ids[:8])                                # warm-up (page-in, repacking)

    def run_once() -> tuple[float, float]:
        llm.reset()
        t = time.perf_counter()
        llm.eval(ids)
        tp = time.perf_counter() - t
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t = time.perf_counter()
        for _ in range(n_decode):
            llm.eval([nxt])
            nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        return tp, time.perf_counter() - t

    return run_once


def summarize(runs: list[tuple[float, float]], n_prompt: int, n_decode: int) -> dict:
    tp = statistics.median(r[0] for r in runs)
    td = statistics.median(r[1] for r in runs)
    return {"prompt_tps": n_prompt / tp, "decode_tps": n_decode / td, "decode_ms_per_token": td / n_decode * 1000}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="GGUF or fragment dir (default: bundled Gemma)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "generate.json")
    args = ap.parse_args()
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))   # before numba is imported
    from libp2pia import default_model_path

    path = args.model or default_model_path()
    ids, ours_once, ours_profile = setup_ours(path, args.prompt_tokens, args.decode_tokens)
    try:
        llama_once = setup_llama(path if path.is_file() else default_model_path(), ids, args.decode_tokens,
                                 args.threads)
    except ImportError:
        llama_once = None
    # alternate the two so that both see the same machine load (the VM has steal time)
    ours_runs, llama_runs, pair_ratios = [], [], []
    for _ in range(args.repeats):
        ours_runs.append(ours_once())
        if llama_once is not None:
            llama_runs.append(llama_once())
            pair_ratios.append((llama_runs[-1][0] / ours_runs[-1][0], llama_runs[-1][1] / ours_runs[-1][1]))
    ours = {**summarize(ours_runs, len(ids), args.decode_tokens), **ours_profile(ours_runs[-1][1])}
    ref = summarize(llama_runs, len(ids), args.decode_tokens) if llama_runs else None
    rows = [("prompt tokens/s", "prompt_tps", 0.25), ("decode tokens/s", "decode_tps", 0.50)]
    print(f"model {path.name}, {args.threads} threads, prompt {args.prompt_tokens} tokens, "
          f"decode {args.decode_tokens} tokens, median of {args.repeats}")
    print("| measure | ours | llama.cpp | ratio | goal |\n|---|---:|---:|---:|---:|")
    for label, key, goal in rows:
        r = ref[key] if ref else float("nan")
        print(f"| {label} | {ours[key]:.1f} | {r:.1f} | {ours[key] / r:.2f} | {goal:.2f} |")
    if pair_ratios:
        print("paired runs (ours / llama.cpp, back to back): "
              + ", ".join(f"prompt {a:.2f} decode {b:.2f}" for a, b in pair_ratios))
    print("\nour decode, ms per token by where it is spent:")
    print("| part | ms/token |\n|---|---:|")
    for k, v in ours["decode_profile_ms_per_token"].items():
        print(f"| {k} | {v} |")
    out = {"model": str(path), "threads": args.threads, "prompt_tokens": args.prompt_tokens,
           "decode_tokens": args.decode_tokens, "repeats": args.repeats, "ours": ours, "llama_cpp": ref,
           "ratio": {k: ours[k] / ref[k] for _, k, _ in rows} if ref else None,
           "paired_ratios": [{"prompt": a, "decode": b} for a, b in pair_ratios]}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(args.json)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
