"""The network client: join, find the model, fetch its core, drive the engine over the network.

    async with NetworkClient.connect(ClientConfig(bootstrap=[...], model_id=...)) as client:
        async for tok in client.stream(client.encode("Hello"), 32):
            print(tok.text, end="")

Joining, in this order (every step bounded):

| step | what                                                                                  |
|------|---------------------------------------------------------------------------------------|
| 1    | open a host, join the DHT through the bootstrap nodes (none answering → PeerUnavailable) |
| 2    | the manifest by model id from the DHT (validated: its content hashes to the id)        |
| 3    | the providers of every fragment (DHT), until each has one or the deadline passes       |
| 4    | core + router fragments downloaded from a provider (sha256-checked) into the cache     |
| 5    | tokenizer + config + norms from them; Engine over NetworkBackend                       |
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import multiaddr
import trio

from ..default_model import cache_dir
from ..engine.client import Engine
from ..engine.generation import Generation, GenerationResult
from ..engine.loader import ManifestSource, client_data
from ..errors import Libp2piaError, MissingFragment, NetworkError, PeerUnavailable
from ..limits import DEFAULT_CONTEXT_LENGTH, DEFAULT_HEARTBEAT_PERIOD_S, REDISCOVER_TIMEOUT_S
from ..model.layout import ModelLayout
from ..model.sampling import SamplingParams
from ..model.tokenizer import Tokenizer
from ..net.dht import Dht
from ..net.framed import to_peer_id
from ..net.gossip import Heartbeats
from ..net.peers import PeerTable
from ..net.host import DEFAULT_LISTEN, NetHost, open_host
from ..net.rpc import ComputeClient
from ..net.transfer import fetch_from_any
from ..wire.manifest import canonical_json
from .backend import NetworkBackend
from .failover import FailoverBackend
from .nat import nat_reacher
from .services import start_gossip

log = logging.getLogger(__name__)

#: How long a client keeps looking for the manifest and for a provider of every fragment
#: (workers announce within seconds of each other; a swarm may still be starting).
DISCOVERY_DEADLINE_S = 60.0
#: Pause between two discovery rounds.
DISCOVERY_RETRY_S = 0.5
#: Concurrent provider lookups (each is a few DHT round trips).
MAX_PARALLEL_LOOKUPS = 16
#: How long provider addresses stay in the peer store.
PROVIDER_ADDR_TTL_S = 3600


@dataclass
class ClientConfig:
    bootstrap: Sequence[str]
    model_id: str
    data_dir: Path | None = None          # core fragment cache (default: the libp2pia cache)
    listen: Sequence[str] = (DEFAULT_LISTEN,)
    wire_dtype: str = "float16"             # activations on the wire (issue 5); "float32": bit-equal to local
    context_limit: int = DEFAULT_CONTEXT_LENGTH
    discovery_deadline: float = DISCOVERY_DEADLINE_S
    heartbeat_period: float = DEFAULT_HEARTBEAT_PERIOD_S
    relays: Sequence[str] = ()            # relay multiaddrs: peers behind NATs are reached through them
    hole_punch: bool = True               # DCUtR (False keeps relayed links relayed: benchmarks)
    runs: bool = True                     # consecutive layers held by one worker go in one request


@dataclass
class Token:
    """One generated token: its id and the text it completes (may be '' mid-character)."""

    id: int
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class RunStats:
    tokens: int = 0
    prompt_seconds: float = 0.0
    decode_seconds: float = 0.0
    peers: list[str] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        steps = max(self.tokens - 1, 0)
        return steps / self.decode_seconds if self.decode_seconds > 0 else 0.0


async def find_providers(dht: Dht, fragment_ids: Sequence[str], deadline: float, self_id: str,
                         table: PeerTable | None = None) -> dict[str, list[str]]:
    """fragment id -> peer ids: DHT lookups in parallel rounds, plus the holders heard on gossip
    (``table``), until every fragment has a holder or the deadline passes."""
    found: dict[str, list[str]] = {}
    store = dht.net.host.get_peerstore()
    limiter = trio.CapacityLimiter(MAX_PARALLEL_LOOKUPS)

    def from_gossip() -> None:
        for fid in fragment_ids:
            for pid in table.holders(fid) if table is not None else ():
                rec = table.get(pid)  # type: ignore[union-attr]
                with contextlib.suppress(Exception):  # a malformed announced address is skipped
                    store.add_addrs(to_peer_id(pid), [multiaddr.Multiaddr(a) for a in rec.addrs],
                                    PROVIDER_ADDR_TTL_S)
                if pid != self_id and pid not in found.get(fid, []):
                    found.setdefault(fid, []).append(pid)

    async def lookup(fid: str) -> None:
        async with limiter:
            try:
                infos = await dht.find_providers(fid)
            except NetworkError as exc:
                log.debug("find providers %s: %s", fid[:12], exc)
                return
        peers = []
        for info in infos:
            pid = info.peer_id.to_base58()
            if pid == self_id:
                continue
            if info.addrs:
                store.add_addrs(info.peer_id, info.addrs, PROVIDER_ADDR_TTL_S)
            peers.append(pid)
        if peers:
            found[fid] = sorted(set(found.get(fid, [])) | set(peers))

    end = time.monotonic() + deadline
    while True:
        from_gossip()
        todo = [f for f in fragment_ids if f not in found]
        async with trio.open_nursery() as n:
            for fid in todo:
                n.start_soon(lookup, fid)
        from_gossip()
        missing = [f for f in fragment_ids if f not in found]
        if not missing or time.monotonic() > end:
            return found
        await trio.sleep(DISCOVERY_RETRY_S)


def _write_json(path: Path, obj: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(canonical_json(dict(obj)))
    os.replace(tmp, path)


@contextlib.contextmanager
def unwrap_errors() -> Iterator[None]:
    """Re-raise a libp2pia error that trio nurseries wrapped in single-member exception groups."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, Libp2piaError):
            raise leaf from group
        raise


