"""Length-prefixed framing, sans-I/O (bytes in, frames out).

Every libp2pia stream carries frames ``uvarint(len) || payload``. The length is
checked against the maximum **before** any of the body is buffered, so an
oversized announcement costs the reader a few bytes, not megabytes.

    dec = FrameDecoder(max_bytes)
    for payload in dec.feed(chunk):     # zero or more complete frames
        ...
"""

from __future__ import annotations

from ..errors import ProtocolError
from ..limits import MAX_MESSAGE_BYTES, MAX_VARINT_PREFIX_BYTES


def encode_varint(n: int) -> bytes:
    """Unsigned LEB128 varint (protobuf / multiformats)."""
    if n < 0:
        raise ValueError(f"varint of a negative number {n}")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def decode_varint(buf: bytes | bytearray | memoryview, max_value: int) -> tuple[int, int] | None:
    """Parse a varint at the start of ``buf``: ``(value, bytes used)``, or None if incomplete.

    Raises ProtocolError as soon as the value provably exceeds ``max_value`` or the
    prefix is longer than MAX_VARINT_PREFIX_BYTES, without waiting for more bytes.
    """
    value = 0
    for i in range(min(len(buf), MAX_VARINT_PREFIX_BYTES)):
        b = buf[i]
        value |= (b & 0x7F) << (7 * i)
        if value > max_value:
            raise ProtocolError(f"frame of {value}+ bytes exceeds the limit of {max_value}")
        if not b & 0x80:
            if i > 0 and b == 0:
                raise ProtocolError("non-minimal varint length prefix")
            return value, i + 1
    if len(buf) >= MAX_VARINT_PREFIX_BYTES:
        raise ProtocolError(f"varint length prefix longer than {MAX_VARINT_PREFIX_BYTES} bytes")
    return None


def encode_frame(payload: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> bytes:
    """Prefix ``payload`` with its length; refuse to build a frame the peer would reject."""
    if len(payload) > max_bytes:
        raise ProtocolError(f"message of {len(payload)} bytes exceeds the limit of {max_bytes}")
    return encode_varint(len(payload)) + payload


class FrameDecoder:
    """Incremental frame parser. After a ProtocolError the decoder is poisoned."""

    def __init__(self, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._need: int | None = None  # body length of the frame being read
        self._failed: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf)

    @property
    def at_boundary(self) -> bool:
        """True when no partial frame is pending (a clean place for EOF)."""
        return not self._buf and self._need is None

    @property
    def wanted(self) -> int:
        """A good size for the next read: the rest of the current frame, or a prefix."""
        if self._need is None:
            return MAX_VARINT_PREFIX_BYTES
        return max(1, self._need - len(self._buf))

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every frame they complete."""
        if self._failed is not None:
            raise self._failed
        self._buf += data
        frames: list[bytes] = []
        try:
            while True:
                if self._need is None:
                    got = decode_varint(self._buf, self.max_bytes)
                    if got is None:
                        break
                    self._need, used = got
                    del self._buf[:used]
                if len(self._buf) < self._need:
                    break
                frames.append(bytes(self._buf[: self._need]))
                del self._buf[: self._need]
                self._need = None
        except ProtocolError as exc:
            self._failed = exc
            self._buf.clear()
            raise
        return frames

    def check_eof(self) -> None:
        """Call at end of stream: a partial frame there is a truncated message."""
        if not self.at_boundary:
            raise ProtocolError(
                f"stream ended inside a frame ({len(self._buf)} of "
                f"{self._need if self._need is not None else '?'} bytes)"
            )
