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
