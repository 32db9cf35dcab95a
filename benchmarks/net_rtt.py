"""Round trips of the compute protocol on loopback, beside raw trio TCP in the same run.

    python benchmarks/net_rtt.py [--n 300] [--json PATH]

| row                      | what is measured                                            |
|--------------------------|-------------------------------------------------------------|
| trio TCP echo            | the floor: same payload, length-prefixed, no libp2p         |
| compute, reused stream   | ComputeClient.compute on the stream kept per (peer, session)|
| compute, fresh stream    | a new stream per request (what reuse saves)                 |

Payloads: one call of [1, 640] (Gemma 3 270M hidden size, one token, float16)
and [1, 5376] (a large model's hidden size).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from libp2pia.net.framed import FramedStream, open_stream  # noqa: E402
from libp2pia.net.host import open_host, quiet_libp2p_logs  # noqa: E402
from libp2pia.net.rpc import PROTOCOL_ID, ComputeClient, compute_handler  # noqa: E402
from libp2pia.wire.compute import WireCall, decode_response, encode_request  # noqa: E402
from libp2pia.wire.framing import FrameDecoder, encode_frame  # noqa: E402

FID = "1" * 64


class Echo:
    async def open_session(self, peer, sid):  # noqa: ANN001, ANN201
        pass

    async def close_session(self, peer, sid):  # noqa: ANN001, ANN201
        pass

    async def compute(self, peer, sid, calls):  # noqa: ANN001, ANN201
        return [c.x for c in calls]


def summary(samples: list[float]) -> dict:
    s = sorted(samples)
    return {"median_ms": 1e3 * statistics.median(s), "p90_ms": 1e3 * s[int(0.9 * (len(s) - 1))], "n": len(s)}


async def tcp_echo(payload: bytes, n: int) -> list[float]:
    async def serve(stream: trio.SocketStream) -> None:
        dec = FrameDecoder()
        async with stream:
            while data := await stream.receive_some(65536):
                for f in dec.feed(data):
                    await stream.send_all(encode_frame(f))

    out = []
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        async with await trio.open_tcp_stream("127.0.0.1", port) as s:
            dec = FrameDecoder()
            for _ in range(n):
                t0 = time.perf_counter()
                await s.send_all(encode_frame(payload))
                frames: list[bytes] = []
                while not frames:
                    frames = dec.feed(await s.receive_some(65536))
                out.append(time.perf_counter() - t0)
        nursery.cancel_scope.cancel()
    return out


async def libp2p_rtts(x: np.ndarray, n: int) -> tuple[list[float], list[float], int]:
    call = WireCall(FID, "ffn", 0, np.zeros(x.shape[0], np.int32), x)
    async with open_host() as server, open_host() as client_host:
        server.handle(PROTOCOL_ID, compute_handler(Echo()))
        await client_host.connect(server.addrs[0])
        c = ComputeClient(client_host)
        await c.open_session(server.peer_id, "bench")
        for _ in range(20):  # warm-up
            await c.compute(server.peer_id, "bench", [call])
        reused = []
        for _ in range(n):
            t0 = time.perf_counter()
            await c.compute(server.peer_id, "bench", [call])
            reused.append(time.perf_counter() - t0)
        wire_bytes = len(encode_frame(encode_request(1, "bench", "compute", [call])))
        await c.aclose()
        fresh = []
        for i in range(max(20, n // 5)):
            t0 = time.perf_counter()
            fs = FramedStream(await open_stream(client_host.host, server.peer_id, [PROTOCOL_ID]))
            await fs.send(encode_request(i + 1, "bench", "open"), 10)
            decode_response(await fs.recv(10))
            await fs.close()
            fresh.append(time.perf_counter() - t0)
    return reused, fresh, wire_bytes


async def main(args: argparse.Namespace) -> dict:
    rows = []
    for d in (640, 5376):
        x = np.random.default_rng(0).standard_normal((1, d)).astype(np.float32)
        reused, fresh, nbytes = await libp2p_rtts(x, args.n)
        tcp = await tcp_echo(b"\0" * nbytes, args.n)
        rows.append({"hidden": d, "request_bytes": nbytes, "tcp": summary(tcp), "reused": summary(reused),
                     "fresh": summary(fresh)})
    return {"rows": rows}


def print_table(res: dict) -> None:
    print(f"{'hidden':>6} {'bytes':>6} | {'trio TCP':>9} | {'reused':>9} {'p90':>7} {'× TCP':>6} | {'fresh stream':>12} {'× reused':>8}")
    for r in res["rows"]:
        t, u, f = r["tcp"]["median_ms"], r["reused"]["median_ms"], r["fresh"]["median_ms"]
        print(f"{r['hidden']:>6} {r['request_bytes']:>6} | {t:>7.3f}ms | {u:>7.3f}ms {r['reused']['p90_ms']:>5.2f}ms "
              f"{u / t:>6.1f} | {f:>10.3f}ms {f / u:>8.1f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=300, help="round trips per row")
    p.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "net_rtt.json")
    a = p.parse_args()
    quiet_libp2p_logs()
    result = trio.run(main, a)
    print_table(result)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.json.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(a.json)
