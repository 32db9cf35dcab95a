"""A small libp2pia peer for network tests, run in its own process.

    python tests/netpeer.py ROLE [options]

It prints one JSON line ``{"peer_id": ..., "addrs": [...]}`` on stdout once it
is ready, then serves until killed (or until stdin closes). Tests start it
with :func:`spawn` and always kill and await it in ``finally``.
Roles: ``compute`` (ToyService on the compute protocol), ``dht`` (bootstrap,
provider, manifest publisher or forger), ``relay``, ``natworker`` and
``natclient`` (the NAT lab).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import trio

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from libp2pia.errors import RemoteError, SessionError  # noqa: E402
from libp2pia.wire.compute import WireCall, WireRun, WireRunResult  # noqa: E402

#: Fragment ids the toy service knows.
TOY_FRAGMENTS = ("1" * 64, "2" * 64)


class ToyService:
    """y = 2 x + layer (embed: the token ids as a column). Sessions must be opened first."""

    def __init__(self) -> None:
        self.sessions: set[tuple[str, str]] = set()
        self.calls = 0

    async def open_session(self, peer: str, session_id: str) -> None:
        self.sessions.add((peer, session_id))

    async def close_session(self, peer: str, session_id: str) -> None:
        self.sessions.discard((peer, session_id))

    async def compute(self, peer: str, session_id: str, calls: list[WireCall]) -> list[np.ndarray]:
        if (peer, session_id) not in self.sessions:
            raise SessionError(f"session {session_id} is not open")
        out = []
        for c in calls:
            if c.fragment_id not in TOY_FRAGMENTS:
                raise RemoteError("UNKNOWN_SHARD", "not held here")
            self.calls += 1
            x = c.x.astype(np.float32).reshape(len(c.positions), -1)
            out.append(2 * x + c.layer)
        return out

    async def run(self, peer: str, session_id: str, run: WireRun, dtype: str) -> WireRunResult:
        """Toy run: h += layer per fragment of each phase; an attention phase's input is h before it."""
        if (peer, session_id) not in self.sessions:
            raise SessionError(f"session {session_id} is not open")
        h, inputs = run.h.astype(np.float32), []
        for ph in run.phases:
            if ph.kind == "attention" and run.attention_inputs:
                inputs.append(h.copy())
            for fid in ph.fragment_ids:
                if fid not in TOY_FRAGMENTS:
                    raise RemoteError("UNKNOWN_SHARD", "not held here")
                self.calls += 1
                h = h + ph.layer
        return WireRunResult(h, inputs)


# ---------------------------------------------------------------- parent side


@contextlib.asynccontextmanager
async def spawn(*args: str, ready_timeout: float = 30.0, prefix: list[str] | None = None) -> AsyncIterator[dict]:
    """Start ``netpeer.py ARGS`` and yield its ready line (plus ``"process"``); always kill it.

    ``prefix`` runs it under another command (``ip netns exec NS`` in the NAT lab).
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await trio.lowlevel.open_process(
        [*(prefix or []), sys.executable, str(Path(__file__).resolve()), *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
    )
    try:
        buf = b""
        with trio.fail_after(ready_timeout):
            while b"\n" not in buf:
                chunk = await proc.stdout.receive_some(4096)
                if not chunk:
                    raise RuntimeError(f"netpeer {args[0]} exited before it was ready (rc {await proc.wait()})")
                buf += chunk
        info = json.loads(buf.split(b"\n", 1)[0])
        info["process"] = proc
        yield info
    finally:
        with trio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            for s in (proc.stdin, proc.stdout):
                if s is not None:
                    await s.aclose()


@contextlib.contextmanager
def spawn_sync(*args: str, ready_timeout: float = 30.0) -> Iterator[dict]:
    """Like :func:`spawn`, for module-scoped (synchronous) fixtures."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], ready_timeout)
        line = proc.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError(f"netpeer {args[0]} not ready within {ready_timeout} s (rc {proc.poll()})")
        info = json.loads(line)
        info["process"] = proc
        yield info
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdin.close()
        proc.stdout.close()


