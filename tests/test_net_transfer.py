"""Fragment transfer: chunked, hash-checked, atomic; a corrupt provider is skipped."""

from __future__ import annotations

import hashlib
import os

import pytest
import trio

from libp2pia.errors import FragmentError, MissingFragment, ProtocolError, RemoteError
from libp2pia.limits import FRAGMENT_CHUNK_BYTES
from libp2pia.net.host import open_host
from libp2pia.net.transfer import PROTOCOL_ID, fetch_fragment, fetch_from_any, fragment_handler


async def test_fetch_verify_and_skip_a_corrupt_provider(tmp_path) -> None:
    data = os.urandom(2 * FRAGMENT_CHUNK_BYTES + 12345)  # three chunks
    fid = hashlib.sha256(data).hexdigest()
    good_file, bad_file = tmp_path / "good.bin", tmp_path / "bad.bin"
    good_file.write_bytes(data)
    bad_file.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one flipped bit at the very end
    out = tmp_path / "store"
    out.mkdir()
    with trio.fail_after(60):
        async with open_host() as good, open_host() as bad, open_host() as client:
            good.handle(PROTOCOL_ID, fragment_handler(lambda f: good_file if f == fid else None))
            bad.handle(PROTOCOL_ID, fragment_handler(lambda f: bad_file if f == fid else None))
            for s in (good, bad):
                await client.connect(s.addrs[0])

            with pytest.raises(FragmentError, match="corrupt"):
                await fetch_fragment(client, bad.peer_id, fid, out, expected_bytes=len(data))
            assert list(out.iterdir()) == []  # nothing half-written left behind

            with pytest.raises(RemoteError) as ei:
                await fetch_fragment(client, good.peer_id, "0" * 64, out)
            assert ei.value.code == "UNKNOWN_SHARD"

            flagged = []
            path, used = await fetch_from_any(client, [bad.peer_id, good.peer_id], fid, out,
                                              expected_bytes=len(data), on_bad_provider=lambda p, e: flagged.append(p))
            assert used == good.peer_id.to_base58() and flagged == [bad.peer_id.to_base58()]
            assert path == out / f"{fid}.gguf" and path.read_bytes() == data
            assert sorted(p.name for p in out.iterdir()) == [f"{fid}.gguf"]

            other = tmp_path / "other"
            with pytest.raises(MissingFragment, match=fid):
                await fetch_from_any(client, [bad.peer_id], fid, other)
            with pytest.raises(ProtocolError, match="expected"):  # a size other than the manifest's is refused
                await fetch_fragment(client, good.peer_id, fid, other, expected_bytes=len(data) - 1)
            assert list(other.iterdir()) == []


# ------------------------------------------------- garbage on /libp2pia/fragment/1.0.0, both directions

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from attacks import frame_attacks, send_attack  # noqa: E402
from libp2pia.errors import NetworkError  # noqa: E402
from libp2pia.net.framed import FramedStream  # noqa: E402
from libp2pia.net.transfer import MAX_CHUNK_FRAME  # noqa: E402
from libp2pia.wire.fragment import FragmentChunk, decode_fragment_chunk, encode_fragment_chunk  # noqa: E402
from libp2pia.wire.framing import encode_frame, encode_varint  # noqa: E402

attacks = frame_attacks(MAX_CHUNK_FRAME)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attack_list=st.lists(attacks, min_size=1, max_size=3))
async def test_fragment_server_survives_garbage(tmp_path, attack_list) -> None:
    """Garbage, truncated and oversized requests get an error chunk or a reset; the server keeps
    serving an honest download afterwards."""
    data = os.urandom(5000)
    fid = hashlib.sha256(data).hexdigest()
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    with trio.fail_after(60):
        async with open_host() as server, open_host() as attacker, open_host() as honest:
            server.handle(PROTOCOL_ID, fragment_handler(lambda f: src if f == fid else None, timeout=5))
            await attacker.connect(server.addrs[0])
            for _, blob in attack_list:
                answers = await send_attack(attacker.host, server.peer_id, PROTOCOL_ID, blob, MAX_CHUNK_FRAME,
                                            decode_fragment_chunk)
                for a in answers:  # never file content for a request that was not one
                    assert a == "reset" or (a.error is not None and a.error.code == "BAD_REQUEST"), a
            await honest.connect(server.addrs[0])
            out = tmp_path / f"out-{os.urandom(4).hex()}"
            path = await fetch_fragment(honest, server.peer_id, fid, out, expected_bytes=len(data), timeout=20)
            assert path.read_bytes() == data


lies = st.one_of(
    st.binary(min_size=1, max_size=300).map(lambda b: ("garbage", b)),
    st.binary(max_size=300).map(lambda b: ("framed-garbage", encode_frame(b))),
    st.integers(MAX_CHUNK_FRAME + 1, 2**34).map(lambda n: ("oversized", encode_varint(n) + b"\x00" * 64)),
    st.just(("truncated", b"")),  # the liar sends half of a real chunk
    st.just(("silent", b"")),
    st.just(("endless-empty", b"")),
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lie=lies)
async def test_a_lying_fragment_server_gives_a_clear_error_and_leaves_nothing(tmp_path, lie) -> None:
    """The client side: whatever a provider sends, fetch_fragment ends (bounded) with a
    NetworkError/FragmentError subclass and leaves no file behind."""
    data = os.urandom(3000)
    fid = hashlib.sha256(data).hexdigest()
    kind, blob = lie

    async def liar(stream) -> None:  # noqa: ANN001
        fs = FramedStream(stream, MAX_CHUNK_FRAME)
        await fs.recv(5)
        if kind == "truncated":
            frame = encode_frame(encode_fragment_chunk(FragmentChunk(fid, 0, len(data), data, True)))
            await stream.write(frame[: len(frame) // 2])
        elif kind == "endless-empty":
            for _ in range(1000):
                await fs.send(encode_fragment_chunk(FragmentChunk(fid, 0, len(data), b"", False)), 5)
            await trio.sleep(30)
        elif kind == "silent":
            await trio.sleep(30)
        else:
            await stream.write(blob)
        await stream.close()

    out = tmp_path / f"out-{os.urandom(4).hex()}"
    with trio.fail_after(60):
        async with open_host() as server, open_host() as client:
            server.handle(PROTOCOL_ID, liar)
            await client.connect(server.addrs[0])
            with pytest.raises((NetworkError, FragmentError)):
                await fetch_fragment(client, server.peer_id, fid, out, expected_bytes=len(data), timeout=3)
    assert not out.exists() or list(out.iterdir()) == []
