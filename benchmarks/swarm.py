"""Per-token latency through a local swarm (1, 2, 4, 8, 16 workers) beside the local engine, same run.

    python benchmarks/swarm.py [--workers 1 2 4 8 16] [-n 12] [--phase-by-phase] [--json PATH]

``--phase-by-phase`` turns runs off (every layer's two phases go out on their own, as before runs).

| column            | what is measured                                                              |
|-------------------|-------------------------------------------------------------------------------|
| ms/token          | decode steps only (the prompt pass excluded), median-free: total / steps      |
| × local           | ratio to the local engine's ms/token on the same fragments                    |
| KiB/token, msg/tok| compute-protocol bytes (both ways) and requests per decode step               |
| phases/token      | sequential network phases per decode step (a run of layers on one worker is one) |
| runs/token        | of those, runs: consecutive layers computed by one worker in one request       |
| rtt ms            | median round trip of an empty request on a reused stream to the workers       |
| floor ms          | local compute + phases per token × rtt (the design's lower bound)             |
| goal ms           | local compute + 2 × layers × rtt × 1.5 (issue 5's goal)                       |

Where the time goes is printed per row: local compute, network floor (phases × rtt), and the
rest (client-side sums and norms, (de)serialisation, thread hand-offs, and the 2 shared cores).
Workers run one numba thread each and announce themselves at the production period (30 s); every
process shares this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from libp2pia.default_model import default_model_path  # noqa: E402
from libp2pia.engine.runner import LocalRunner  # noqa: E402
from libp2pia.limits import DEFAULT_HEARTBEAT_PERIOD_S  # noqa: E402
from libp2pia.node.client import ClientConfig, NetworkClient  # noqa: E402
from libp2pia.node.run import silence_libp2p  # noqa: E402
from libp2pia.node.swarm import LocalSwarm, fragment_cache  # noqa: E402

PROMPT = "The capital of France is"


async def local_run(frags: Path, n: int) -> dict:
    runner = LocalRunner.open(frags)
    ids = runner.encode(PROMPT)
    res = await runner.generate(ids, n)
    steps = len(res.tokens) - 1
    return {"tokens": res.tokens, "ms_per_token": 1e3 * res.decode_seconds / steps, "n_layer": runner.model.cfg.n_layer}


def local_one_thread(frags: Path, n: int) -> float:
    """ms/token of `libp2pia generate` in a subprocess with one numba thread (what each worker gets)."""
    import os
    import subprocess

    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-m", "libp2pia", "generate", str(frags), "-p", PROMPT, "-n", str(n),
                          "--json"], capture_output=True, text=True, env=env, timeout=1800, check=True)
    return 1e3 / json.loads(out.stdout.strip().splitlines()[-1])["timing"]["decode_tokens_per_s"]


async def rtt_ms(client: NetworkClient, peers: list[str], k: int = 20) -> float:
    """Median round trip of an `open` (an ack, no compute) on a reused stream, over the used peers."""
    samples = []
    for peer in peers:
        for _ in range(k):
            t0 = time.perf_counter()
            await client.backend.rpc.open_session(peer, "rtt-probe")
            samples.append(time.perf_counter() - t0)
        await client.backend.rpc.close_session(peer, "rtt-probe")
    return 1e3 * statistics.median(samples)


async def swarm_run(swarm: LocalSwarm, n: int, tmp: Path, wire_dtype: str, runs: bool = True) -> dict:
    cfg = ClientConfig(swarm.bootstrap_addrs, swarm.model_id, data_dir=tmp, wire_dtype=wire_dtype,
                       discovery_deadline=300, runs=runs)
    async with NetworkClient.connect(cfg) as client:
        rpc, stats = client.backend.rpc, client.backend.stats
        ids = client.encode(PROMPT)
        tokens: list[int] = []
        mark: dict = {}
        async for tok in client.stream(ids, n):
            if not mark:   # the first token ends the prompt pass: count decode steps from here
                mark = {"t": time.perf_counter(), "bytes": rpc.bytes_sent + rpc.bytes_received,
                        "req": rpc.requests, "phases": stats.phases, "in_calls": stats.seconds, "runs": stats.runs}
            tokens.append(tok.id)
        t1 = time.perf_counter()
        steps = len(tokens) - 1
        peers = client.last.peers
        # counters read before the round-trip probe, whose requests are not the generation's
        out = {"tokens": [t for t in tokens if t >= 0], "ms_per_token": 1e3 * (t1 - mark["t"]) / steps,
               "kib_per_token": (rpc.bytes_sent + rpc.bytes_received - mark["bytes"]) / 1024 / steps,
               "messages_per_token": (rpc.requests - mark["req"]) / steps,
               "phases_per_token": (stats.phases - mark["phases"]) / steps, "peers": len(peers),
               "runs_per_token": (stats.runs - mark["runs"]) / steps,
               "in_calls_ms": 1e3 * (stats.seconds - mark["in_calls"]) / steps}
        out["rtt_ms"] = await rtt_ms(client, peers)
        return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("-n", type=int, default=12, help="tokens per run (default 12)")
    p.add_argument("--wire-dtype", default="float16", choices=("float32", "float16"),
                   help="activations on the wire (default float16, the client default)")
    p.add_argument("--phase-by-phase", action="store_true",
                   help="no runs: every layer's two phases go out on their own")
    p.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "swarm.json")
    args = p.parse_args()
    silence_libp2p()
    frags = fragment_cache(default_model_path(), 10 * 2**20)
    local = trio.run(local_run, frags, args.n)
    local["ms_per_token_1_thread"] = local_one_thread(frags, args.n)
    print(f"local engine: {local['ms_per_token']:.1f} ms/token in-process (numba default threads), "
          f"{local['ms_per_token_1_thread']:.1f} ms/token with 1 thread ({local['n_layer']} layers)", flush=True)
    rows, failed = [], []
    for w in args.workers:
        with tempfile.TemporaryDirectory(prefix="libp2pia-bench-") as tmp:
            t0 = time.perf_counter()
            try:
                # the production heartbeat period (30 s), not LocalSwarm's 5 s for quick tests: at 16 workers
                # the 5 s announcements alone keep ~3 % of a core busy per idle worker (gossip relaying and
                # signature checks in py-libp2p), which a benchmark of the swarm's speed should not pay
                with LocalSwarm(frags, w, 1, work_dir=Path(tmp), relay=False,
                                heartbeat_period=DEFAULT_HEARTBEAT_PERIOD_S) as swarm:
                    start = time.perf_counter() - t0
                    r = trio.run(swarm_run, swarm, args.n, Path(tmp) / "client", args.wire_dtype,
                                 not args.phase_by_phase)
            except Exception as exc:  # noqa: BLE001 - one failed size must not lose the others' rows
                leaf = exc
                while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
                    leaf = leaf.exceptions[0]
                print(f"  {w:2d} workers: FAILED: {type(leaf).__name__}: {str(leaf)[:200]}", flush=True)
                failed.append({"workers": w, "error": f"{type(leaf).__name__}: {leaf}"})
                continue
        L, base = local["n_layer"], min(local["ms_per_token"], local["ms_per_token_1_thread"])
        r.update(workers=w, startup_s=start, same_tokens=r["tokens"] == local["tokens"],
                 ratio=r["ms_per_token"] / base,
                 floor_ms=base + r["phases_per_token"] * r["rtt_ms"],
                 goal_ms=base + 2 * L * r["rtt_ms"] * 1.5)
        r["goal_met"] = r["ms_per_token"] <= r["goal_ms"]
        rows.append(r)
        print(f"  {w:2d} workers: {r['ms_per_token']:.1f} ms/token (start-up {start:.0f} s)", flush=True)

    print(f"\nGemma 3 270M Q4_K_M, greedy, {args.n} tokens, wire {args.wire_dtype}, "
          f"{'phase by phase' if args.phase_by_phase else 'runs on'}; local engine "
          f"{local['ms_per_token']:.1f} ms/token (1 numba thread: {local['ms_per_token_1_thread']:.1f}); "
          f"× local, floor and goal use the faster of the two\n")
    print("| workers | peers used | ms/token | × local | KiB/token | msg/token | phases/token | runs/token | rtt ms "
          "| floor ms | goal ms | goal met | same tokens |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|")
    for r in rows:
        print(f"| {r['workers']} | {r['peers']} | {r['ms_per_token']:.1f} | {r['ratio']:.2f} | "
              f"{r['kib_per_token']:.1f} | {r['messages_per_token']:.1f} | {r['phases_per_token']:.0f} | "
              f"{r['runs_per_token']:.0f} | "
              f"{r['rtt_ms']:.2f} | {r['floor_ms']:.1f} | {r['goal_ms']:.1f} | {'yes' if r['goal_met'] else 'no'} | "
              f"{'yes' if r['same_tokens'] else 'NO'} |")
    print("\nwhere the time goes (ms/token): client side (norms, sums, sampling, decode) | inside the "
          "phases (network + remote compute) | of which the round-trip floor (phases × rtt)")
    for r in rows:
        client = r["ms_per_token"] - r["in_calls_ms"]
        floor = r["phases_per_token"] * r["rtt_ms"]
        print(f"  {r['workers']:2d} workers: {client:7.1f} | {r['in_calls_ms']:7.1f} | {floor:7.1f}")
    print("(workers compute in parallel processes, so a swarm can beat the single local process on this box)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"local": local, "rows": rows, "failed": failed, "n": args.n, "wire_dtype": args.wire_dtype,
                                     "runs": not args.phase_by_phase}, indent=1))
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