# ---------------------------------------------------------------- child side


def _ready(net, **extra: object) -> None:  # noqa: ANN001
    print(json.dumps({"peer_id": net.peer_id.to_base58(), "addrs": net.addrs, **extra}), flush=True)


async def _wait_stdin_closed() -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    async with stdin:
        while await stdin.receive_some(1024):
            pass


async def role_compute(args: argparse.Namespace) -> None:
    from libp2pia.net.host import open_host
    from libp2pia.net.rpc import PROTOCOL_ID, compute_handler

    async with open_host() as net:
        net.handle(PROTOCOL_ID, compute_handler(ToyService()))
        _ready(net)
        await _wait_stdin_closed()


async def role_dht(args: argparse.Namespace) -> None:
    """A DHT server: joins --bootstrap, provides --provide ids, publishes --manifest files.

    --forge FILE publishes the manifest in FILE with its content altered after
    hashing, through a DHT whose validator accepts anything (an attacker).
    """
    from libp2p.records.validator import NamespacedValidator

    from libp2pia.net.dht import Dht
    from libp2pia.net.host import open_host
    from libp2pia.wire import libp2pia_pb2 as pb
    from libp2pia.wire.manifest import MANIFEST_NAMESPACE, manifest_key

    class AcceptAll:
        def validate(self, key, value):  # noqa: ANN001, ANN201
            pass

        def select(self, key, values):  # noqa: ANN001, ANN201
            return 0

    async with open_host() as net:
        if args.gossip:  # before any connection: py-libp2p's pubsub greets peers only on connect
            from libp2pia.net.gossip import Gossip, Heartbeats
            from libp2pia.wire.announce import Announcement

            gossip = Gossip(net)
            await gossip.start()
            hb = Heartbeats(gossip, args.gossip, period=args.period)
            frags = list(args.provide)
            await hb.start((lambda: Announcement("", "", 0, net.addrs, frags)) if args.announce else None)
        dht = Dht(net)
        if args.forge:
            dht.kad.validator = NamespacedValidator({MANIFEST_NAMESPACE: AcceptAll()}, strict_validation=False)
        await dht.start(args.bootstrap, refresh_period=args.refresh)
        for fid in args.provide:
            await dht.provide(fid)
        for path in args.manifest:
            await dht.put_manifest(json.loads(Path(path).read_text()))
        for path in args.forge:
            m = json.loads(Path(path).read_text())
            forged = {**m, "architecture": "forged"}  # model_id kept: content no longer hashes to it
            rec = pb.ManifestRecord(model_id=m["model_id"], manifest_json=json.dumps(forged).encode())
            await dht.kad.put_value(manifest_key(m["model_id"]), rec.SerializeToString())
        _ready(net, routing_table=dht.routing_table_size)
        await _wait_stdin_closed()


async def role_relay(args: argparse.Namespace) -> None:
    """A public relay (circuit v2 hop) that also answers AutoNAT dial-backs."""
    from libp2pia.net.host import open_host
    from libp2pia.net.relay import Reachability, start_relay_hop

    async with open_host([f"/ip4/{args.ip}/tcp/0"]) as net:
        await start_relay_hop(net)
        Reachability(net)
        _ready(net)
        await _wait_stdin_closed()


async def role_natworker(args: argparse.Namespace) -> None:
    """A compute worker that checks its reachability and reserves a slot on --relay."""
    from libp2pia.net.host import open_host
    from libp2pia.net.relay import Reachability, RelayClient, start_dcutr
    from libp2pia.net.rpc import PROTOCOL_ID, compute_handler

    async with open_host([f"/ip4/{args.ip}/tcp/0"]) as net:
        net.handle(PROTOCOL_ID, compute_handler(ToyService()))
        reach = Reachability(net)
        relay = RelayClient(net)
        await relay.start()
        await start_dcutr(net)
        relay_id = await net.connect(args.relay[0])
        status = await reach.check([relay_id])
        circuit = await relay.reserve(args.relay[0])
        _ready(net, reachability=status, circuit=circuit)
        await _wait_stdin_closed()


