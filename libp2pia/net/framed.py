"""The async shell around :class:`libp2pia.wire.FrameDecoder`: frames over a libp2p stream.

Every read and write is bounded by a timeout, and libp2p's exceptions are
translated here, once, into ours:

| what happened                              | raised            |
|--------------------------------------------|-------------------|
| stream reset, connection lost, dial failed | PeerUnavailable   |
| no bytes within the timeout                | PeerUnavailable   |
| EOF inside a frame, oversize, bad prefix   | ProtocolError     |
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence

import trio
from libp2p.abc import IHost, INetStream
from libp2p.exceptions import BaseLibp2pError
from libp2p.peer.id import ID

from ..errors import PeerUnavailable, ProtocolError
from ..limits import DEFAULT_STREAM_OPEN_TIMEOUT_S, MAX_MESSAGE_BYTES, STREAM_READ_CHUNK_BYTES
from ..wire.framing import FrameDecoder, encode_frame

#: Exceptions that mean "the peer or the link is gone" (not a malformed message).
LINK_ERRORS: tuple[type[BaseException], ...] = (
    BaseLibp2pError, OSError, EOFError, trio.BrokenResourceError, trio.ClosedResourceError,
)


@contextlib.contextmanager
def translate_link_errors(what: str, timeout: float | None = None) -> Iterator[None]:
    """Run a block under ``trio.fail_after(timeout)``, mapping link failures to PeerUnavailable."""
    try:
        if timeout is None:
            yield
        else:
            with trio.fail_after(timeout):
                yield
    except trio.TooSlowError as exc:
        raise PeerUnavailable(f"{what}: no answer within {timeout:.1f} s") from exc
    except ProtocolError:
        raise
    except LINK_ERRORS as exc:
        raise PeerUnavailable(f"{what}: {type(exc).__name__}: {exc}".rstrip(": ")) from exc


@functools.lru_cache(maxsize=4096)
def _decode_peer(peer: str) -> ID:
    return ID.from_base58(peer)     # ~60 us of pure-Python base58, and every request names its peer


def to_peer_id(peer: ID | str) -> ID:
    if isinstance(peer, ID):
        return peer
    try:
        return _decode_peer(peer)   # failures are not cached: each bad string raises again
    except Exception as exc:  # noqa: BLE001 - base58/multihash errors vary
        raise PeerUnavailable(f"{peer[:60]!r} is not a peer id") from exc


@functools.lru_cache(maxsize=4096)
def peer_name(pid: ID) -> str:
    """``pid.to_base58()``, remembered (py-libp2p re-encodes it on every call)."""
    return pid.to_base58()


async def open_stream(host: IHost, peer: ID | str, protocols: Sequence[str],
                      timeout: float = DEFAULT_STREAM_OPEN_TIMEOUT_S) -> INetStream:
    """Open a stream (dialing if needed) within ``timeout``; PeerUnavailable otherwise."""
    pid = to_peer_id(peer)
    with translate_link_errors(f"open {protocols[0]} to {pid.to_base58()[:16]}", timeout):
        return await host.new_stream(pid, list(protocols))  # type: ignore[arg-type]


class FramedStream:
    """Length-prefixed messages on one libp2p stream."""

    def __init__(self, stream: INetStream, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.stream = stream
        self.max_bytes = max_bytes
        self._decoder = FrameDecoder(max_bytes)
        self._ready: list[bytes] = []
        self.bytes_sent = 0
        self.bytes_received = 0

    async def send(self, payload: bytes, timeout: float) -> None:
        frame = encode_frame(payload, self.max_bytes)
        with translate_link_errors("write", timeout):
            await self.stream.write(frame)
        self.bytes_sent += len(frame)

    async def recv(self, timeout: float) -> bytes | None:
        """The next frame, or None on a clean EOF between frames."""
        with translate_link_errors("read", timeout):
            while not self._ready:
                want = min(max(self._decoder.wanted, 4096), STREAM_READ_CHUNK_BYTES)
                try:
                    chunk = await self.stream.read(want)
                except EOFError:
                    chunk = b""
                if not chunk:
                    self._decoder.check_eof()  # ProtocolError if inside a frame
                    return None
                self.bytes_received += len(chunk)
                self._ready.extend(self._decoder.feed(chunk))
            return self._ready.pop(0)

    async def close(self) -> None:
        """Close (bounded: a stuck link must not hold up whoever is cleaning up)."""
        with trio.move_on_after(DEFAULT_STREAM_OPEN_TIMEOUT_S), contextlib.suppress(*LINK_ERRORS):
            await self.stream.close()

    async def close_after_error(self, linger: float) -> None:
        """After an error answer to broken framing: close our side, give the peer up to ``linger``
        seconds to read the answer and close its own (its bytes are discarded), then reset.
        Resetting at once lets the RST overtake the answer in py-libp2p's yamux reader."""
        with trio.move_on_after(linger), contextlib.suppress(*LINK_ERRORS):
            await self.stream.close()
            while await self.stream.read(STREAM_READ_CHUNK_BYTES):
                pass
        await self.reset()

    async def reset(self) -> None:
        with trio.move_on_after(DEFAULT_STREAM_OPEN_TIMEOUT_S), contextlib.suppress(*LINK_ERRORS):
            await self.stream.reset()
