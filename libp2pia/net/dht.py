"""Kademlia DHT for libp2pia: fragment providers and model manifests.

| record                | key                                  | value                         |
|-----------------------|--------------------------------------|-------------------------------|
| provider of a fragment| the fragment's sha256 (32 raw bytes) | the provider's PeerInfo        |
| model manifest        | ``/libp2pia-manifest/<model_id>``    | ManifestRecord (canonical JSON)|

py-libp2p traps handled here (reference/py-libp2p-notes.md §4.5): the DHT does
not bootstrap itself (we connect, ``add_peer`` and refresh on start, then every
DHT_REFRESH_PERIOD_S); validation is strict (only our namespace, each record
must hash to its key, checked on PUT from peers and on every GET answer);
``find_providers`` returns duplicates, which we drop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import trio
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.records.utils import InvalidRecordType
from libp2p.records.validator import NamespacedValidator, Validator

from ..errors import NetworkError, PeerUnavailable, ProtocolError
from ..fragments.manifest import check_fields
from ..limits import DHT_QUERY_TIMEOUT_S, DHT_REFRESH_PERIOD_S, DHT_REFRESH_TIMEOUT_S
from ..wire.compute import check_fragment_id
from ..wire.manifest import MANIFEST_NAMESPACE, decode_manifest_record, encode_manifest_record, manifest_key
from .framed import LINK_ERRORS, translate_link_errors
from .host import NetHost

log = logging.getLogger(__name__)


class ManifestValidator(Validator):
    """Accept a manifest record only if its content hashes to the model id in its key."""

    def validate(self, key: str, value: bytes) -> None:
        prefix = f"/{MANIFEST_NAMESPACE}/"
        if not key.startswith(prefix):
            raise InvalidRecordType(f"key {key[:80]!r} is not in /{MANIFEST_NAMESPACE}/")
        try:
            decode_manifest_record(value, key[len(prefix):])
        except ProtocolError as exc:
            raise InvalidRecordType(f"manifest record rejected: {exc}") from exc

    def select(self, key: str, values: list[bytes]) -> int:
        # Every valid value under one key is byte-identical (content addressed): any will do.
        return 0


def make_validator() -> NamespacedValidator:
    """Our namespace only; everything else (including /pk and /ipns) is refused."""
    return NamespacedValidator({MANIFEST_NAMESPACE: ManifestValidator()}, strict_validation=True)


def dedupe_providers(infos: Sequence[PeerInfo]) -> list[PeerInfo]:
    """One PeerInfo per peer id (first seen wins), with the union of their addresses."""
    out: dict[Any, PeerInfo] = {}
    for info in infos:
        seen = out.get(info.peer_id)
        if seen is None:
            out[info.peer_id] = PeerInfo(info.peer_id, list(info.addrs))
        else:
            seen.addrs.extend(a for a in info.addrs if a not in seen.addrs)
    return list(out.values())


class Dht:
    """A KadDHT in SERVER mode (or CLIENT for peers that cannot be dialed) with our validator."""

    def __init__(self, net: NetHost, *, server: bool = True,
                 query_timeout: float = DHT_QUERY_TIMEOUT_S) -> None:
        self.net = net
        self.query_timeout = query_timeout
        self.kad = KadDHT(net.host, DHTMode.SERVER if server else DHTMode.CLIENT, validator=make_validator(),
                          validator_changed=True, strict_validation=True)

    @property
    def routing_table_size(self) -> int:
        return self.kad.get_routing_table_size()

    async def start(self, bootstrap: Sequence[str] = (), *, refresh_period: float = DHT_REFRESH_PERIOD_S) -> int:
        """Run the DHT, join through ``bootstrap`` and keep the routing table fresh.

        Returns how many bootstrap peers answered. Unreachable ones are logged,
        not fatal (a bootstrap node may itself start with none).
        """
        await self.net.start_service(self.kad)
        joined = await self.join(bootstrap)
        self.net.nursery.start_soon(self._refresh_loop, refresh_period)
        return joined

    async def join(self, bootstrap: Sequence[str]) -> int:
        ok = 0
        for addr in bootstrap:
            try:
                pid = await self.net.connect(addr)
            except PeerUnavailable as exc:
                log.warning("bootstrap %s unreachable: %s", addr, exc)
                continue
            await self.kad.add_peer(pid, skip_server_mode_check=True)
            ok += 1
        if ok:
            await self.refresh()
        return ok

    async def refresh(self) -> None:
        """Fill the routing table from the peers we know (bounded; failures logged)."""
        try:
            with translate_link_errors("DHT refresh", DHT_REFRESH_TIMEOUT_S):
                await self.kad.refresh_routing_table()
        except PeerUnavailable as exc:
            log.info("%s", exc)

    async def _refresh_loop(self, period: float) -> None:
        while True:
            await trio.sleep(period)
            await self.refresh()

    async def provide(self, fragment_id: str) -> bool:
        """Announce that this peer holds ``fragment_id``."""
        with translate_link_errors(f"provide {fragment_id[:12]}", self.query_timeout):
            return bool(await self.kad.provide(check_fragment_id(fragment_id)))

    async def find_providers(self, fragment_id: str, count: int = 20, *, fresh: bool = True) -> list[PeerInfo]:
        """Peers providing ``fragment_id``, one entry per peer (may include ourselves).

        py-libp2p answers from its local provider store whenever that has any
        entry, so a provider that appeared later is never seen (a CLIENT-mode
        node gets no ADD_PROVIDER pushes). With ``fresh`` we also ask the peers
        closest to the key and merge their answers with the local ones.
        """
        key_hex = check_fragment_id(fragment_id)
        with translate_link_errors(f"find providers of {fragment_id[:12]}", self.query_timeout):
            found = list(await self.kad.find_providers(key_hex, count))
            if fresh:
                found += await self._ask_closest(bytes.fromhex(key_hex))
        return dedupe_providers(found)[:count]

    async def _ask_closest(self, key: bytes) -> list[PeerInfo]:
        store = self.kad.provider_store
        ask = getattr(store, "_get_providers_from_peer_with_closers", None)  # py-libp2p 0.8 internals
        if ask is None:
            return []
        me = self.net.peer_id
        peers = [p for p in await self.kad.peer_routing.find_closest_peers_network(key) if p != me]
        out: list[PeerInfo] = []

        async def one(peer: ID) -> None:
            with trio.move_on_after(self.query_timeout / 2):
                try:
                    providers, _ = await ask(peer, key)
                except LINK_ERRORS as exc:
                    log.debug("GET_PROVIDERS to %s failed: %s", peer, exc)
                    return
                for info in providers:
                    store.add_provider(key, info)  # keep the local cache current too
                out.extend(providers)

        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(one, peer)
        return out

    async def put_manifest(self, manifest: dict[str, Any]) -> str:
        """Publish ``manifest`` under its model id; returns the model id."""
        value = encode_manifest_record(manifest)
        mid = decode_manifest_record(value)["model_id"]
        try:
            with translate_link_errors(f"publish manifest {mid[:12]}", self.query_timeout):
                await self.kad.put_value(manifest_key(mid), value)
        except (InvalidRecordType, ValueError) as exc:
            raise NetworkError(f"manifest {mid[:12]} refused by the local DHT: {exc}") from exc
        return mid

    async def get_manifest(self, model_id: str) -> dict[str, Any] | None:
        """The manifest published under ``model_id``, validated; None if nobody has it."""
        key = manifest_key(model_id)
        with translate_link_errors(f"get manifest {model_id[:12]}", self.query_timeout):
            value = await self.kad.get_value(key)
        if value is None:
            return None
        return decode_manifest_record(value, model_id)  # the DHT validated it; check again, cheaply

    async def wait_manifest(self, model_id: str, deadline_s: float, poll_s: float = 0.5) -> dict[str, Any]:
        """Poll for the manifest of ``model_id`` until it appears (a bootstrap node may publish it a moment
        after we join); NetworkError naming the model once ``deadline_s`` has passed."""
        end = trio.current_time() + deadline_s
        while True:
            try:
                manifest = await self.get_manifest(model_id)
            except NetworkError as exc:
                log.debug("get manifest: %s", exc)
                manifest = None
            if manifest is not None:
                # The content hashes to its key, but a producer may still have written garbage fields:
                # one ManifestError naming the field, not a KeyError deep in the client.
                check_fields(manifest, f"manifest of model {model_id[:16]}…", complete=True)
                return manifest
            if trio.current_time() > end:
                raise NetworkError(f"model {model_id[:16]}… not found on the network (no manifest record "
                                   f"after {deadline_s:.0f} s)")
            await trio.sleep(poll_s)
