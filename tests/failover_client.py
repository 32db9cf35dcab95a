"""A network client for failover tests, run in its own process (e.g. inside a network namespace).

    python tests/failover_client.py --bootstrap ADDR --model ID --prompt TEXT -n 50 [--relay ADDR] [--runs 2]

Joins once, then generates ``--runs`` greedy answers in fresh sessions. Prints JSON lines on stdout:
``{"event": "joined", ...}``, ``{"event": "session", ...}`` (the peers used, and those serving attention), one ``{"event": "token", "run": r, "i": i, "id": tok, "t": time}`` per token
(the parent kills workers when it sees token k of the last run), ``{"event": "run", ...}`` per answer
(tokens, failover events, connection kinds per peer) and ``{"event": "done"}``. An error is one line
``{"event": "error", "type": ..., "message": ...}`` and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def emit(**obj: object) -> None:
    print(json.dumps(obj), flush=True)


async def main(args: argparse.Namespace) -> None:
    from libp2pia.net.relay import connection_kinds
    from libp2pia.node.client import ClientConfig, NetworkClient
    from libp2pia.node.failover import failover_summary
    from libp2pia.node.nat import wait_direct

    cfg = ClientConfig(args.bootstrap, args.model, data_dir=Path(args.data_dir), relays=args.relay,
                       listen=[f"/ip4/{args.ip}/tcp/0"], discovery_deadline=args.deadline,
                       hole_punch=not args.no_dcutr)
    async with NetworkClient.connect(cfg) as client:
        ids = client.encode(args.prompt)
        emit(event="joined", peers=client.backend.peers(), prompt_ids=ids)
        for run in range(args.runs):
            t0 = time.monotonic()
            toks: list[int] = []
            times: list[float] = []
            n_events = len(client.backend.events)
            async for tok in client.stream(ids, args.n):
                if tok.id < 0:
                    continue
                toks.append(tok.id)
                times.append(time.monotonic())
                if len(toks) == 1:                  # the peers this session's fragments are pinned to
                    [sess] = client.backend.sessions.values()
                    attention = sorted({sess.pinned[f] for fs in client.layout.attention for f in fs
                                        if f in sess.pinned})
                    emit(event="session", run=run, used=client.last.peers, attention=attention)
                emit(event="token", run=run, i=len(toks) - 1, id=tok.id, t=times[-1])
            reach = getattr(client.backend.reach, "how", {})
            emit(event="run", run=run, tokens=toks, times=times, seconds=time.monotonic() - t0,
                 failovers=failover_summary(client.backend.events[n_events:]),
                 failover_at=[e.at for e in client.backend.events[n_events:]],
                 kinds={p[-8:]: connection_kinds(client.net, p) for p in client.backend.peers()},
                 reach={p[-8:]: h for p, h in reach.items()}, used=[p[-8:] for p in client.last.peers])
            if run == 0 and args.wait_direct > 0:    # give DCUtR time to upgrade relayed links before run 2
                live = [p for p in client.backend.peers() if p not in client.backend.down]
                kinds = await wait_direct(client.net, live, args.wait_direct)
                emit(event="dcutr", kinds={p[-8:]: k for p, k in kinds.items()})
    emit(event="done")


def cli() -> int:
    from libp2pia.net.host import quiet_libp2p_logs

    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", nargs="+", required=True)
    p.add_argument("--relay", nargs="*", default=[])
    p.add_argument("--model", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument("-n", type=int, default=50)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--ip", default="127.0.0.1")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--deadline", type=float, default=60.0)
    p.add_argument("--wait-direct", type=float, default=0.0)
    p.add_argument("--no-dcutr", action="store_true", help="keep relayed links relayed (no hole punching)")
    args = p.parse_args()
    quiet_libp2p_logs()
    try:
        trio.run(main, args)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as one line
        leaf = exc
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        emit(event="error", type=type(leaf).__name__, message=str(leaf))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