class NetworkClient:
    """A joined client: tokenizer + engine over the network. Use :meth:`connect`."""

    def __init__(self, net: NetHost, dht: Dht, manifest: dict[str, Any], tokenizer: Tokenizer,
                 layout: ModelLayout, backend: NetworkBackend) -> None:
        self.net, self.dht, self.manifest = net, dht, manifest
        self.tokenizer = tokenizer
        self.layout = layout
        self.backend = backend
        self.engine = Engine(layout, backend)
        self.last = RunStats()

    @property
    def model_id(self) -> str:
        return str(self.manifest["model_id"])

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, cfg: ClientConfig) -> AsyncIterator["NetworkClient"]:
        """Join and yield a ready client; our errors come out bare (not wrapped in nursery groups)."""
        with unwrap_errors():
            async with cls._connect(cfg) as client:
                yield client

    @classmethod
    @contextlib.asynccontextmanager
    async def _connect(cls, cfg: ClientConfig) -> AsyncIterator["NetworkClient"]:
        async with open_host(cfg.listen) as net:
            gossip = await start_gossip(net)                    # before any connection
            dht = Dht(net, server=False)
            if not cfg.bootstrap:
                raise PeerUnavailable("a client needs at least one bootstrap address")
            if not await dht.start(cfg.bootstrap):
                raise PeerUnavailable(f"none of the bootstrap nodes answered: {', '.join(cfg.bootstrap)}")
            manifest = await dht.wait_manifest(cfg.model_id, cfg.discovery_deadline)
            heartbeats = None
            if gossip is not None:
                heartbeats = Heartbeats(gossip, manifest["model_id"], period=cfg.heartbeat_period)
                try:
                    await heartbeats.start()                    # listen only: who is alive, who holds what
                except NetworkError as exc:
                    log.warning("heartbeats unavailable (DHT only): %s", exc)
                    heartbeats = None
            ids = [f["id"] for f in manifest["fragments"]]
            providers = await find_providers(dht, ids, cfg.discovery_deadline, net.peer_id.to_base58(),
                                             heartbeats.table if heartbeats else None)
            missing = [f for f in ids if f not in providers]
            if missing:
                raise MissingFragment(missing[0], f"{len(missing)} of {len(ids)} fragments have no provider "
                                                  f"after {cfg.discovery_deadline:.0f} s")
            reach = await nat_reacher(net, cfg.relays, cfg.hole_punch, providers)   # NAT'd holders, via relays
            root = await cls._fetch_core(net, manifest, providers, cfg)
            src = ManifestSource(root)
            model_cfg, norms, routers = client_data(src, cfg.context_limit)
            layout = ModelLayout.from_fragments(model_cfg, manifest["fragments"], norms, routers)
            tokenizer = Tokenizer.from_metadata(src.metadata)
            rpc = ComputeClient(net, observer=heartbeats.observe if heartbeats else None)
            table = heartbeats.table if heartbeats else None

            async def rediscover(fid: str) -> list[str]:
                fresh = await find_providers(dht, [fid], REDISCOVER_TIMEOUT_S, net.peer_id.to_base58(), table)
                return fresh.get(fid, [])

            backend = FailoverBackend(rpc, providers, cfg.wire_dtype, table, order=layout.run_order(), runs=cfg.runs,
                                      reach=reach, rediscover=rediscover)
            try:
                yield cls(net, dht, manifest, tokenizer, layout, backend)
            finally:
                with trio.CancelScope(shield=True):
                    await rpc.aclose()

    @staticmethod
    async def _fetch_core(net: NetHost, manifest: dict[str, Any], providers: Mapping[str, list[str]],
                          cfg: ClientConfig) -> Path:
        """A directory with manifest.json and the core/router fragment files (downloaded once, cached)."""
        root = (cfg.data_dir or cache_dir() / "client") / "models" / manifest["model_id"]
        root.mkdir(parents=True, exist_ok=True)
        for entry in manifest["fragments"]:
            if entry["role"] in ("core", "router") and not (root / entry["file"]).exists():
                await fetch_from_any(net, providers[entry["id"]], entry["id"], root,
                                     expected_bytes=int(entry["bytes"]))
        if not (root / "manifest.json").exists():
            _write_json(root / "manifest.json", manifest)
        return root

    # --- generation ---------------------------------------------------------
    def encode(self, text: str, *, chat: bool = False, system: str | None = None) -> list[int]:
        if not chat:
            return self.tokenizer.encode(text)
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
        return self.tokenizer.encode_chat(msgs)

    async def stream(self, prompt: Sequence[int], max_new_tokens: int, params: SamplingParams | None = None, *,
                     stop_strings: Sequence[str] = (),
                     on_result: Callable[[GenerationResult], None] | None = None) -> AsyncIterator[Token]:
        """Generate in a fresh session, yielding tokens as they arrive (end-of-generation ids not shown)."""
        (params or SamplingParams()).validate()
        session = await self.engine.open_session()
        if hasattr(self.backend, "track"):   # failover replays the engine's attention history
            self.backend.track(session)
        self.last = RunStats(peers=self.backend.used_peers(session.id))
        try:
            gen = Generation(self.engine, session, prompt, max_new_tokens, params, eog=self.tokenizer.eos_ids,
                             stop_strings=stop_strings, decode=self.tokenizer.decode)
            dec = self.tokenizer.stream()
            async for step in gen.stream():
                self.last.tokens += 1
                if not self.tokenizer.is_eog(step.id):
                    yield Token(step.id, dec.feed(step.id))
            tail = dec.flush()
            if tail:
                yield Token(-1, tail)
            result = gen.result()
            self.last.prompt_seconds, self.last.decode_seconds = result.prompt_seconds, result.decode_seconds
            if on_result is not None:
                on_result(result)
        finally:
            with trio.CancelScope(shield=True):
                await self.engine.close_session(session)

    async def generate(self, prompt: Sequence[int], max_new_tokens: int,
                       params: SamplingParams | None = None, **kwargs: Any) -> GenerationResult:
        """Collect a whole generation (prompt ids in, GenerationResult out)."""
        results: list[GenerationResult] = []
        async for _ in self.stream(prompt, max_new_tokens, params, on_result=results.append, **kwargs):
            pass
        return results[0]


def parse_addrs(addrs: Sequence[str]) -> list[str]:
    """Check bootstrap multiaddrs up front (a typo → one clear error, not a libp2p traceback)."""
    out = []
    for a in addrs:
        try:
            ma = multiaddr.Multiaddr(a)
            ma.get_peer_id() if hasattr(ma, "get_peer_id") else None
        except Exception as exc:  # noqa: BLE001 - multiaddr raises several types
            raise PeerUnavailable(f"not a multiaddr: {a!r} ({exc})") from exc
        if "/p2p/" not in a:
            raise PeerUnavailable(f"bootstrap address {a!r} lacks /p2p/<peer id>")
        out.append(a)
    return out