async def role_natclient(args: argparse.Namespace) -> None:
    """Dial --target (a circuit address), time compute round trips relayed, then after DCUtR."""
    import time

    from libp2pia.net.host import open_host, stream_kind
    from libp2pia.net.relay import RelayClient, connect_any, connection_kinds, start_dcutr
    from libp2pia.net.rpc import ComputeClient

    async with open_host([f"/ip4/{args.ip}/tcp/0"]) as net:
        relay = RelayClient(net)
        await relay.start()
        await start_dcutr(net)
        pid = await connect_any(net, args.target, relay, timeout=15)
        kinds_first = connection_kinds(net, pid)
        client = ComputeClient(net)
        x = np.ones((1, 640), np.float32)
        call = WireCall(TOY_FRAGMENTS[0], "ffn", 1, np.zeros(1, np.int32), x)
        kinds: list[str] = []  # the connection kind each measurement's stream ran on

        async def measure(n: int) -> float:
            await client.open_session(pid, f"s{time.monotonic_ns()}")
            out = []
            sid = next(iter(k[1] for k in client._channels if k[0] == pid))  # noqa: SLF001 - test helper
            for _ in range(n):
                t0 = time.perf_counter()
                (y,) = await client.compute(pid, sid, [call])
                out.append(time.perf_counter() - t0)
            assert float(y[0, 0]) == 3.0
            kinds.append(stream_kind(client._channels[(pid, sid)].stream.stream))  # noqa: SLF001
            await client.close_session(pid, sid)
            return 1e3 * sorted(out)[len(out) // 2]

        rtt_first = await measure(30)
        with trio.move_on_after(args.wait_direct):
            while "direct" not in connection_kinds(net, pid):
                await trio.sleep(0.2)
        kinds_after = connection_kinds(net, pid)
        rtt_after = await measure(30)
        await client.aclose()
        print(json.dumps({"peer_id": pid.to_base58(), "kinds_first": kinds_first, "rtt_first_ms": rtt_first,
                          "kinds_after": kinds_after, "rtt_after_ms": rtt_after,
                          "stream_kinds": kinds}), flush=True)
        await _wait_stdin_closed()


ROLES = {"compute": role_compute, "dht": role_dht, "relay": role_relay, "natworker": role_natworker,
         "natclient": role_natclient}


def main() -> None:
    from libp2pia.net.host import quiet_libp2p_logs

    p = argparse.ArgumentParser()
    p.add_argument("role", choices=sorted(ROLES))
    p.add_argument("--bootstrap", nargs="*", default=[])
    p.add_argument("--provide", nargs="*", default=[])
    p.add_argument("--manifest", nargs="*", default=[])
    p.add_argument("--forge", nargs="*", default=[])
    p.add_argument("--refresh", type=float, default=60.0, help="DHT refresh period (s)")
    p.add_argument("--gossip", metavar="MODEL_ID", help="join the heartbeat topic of this model")
    p.add_argument("--announce", action="store_true", help="publish heartbeats (fragments = --provide)")
    p.add_argument("--period", type=float, default=30.0, help="heartbeat period (s)")
    p.add_argument("--ip", default="127.0.0.1", help="address to listen on")
    p.add_argument("--relay", nargs="*", default=[])
    p.add_argument("--target", nargs="*", default=[])
    p.add_argument("--wait-direct", type=float, default=15.0, help="how long to wait for DCUtR (s)")
    args = p.parse_args()
    quiet_libp2p_logs()
    trio.run(ROLES[args.role], args)


if __name__ == "__main__":
    main()
