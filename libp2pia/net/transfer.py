"""``/libp2pia/fragment/1.0.0``: fetch a fragment by its hash, in chunks, verified.

Server: :func:`fragment_handler` answers a FragmentRequest with FragmentChunk
frames read from the file ``lookup(fragment_id)`` returns (the worker's store,
which verified it). Client: :func:`fetch_fragment` writes to a temporary name,
hashes while receiving, and renames only if the sha256 equals the fragment id;
:func:`fetch_from_any` tries providers in turn and skips corrupt or failing ones.
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

from ..errors import FragmentError, MissingFragment, NetworkError, ProtocolError, RemoteError
from ..limits import (
    DEFAULT_REQUEST_TIMEOUT_S, FRAGMENT_CHUNK_BYTES, FRAGMENT_TRANSFER_TIMEOUT_S, MAX_FRAGMENT_FETCH_BYTES,
)
from ..wire.compute import WireError, check_fragment_id
from ..wire.fragment import (
    PROTOCOL_ID, FragmentChunk, FragmentRequest, decode_fragment_chunk, decode_fragment_request,
    encode_fragment_chunk, encode_fragment_request,
)
from .framed import FramedStream, open_stream, to_peer_id
from .host import NetHost, StreamHandler

log = logging.getLogger(__name__)

#: Frame limit on this protocol: one chunk plus its header.
MAX_CHUNK_FRAME = FRAGMENT_CHUNK_BYTES + 4096

__all__ = ["PROTOCOL_ID", "fetch_fragment", "fetch_from_any", "fragment_handler"]


def fragment_handler(lookup: Callable[[str], Path | None], *,
                     timeout: float = DEFAULT_REQUEST_TIMEOUT_S) -> StreamHandler:
    """Serve fragment files; ``lookup(id)`` returns the verified file or None if not held."""

    async def handler(stream: INetStream) -> None:
        fs = FramedStream(stream, MAX_CHUNK_FRAME)
        frame = await fs.recv(timeout)
        if frame is None:
            return
        try:
            req = decode_fragment_request(frame)
        except ProtocolError as exc:
            await fs.send(encode_fragment_chunk(FragmentChunk("", 0, 0, b"", True, WireError("BAD_REQUEST", str(exc)))), timeout)
            return
        path = lookup(req.fragment_id)
        if path is None:
            err = WireError("UNKNOWN_SHARD", "fragment not held here", req.fragment_id)
            await fs.send(encode_fragment_chunk(FragmentChunk(req.fragment_id, 0, 0, b"", True, err)), timeout)
            return
        size = os.path.getsize(path)
        end = size if req.length == 0 else min(size, req.offset + req.length)
        if req.offset > size:
            err = WireError("BAD_REQUEST", f"offset {req.offset} beyond {size} bytes", req.fragment_id)
            await fs.send(encode_fragment_chunk(FragmentChunk(req.fragment_id, 0, 0, b"", True, err)), timeout)
            return
        with open(path, "rb") as f:
            off = req.offset
            f.seek(off)
            while True:
                n = min(FRAGMENT_CHUNK_BYTES, end - off)
                data = await trio.to_thread.run_sync(f.read, n)
                last = off + len(data) >= end or not data
                await fs.send(encode_fragment_chunk(FragmentChunk(req.fragment_id, off, size, data, last)), timeout)
                off += len(data)
                if last:
                    return

    return handler


async def fetch_fragment(
    net: NetHost,
    peer: ID | str,
    fragment_id: str,
    dest_dir: Path,
    *,
    expected_bytes: int | None = None,
    timeout: float = FRAGMENT_TRANSFER_TIMEOUT_S,
) -> Path:
    """Download ``fragment_id`` from ``peer`` into ``dest_dir/<id>.gguf`` (the manifest's file
    name), atomically, after checking its sha256 (and its size, if ``expected_bytes``).

    Raises PeerUnavailable/ProtocolError/RemoteError for transfer problems and
    FragmentError if the bytes do not hash to the id (nothing is left behind).
    """
    check_fragment_id(fragment_id)
    pid = to_peer_id(peer)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{fragment_id}.gguf"
    limit = expected_bytes if expected_bytes is not None else MAX_FRAGMENT_FETCH_BYTES
    tmp = dest_dir / f".{fragment_id}.{os.getpid()}.{id(pid):x}.part"
    digest = hashlib.sha256()
    stream = await open_stream(net.host, pid, [PROTOCOL_ID])
    fs = FramedStream(stream, MAX_CHUNK_FRAME)
    try:
        with trio.fail_after(timeout):
            await fs.send(encode_fragment_request(FragmentRequest(fragment_id)), timeout)
            got = 0
            with open(tmp, "wb") as f:
                while True:
                    frame = await fs.recv(timeout)
                    if frame is None:
                        raise ProtocolError(f"{pid.to_base58()[:16]} ended the transfer at {got} bytes")
                    chunk = decode_fragment_chunk(frame)
                    if chunk.error is not None:
                        raise chunk.error.to_exception(pid.to_base58())
                    if chunk.fragment_id != fragment_id or chunk.offset != got:
                        raise ProtocolError(f"chunk of {chunk.fragment_id[:12]}@{chunk.offset}, expected @{got}")
                    if chunk.total_bytes > limit or (expected_bytes is not None and chunk.total_bytes != expected_bytes):
                        raise ProtocolError(f"fragment of {chunk.total_bytes} bytes where {limit} were expected")
                    f.write(chunk.data)
                    digest.update(chunk.data)
                    got += len(chunk.data)
                    if chunk.last:
                        if got != chunk.total_bytes:
                            raise ProtocolError(f"transfer ended at {got} of {chunk.total_bytes} bytes")
                        break
                f.flush()
                os.fsync(f.fileno())
        if digest.hexdigest() != fragment_id:
            raise FragmentError(f"fragment {fragment_id[:12]} from {pid.to_base58()[:16]} hashes to "
                                f"{digest.hexdigest()[:12]}: corrupt, dropped")
        os.replace(tmp, dest)
        return dest
    except trio.TooSlowError as exc:
        await fs.reset()
        raise NetworkError(f"fragment {fragment_id[:12]} from {pid.to_base58()[:16]}: no completion within {timeout:.0f} s") from exc
    finally:
        tmp.unlink(missing_ok=True)
        await fs.close()


async def fetch_from_any(
    net: NetHost,
    providers: Sequence[ID | str],
    fragment_id: str,
    dest_dir: Path,
    *,
    expected_bytes: int | None = None,
    timeout: float = FRAGMENT_TRANSFER_TIMEOUT_S,
    on_bad_provider: Callable[[str, Exception], None] | None = None,
) -> tuple[Path, str]:
    """Try ``providers`` in order; returns (path, peer id used). MissingFragment if none delivers."""
    reasons = []
    for p in providers:
        pid = to_peer_id(p).to_base58()
        try:
            path = await fetch_fragment(net, pid, fragment_id, dest_dir, expected_bytes=expected_bytes, timeout=timeout)
            return path, pid
        except (NetworkError, FragmentError, RemoteError) as exc:
            log.info("fragment %s from %s failed: %s", fragment_id[:12], pid[:16], exc)
            reasons.append(f"{pid[:16]}: {type(exc).__name__}")
            if on_bad_provider is not None:
                on_bad_provider(pid, exc)
    raise MissingFragment(fragment_id, "; ".join(reasons) or "no provider")
