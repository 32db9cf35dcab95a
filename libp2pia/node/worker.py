"""The worker: serves compute on the fragments of a directory, found through the DHT.

Start-up, in this order (a peer is announced only when it can answer at full speed):

    1. open the store (manifest + fragment files within the storage budget, sha256-checked)
    2. build the shard objects the engine's local execution uses
    3. warm up: one throwaway call per shard (compiles/loads the quant kernels, pages the weights in)
    4. open the host, register /libp2pia/compute/1.0.0 and /libp2pia/fragment/1.0.0
    5. join the DHT through the bootstrap nodes, provide every fragment held, publish the manifest
    6. report readiness (task_status.started) and print a status line every `status_period`

Compute requests carry one phase's calls, or a run: consecutive dense phases whose shards are all
held here, computed with the core fragment's norms (engine.local.execute_run) so that a decode
step costs one round trip per worker instead of two per layer. Prompt-sized batches run in a
worker thread (`trio.to_thread.run_sync`) so the event loop keeps serving yamux window updates,
other peers and the DHT while numba kernels run; decode-sized ones run on the event loop (a
thread hand-off costs more than they do). One compute thread per worker: the machine's cores are
shared with the other peers.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import trio

from ..engine.interface import RunCall, RunPhase, ShardCall
from ..engine.loader import ManifestSource, client_data
from ..engine.local import close_session, execute, execute_all, execute_run
from ..errors import Libp2piaError, MissingFragment, NetworkError, PeerUnavailable, SessionError
from ..limits import (
    DEFAULT_CONTEXT_LENGTH, DEFAULT_HEARTBEAT_PERIOD_S, DEFAULT_WORKER_STORAGE_BYTES, INLINE_COMPUTE_MAX_ROWS,
    MAX_ANNOUNCED_ADDRS, MAX_ANNOUNCED_FRAGMENTS, PROVIDE_ATTEMPTS, PROVIDE_PARALLEL,
)
from ..model.attention import AttentionShard
from ..model.build import COMPUTE_ROLES, Shard, build_shard
from ..model.ffn import FFNShard
from ..model.residual import Residual
from ..model.vocab import VocabShard
from ..net.dht import Dht
from ..net.gossip import Gossip, Heartbeats
from ..net.relay import RelayClient
from ..net.host import DEFAULT_LISTEN, open_host
from ..net.rpc import PROTOCOL_ID as COMPUTE_PROTOCOL
from ..net.rpc import ServerStats, compute_handler
from ..net.transfer import PROTOCOL_ID as FRAGMENT_PROTOCOL
from ..net.transfer import fragment_handler
from ..wire.announce import Announcement
from ..wire.compute import WireCall, WireResult, WireRun, WireRunResult
from ..wire.tensor import wire_round
from .services import start_gossip
from .nat import worker_nat
from .store import FragmentStore

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Seconds between two status lines of a worker.
STATUS_PERIOD_S = 30.0


@dataclass
class WorkerConfig:
    fragments: Path
    bootstrap: Sequence[str] = ()
    storage: int = DEFAULT_WORKER_STORAGE_BYTES
    data_dir: Path | None = None
    listen: Sequence[str] = (DEFAULT_LISTEN,)
    context_limit: int = DEFAULT_CONTEXT_LENGTH
    status_period: float = STATUS_PERIOD_S
    publish_manifest: bool = False      # the bootstrap nodes publish it; N workers re-putting 64 KiB records swamp a small DHT
    heartbeat_period: float = DEFAULT_HEARTBEAT_PERIOD_S
    relays: Sequence[str] = ()            # reserve a slot on these (peers behind NAT reach us through them)
    extra: dict[str, Any] = field(default_factory=dict)   # added to the readiness line (e.g. node.acquire's report)


@dataclass
class WorkerInfo:
    """What a running worker reports when it is ready."""

    peer_id: str
    addrs: list[str]
    model_id: str
    fragments: list[str]
    bytes_held: int
    warmup_seconds: float
    joined: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**self.extra, "role": "worker", "peer_id": self.peer_id, "addrs": self.addrs, "model_id": self.model_id,
                "fragments": len(self.fragments), "bytes": self.bytes_held,
                "warmup_seconds": round(self.warmup_seconds, 3), "bootstrap_joined": self.joined}


def _warm_call(fid: str, shard: Shard, n_embd: int) -> ShardCall:
    pos = np.zeros(1, np.int32)
    x = np.zeros((1, n_embd), np.float32)
    if isinstance(shard, AttentionShard):
        return ShardCall(fid, "attention", shard.layer, pos, x)
    if isinstance(shard, FFNShard):
        return ShardCall(fid, "ffn", shard.layer, pos, x)
    if isinstance(shard, VocabShard):   # embedding-only shards (untied output) warm with a lookup
        if shard.output is None:
            return ShardCall(fid, "embed", None, pos, np.array([shard.row0], np.int32))
        return ShardCall(fid, "logits", None, pos, x)
    raise Libp2piaError(f"unknown shard type {type(shard).__name__}")


class _StoreSource(ManifestSource):
    """The store's directory as an engine source: fragments it does not hold (MoE routers, which
    only clients need) read as empty instead of failing."""

    held: set[str] = set()

    def tensors(self, index: int) -> dict[str, Any]:
        return super().tensors(index) if self.fragments[index]["id"] in self.held else {}


@dataclass
class Worker:
    """Compute service over the shards of one fragment store (implements net.rpc.ComputeService)."""

    store: FragmentStore
    shards: dict[str, Shard]
    n_embd: int
    residual: Residual | None = None      # the core fragment's norms: runs of consecutive phases
    sessions: dict[tuple[str, str], float] = field(default_factory=dict)   # (peer, session) -> opened at
    stats: ServerStats = field(default_factory=ServerStats)
    served_calls: int = 0
    limiter: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(1))

    @classmethod
    def load(cls, root: Path, storage: int = DEFAULT_WORKER_STORAGE_BYTES,
             context_limit: int = DEFAULT_CONTEXT_LENGTH) -> "Worker":
        """Open the store and build its shards (blocking: run before the event loop or in a thread)."""
        store = FragmentStore.open(Path(root), storage)
        src = _StoreSource(store.root, verify=False)            # the store already checked the hashes
        src.held = set(store.held)
        cfg, norms, _ = client_data(src, context_limit)
        shards: dict[str, Shard] = {}
        for i, entry in enumerate(src.fragments):
            if entry["id"] in store.held and entry["role"] in COMPUTE_ROLES:
                shards[entry["id"]] = build_shard(cfg, entry, src.tensors(i), norms, context_limit)
        return cls(store, shards, cfg.n_embd, Residual(cfg, norms))

    def warmup(self) -> float:
        """One throwaway call per shard: kernels compiled or loaded from numba's cache, weights paged in."""
        t0 = time.perf_counter()
        for fid, shard in self.shards.items():
            execute(shard, "warmup", _warm_call(fid, shard, self.n_embd))
            close_session(shard, "warmup")
        return time.perf_counter() - t0

    # --- ComputeService ---------------------------------------------------
    @staticmethod
    def _key(peer: str, session_id: str) -> str:
        return f"{peer}/{session_id}"        # sessions of different clients never share KV caches

    async def open_session(self, peer: str, session_id: str) -> None:
        self.sessions[(peer, session_id)] = time.monotonic()

    async def close_session(self, peer: str, session_id: str) -> None:
        if self.sessions.pop((peer, session_id), None) is not None:
            key = self._key(peer, session_id)
            for shard in self.shards.values():
                close_session(shard, key)

    def _check(self, peer: str, session_id: str, fragment_ids: Sequence[str]) -> None:
        if (peer, session_id) not in self.sessions:
            raise SessionError(f"session {session_id} is not open on this worker")
        for fid in fragment_ids:
            if fid not in self.shards:
                raise MissingFragment(fid, "not held by this worker")

    async def compute(self, peer: str, session_id: str, calls: list[WireCall]) -> list[WireResult]:
        self._check(peer, session_id, [c.fragment_id for c in calls])
        key = self._key(peer, session_id)
        shard_calls = [ShardCall(c.fragment_id, c.kind, c.layer, c.positions, c.x, c.weight, c.top_k, c.embeddings)
                       for c in calls]

        def work() -> list[WireResult]:
            return [WireResult(r.y, r.ids, r.embeddings)
                    for r in execute_all(self.shards.__getitem__, key, shard_calls)]

        ys = await self._compute(work, sum(len(c.positions) for c in calls))
        self.served_calls += len(calls)
        return ys

    async def run(self, peer: str, session_id: str, run: WireRun, dtype: str) -> WireRunResult:
        """Consecutive dense phases on held shards (engine.local.execute_run, rounding as the wire does)."""
        if self.residual is None:
            raise SessionError("this worker has no core data: it serves single phases only")
        self._check(peer, session_id, [f for ph in run.phases for f in ph.fragment_ids])
        key = self._key(peer, session_id)
        call = RunCall([RunPhase(ph.kind, ph.layer, ph.fragment_ids) for ph in run.phases], run.positions, run.h,
                       run.attention_inputs)

        def compute() -> WireRunResult:
            r = execute_run(self.shards.__getitem__, key, self.residual, call, lambda a: wire_round(a, dtype))
            return WireRunResult(r.h, r.attention_inputs)

        out = await self._compute(compute, len(run.positions))
        self.served_calls += sum(len(ph.fragment_ids) for ph in run.phases)
        return out

    async def _compute(self, fn: Callable[[], T], rows: int) -> T:
        if rows <= INLINE_COMPUTE_MAX_ROWS:
            return fn()     # a decode step: shorter than a thread hand-off (limits.INLINE_COMPUTE_MAX_ROWS)
        return await trio.to_thread.run_sync(fn, limiter=self.limiter)

    def status(self) -> str:
        return (f"{len(self.store.held)} fragments ({self.store.bytes_held / 2**20:.1f} MiB), "
                f"{len(self.sessions)} sessions, {self.stats.requests} requests / {self.served_calls} calls served, "
                f"{self.stats.errors} errors")

    # --- service ----------------------------------------------------------
    async def serve(self, cfg: WorkerConfig, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run the host until cancelled; ``task_status.started(WorkerInfo)`` once announced."""
        warm = await trio.to_thread.run_sync(self.warmup)
        async with open_host(cfg.listen, data_dir=cfg.data_dir) as net:
            net.handle(COMPUTE_PROTOCOL, compute_handler(self, self.stats))
            net.handle(FRAGMENT_PROTOCOL, fragment_handler(self.store.path))
            gossip = await start_gossip(net)                    # before any connection (pubsub greets on connect)
            nat = await worker_nat(net, cfg.relays) if cfg.relays else None
            dht = Dht(net, server=not (nat and nat.reachability == "private"))   # undialable: DHT client only
            joined = await dht.start(cfg.bootstrap)
            if cfg.bootstrap and not joined:
                raise PeerUnavailable(f"none of the {len(cfg.bootstrap)} bootstrap node(s) answered")
            await self._announce(dht, cfg)
            circuits = nat.circuits if nat else []   # node.nat reserved them if AutoNAT said private
            if gossip is not None:
                await self._heartbeats(gossip, net, cfg, circuits)
            info = WorkerInfo(net.peer_id.to_base58(), net.addrs, self.store.model_id, sorted(self.store.held),
                              self.store.bytes_held, warm, joined, {**cfg.extra, **(nat.to_json() if nat else {})})
            task_status.started(info)
            while True:
                await trio.sleep(cfg.status_period)
                print(f"worker {info.peer_id[-8:]}: {self.status()}", file=sys.stderr, flush=True)

    @staticmethod
    async def _reserve(net: Any, relays: Sequence[str]) -> list[str]:
        """Reserve a slot on each relay (best effort); returns our /p2p-circuit addresses."""
        if not relays:
            return []
        client = RelayClient(net)
        await client.start()
        out = []
        for addr in relays:
            try:
                out.append(await client.reserve(addr))
            except NetworkError as exc:
                log.warning("no reservation on relay %s: %s", addr, exc)
        return out

    async def _heartbeats(self, gossip: Gossip, net: Any, cfg: WorkerConfig, circuits: Sequence[str] = ()) -> None:
        """Announce (peer, addresses, fragments held, sessions) on the model's topic every period."""
        fragments = sorted(self.store.held)[:MAX_ANNOUNCED_FRAGMENTS]

        def announcement() -> Announcement:
            addrs = (net.addrs + list(circuits))[:MAX_ANNOUNCED_ADDRS]
            return Announcement("", "", 0, addrs=addrs, fragments=fragments,
                                load=float(self.limiter.borrowed_tokens), sessions=len(self.sessions))

        try:
            await Heartbeats(gossip, self.store.model_id, period=cfg.heartbeat_period).start(announcement)
        except NetworkError as exc:
            log.warning("heartbeats not started (DHT only): %s", exc)

    async def _announce(self, dht: Dht, cfg: WorkerConfig) -> None:
        """Provide every fragment held on the DHT (in parallel) and publish the manifest.

        Gossip heartbeats join here once libp2pia.net has them; until then the DHT is the directory.
        """
        # A provide that times out (a loaded machine, a worker behind NAT whose DHT queries go the long
        # way) is retried: a fragment without a provider record is invisible to clients that did not
        # hear this worker's announcements, and failover cannot reach a replica nobody knows about.
        todo = list(self.store.held)
        failed: list[str] = []
        limiter = trio.CapacityLimiter(PROVIDE_PARALLEL)

        async def provide(fid: str) -> None:
            async with limiter:
                try:
                    await dht.provide(fid)
                except PeerUnavailable as exc:
                    failed.append(fid)
                    log.info("provide %s: %s", fid[:12], exc)

        for _ in range(PROVIDE_ATTEMPTS):
            failed = []
            async with trio.open_nursery() as n:
                for fid in todo:
                    n.start_soon(provide, fid)
            if not failed:
                break
            todo = failed
        if cfg.publish_manifest:
            try:
                await dht.put_manifest(self.store.manifest)
            except PeerUnavailable as exc:
                log.warning("publish manifest: %s", exc)
        if failed:
            log.warning("%d of %d provider records not stored", len(failed), len(self.store.held))
