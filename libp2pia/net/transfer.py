"""``/libp2pia/fragment/1.0.0``: download a fragment by its hash, in chunks, verified before it is stored.

| side     | what it does                                                                   |
|----------|--------------------------------------------------------------------------------|
| server   | one FragmentRequest → FragmentChunk frames (≤ FRAGMENT_CHUNK_BYTES), last flagged; |
|          | an unknown fragment → one chunk carrying UNKNOWN_SHARD                         |
| receiver | chunks must be contiguous and within the announced size; bytes go to a         |
|          | temporary file, hashed on the way; sha256 == id → rename to ``<id>.gguf``,     |
|          | else the file is dropped and FragmentError raised (the caller tries another    |
|          | provider)                                                                      |

Nothing half-written ever carries the final name.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import trio
from libp2p.abc import INetStream
from libp2p.peer.id import ID

from ..errors import FragmentError, NetworkError, PeerUnavailable, ProtocolError
from ..limits import DEFAULT_MAX_FRAGMENT_BYTES, DEFAULT_REQUEST_TIMEOUT_S, FRAGMENT_CHUNK_BYTES
from ..wire.compute import WireError
from ..wire.fragment import (
    PROTOCOL_ID, FragmentChunk, FragmentRequest, decode_fragment_chunk, decode_fragment_request,
    encode_fragment_chunk, encode_fragment_request,
)
from .framed import FramedStream, open_stream, to_peer_id
from .host import StreamHandler

log = logging.getLogger(__name__)

__all__ = ["PROTOCOL_ID", "fetch_fragment", "fetch_from_any", "fragment_handler"]

#: How large a fragment a receiver accepts when the caller gives no expected size
#: (oversize fragments exist: one tensor row can exceed the budget).
MAX_FETCH_BYTES = 64 * DEFAULT_MAX_FRAGMENT_BYTES


def _read(path: Path, offset: int, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(n)


def fragment_handler(lookup: Callable[[str], Path | None], *,
                     timeout: float = DEFAULT_REQUEST_TIMEOUT_S) -> StreamHandler:
    """Serve fragment files; ``lookup(id)`` gives the verified file of a fragment this peer holds."""

    async def handler(stream: INetStream) -> None:
        fs = FramedStream(stream)
        frame = await fs.recv(timeout)
        if frame is None:
            return
        req = decode_fragment_request(frame)  # ProtocolError → guarded() resets the stream
        path = lookup(req.fragment_id)
        if path is None:
            err = WireError("UNKNOWN_SHARD", "fragment not held here", req.fragment_id)
            await fs.send(encode_fragment_chunk(FragmentChunk(req.fragment_id, 0, 0, b"", True, err)), timeout)
            return
        total = path.stat().st_size
        offset = min(req.offset, total)
        end = total if req.length == 0 else min(total, offset + req.length)
        while True:
            n = min(FRAGMENT_CHUNK_BYTES, end - offset)
            data = await trio.to_thread.run_sync(_read, path, offset, n)
            last = offset + len(data) >= end
            await fs.send(encode_fragment_chunk(FragmentChunk(req.fragment_id, offset, total, data, last)), timeout)
            offset += len(data)
            if last:
                break
        await fs.close()

    return handler


async def fetch_fragment(net_host, peer: ID | str, fragment_id: str, dest_dir: Path, *,  # noqa: ANN001
                         expected_bytes: int | None = None, timeout: float = DEFAULT_REQUEST_TIMEOUT_S) -> Path:
    """Download ``fragment_id`` from ``peer`` into ``dest_dir/<id>.gguf``; verified before the rename.

    Raises PeerUnavailable (link), ProtocolError (bad chunks), FragmentError (wrong bytes or the
    peer does not hold it). ``net_host`` is a :class:`NetHost`.
    """
    pid = to_peer_id(peer)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / f"{fragment_id}.gguf"
    tmp = dest_dir / f".{fragment_id}.{os.getpid()}.{id(pid)}.part"
    limit = expected_bytes if expected_bytes is not None else MAX_FETCH_BYTES
    stream = await open_stream(net_host.host, pid, [PROTOCOL_ID])
    fs = FramedStream(stream)
    digest, got = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as out:
            await fs.send(encode_fragment_request(FragmentRequest(fragment_id)), timeout)
            while True:
                frame = await fs.recv(timeout)
                if frame is None:
                    raise PeerUnavailable(f"{pid.to_base58()[:16]} ended the transfer of {fragment_id[:12]} early")
                chunk = decode_fragment_chunk(frame)
                if chunk.error is not None:
                    raise FragmentError(f"{pid.to_base58()[:16]} cannot send {fragment_id[:12]}: "
                                        f"{chunk.error.code} {chunk.error.message}")
                if chunk.fragment_id != fragment_id or chunk.offset != got or chunk.total_bytes > limit:
                    raise ProtocolError(f"unexpected chunk of {chunk.fragment_id[:12]} at {chunk.offset} "
                                        f"(want {fragment_id[:12]} at {got}, total ≤ {limit})")
                out.write(chunk.data)
                digest.update(chunk.data)
                got += len(chunk.data)
                if chunk.last:
                    break
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != fragment_id:
            raise FragmentError(f"{pid.to_base58()[:16]} sent {got} bytes that do not hash to {fragment_id[:12]}")
        os.replace(tmp, final)
        return final
    finally:
        tmp.unlink(missing_ok=True)
        await fs.close()


async def fetch_from_any(net_host, peers: Sequence[ID | str], fragment_id: str, dest_dir: Path, *,  # noqa: ANN001
                         expected_bytes: int | None = None,
                         timeout: float = DEFAULT_REQUEST_TIMEOUT_S) -> Path:
    """Try providers in order until one delivers verified bytes."""
    errors = []
    for peer in peers:
        try:
            return await fetch_fragment(net_host, peer, fragment_id, dest_dir, expected_bytes=expected_bytes,
                                        timeout=timeout)
        except (NetworkError, FragmentError) as exc:
            log.info("fetch %s from %s failed: %s", fragment_id[:12], str(peer)[:16], exc)
            errors.append(str(exc))
    raise FragmentError(f"fragment {fragment_id[:12]} could not be fetched from {len(peers)} provider(s)"
                        + (f": {errors[-1]}" if errors else ""))
