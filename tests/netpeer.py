"""A small libp2pia peer for network tests, run in its own process.

    python tests/netpeer.py ROLE [options]

It prints one JSON line ``{"peer_id": ..., "addrs": [...]}`` on stdout once it
is ready, then serves until killed (or until stdin closes). Tests start it
with :func:`spawn` and always kill and await it in ``finally``.
Roles: ``compute`` (ToyService on the compute protocol), ``dht`` (bootstrap,
provider, manifest publisher or forger).
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
from libp2pia.wire.compute import WireCall  # noqa: E402

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


# ---------------------------------------------------------------- parent side


@contextlib.asynccontextmanager
async def spawn(*args: str, ready_timeout: float = 30.0) -> AsyncIterator[dict]:
    """Start ``netpeer.py ARGS`` and yield its ready line (plus ``"process"``); always kill it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await trio.lowlevel.open_process(
        [sys.executable, str(Path(__file__).resolve()), *args],
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
    from libp2pia.wire.manifest import MANIFEST_NAMESPACE, canonical_json, manifest_key

    class AcceptAll:
        def validate(self, key, value):  # noqa: ANN001, ANN201
            pass

        def select(self, key, values):  # noqa: ANN001, ANN201
            return 0

    async with open_host() as net:
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
            rec = pb.ManifestRecord(model_id=m["model_id"], manifest_json=canonical_json(forged))
            await dht.kad.put_value(manifest_key(m["model_id"]), rec.SerializeToString())
        _ready(net, routing_table=dht.routing_table_size)
        await _wait_stdin_closed()


ROLES = {"compute": role_compute, "dht": role_dht}


def main() -> None:
    from libp2pia.net.host import quiet_libp2p_logs

    p = argparse.ArgumentParser()
    p.add_argument("role", choices=sorted(ROLES))
    p.add_argument("--bootstrap", nargs="*", default=[])
    p.add_argument("--provide", nargs="*", default=[])
    p.add_argument("--manifest", nargs="*", default=[])
    p.add_argument("--forge", nargs="*", default=[])
    p.add_argument("--refresh", type=float, default=60.0, help="DHT refresh period (s)")
    args = p.parse_args()
    quiet_libp2p_logs()
    trio.run(ROLES[args.role], args)


if __name__ == "__main__":
    main()
