"""DHT: providers and manifests found through a bootstrap node; forged manifests rejected.

The bootstrap node, the provider and the forger are separate processes; the
client (this process) knows only the bootstrap node's address.
"""

from __future__ import annotations

import json

import multiaddr
import pytest
import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.records.utils import InvalidRecordType

from libp2pia.errors import ManifestError
from libp2pia.net.dht import Dht, ManifestValidator, dedupe_providers, make_validator
from libp2pia.net.host import open_host
from libp2pia.wire import libp2pia_pb2 as pb
from libp2pia.wire.manifest import encode_manifest_record, manifest_key, manifest_model_id
from netpeer import spawn

F1, F2, F3 = "a" * 64, "b" * 64, "c" * 64


def manifest(name: str) -> dict:
    m = {"format": "libp2pia-manifest", "format_version": 1, "architecture": name,
         "fragments": [{"id": F1, "bytes": 10}, {"id": F2, "bytes": 20}]}
    m["model_id"] = manifest_model_id(m)
    return m


def test_validator_accepts_only_content_matching_its_key() -> None:
    v = ManifestValidator()
    m = manifest("gemma3")
    v.validate(manifest_key(m["model_id"]), encode_manifest_record(m))
    forged = pb.ManifestRecord(model_id=m["model_id"], manifest_json=json.dumps({**m, "architecture": "x"}).encode())
    with pytest.raises(InvalidRecordType):
        v.validate(manifest_key(m["model_id"]), forged.SerializeToString())
    other = manifest("llama")
    with pytest.raises(InvalidRecordType):  # a valid record under someone else's key
        v.validate(manifest_key(m["model_id"]), encode_manifest_record(other))
    with pytest.raises(InvalidRecordType):
        v.validate("/pk/" + m["model_id"], encode_manifest_record(m))


def test_dedupe_providers_merges_addresses() -> None:
    a, b = ID(b"\x00\x01a"), ID(b"\x00\x01b")
    x, y = multiaddr.Multiaddr("/ip4/1.1.1.1/tcp/1"), multiaddr.Multiaddr("/ip4/2.2.2.2/tcp/2")
    out = dedupe_providers([PeerInfo(a, [x]), PeerInfo(b, [x]), PeerInfo(a, [x, y]), PeerInfo(a, [])])
    assert [(p.peer_id, p.addrs) for p in out] == [(a, [x, y]), (b, [x])]


@pytest.mark.parametrize("server", [True, False], ids=["server-mode", "client-mode"])
async def test_providers_and_manifest_found_through_the_bootstrap_node(tmp_path, server: bool) -> None:
    good, target = manifest("gemma3"), manifest("mixtral")
    (tmp_path / "good.json").write_text(json.dumps(good))
    (tmp_path / "target.json").write_text(json.dumps(target))
    with trio.fail_after(90):
        async with spawn("dht") as boot:
            b = boot["addrs"][0]
            async with spawn("dht", "--bootstrap", b, "--provide", F1, F2, "--manifest", str(tmp_path / "good.json")) as prov, \
                    spawn("dht", "--bootstrap", b, "--forge", str(tmp_path / "target.json")) as forger:
                async with open_host() as net:
                    dht = Dht(net, server=server)
                    assert await dht.start([b]) == 1
                    assert dht.routing_table_size >= 2  # the refresh found peers beyond the bootstrap node
                    for fid in (F1, F2):
                        providers = await dht.find_providers(fid)
                        ids = [p.peer_id.to_base58() for p in providers]
                        assert ids.count(prov["peer_id"]) == 1, ids
                    assert await dht.find_providers(F3) == []
                    # the provider is dialable from what the DHT says
                    info = next(p for p in await dht.find_providers(F1) if p.peer_id.to_base58() == prov["peer_id"])
                    await net.connect(info)
                    assert await dht.get_manifest(good["model_id"]) == good
                    # it hashes to its key but lacks the fields a client reads (role, class, slices, ...):
                    # the client's wait refuses it with one error naming the problem
                    with pytest.raises(ManifestError, match="malformed manifest"):
                        await dht.wait_manifest(good["model_id"], 5)
                    # a provider that appears later is found too (py-libp2p alone would answer
                    # from the entry it cached above)
                    async with spawn("dht", "--bootstrap", b, "--provide", F1) as late:
                        ids = {p.peer_id.to_base58() for p in await dht.find_providers(F1)}
                        assert {prov["peer_id"], late["peer_id"]} <= ids
                    # the forger's record was refused everywhere; the real one was never published
                    assert await dht.get_manifest(target["model_id"]) is None
                    assert forger["process"].returncode is None
                    # and we cannot publish a forged one ourselves either
                    with pytest.raises(InvalidRecordType):
                        rec = pb.ManifestRecord(model_id=good["model_id"], manifest_json=json.dumps({**good, "x": 1}).encode())
                        await dht.kad.put_value(manifest_key(good["model_id"]), rec.SerializeToString())


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _nested(depth: int) -> bytes:
    return ('{"x":' + "[" * depth + "]" * depth + "}").encode()


@settings(max_examples=200, deadline=None)
@given(key=st.one_of(st.text(max_size=100), st.just(manifest_key("a" * 64))),
       value=st.one_of(
           st.binary(max_size=400),
           st.binary(max_size=400).map(lambda j: pb.ManifestRecord(model_id="a" * 64, manifest_json=j).SerializeToString()),
           st.integers(1, 200_000).map(lambda d: pb.ManifestRecord(model_id="a" * 64,
                                                                   manifest_json=_nested(d)).SerializeToString()),
           st.just(b"\x00" * (1024 * 1024 + 1))))
def test_validator_refuses_garbage_with_its_one_error_type(key: str, value: bytes) -> None:
    """Whatever a peer stores or returns, the validator answers InvalidRecordType (anything else
    would escape into py-libp2p's DHT handler), never accepting it."""
    with pytest.raises(InvalidRecordType):
        ManifestValidator().validate(key, value)
    with pytest.raises(InvalidRecordType):
        make_validator().validate(key, value)
