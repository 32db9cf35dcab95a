"""Hostile input for stream protocols, shared by the net tests (not a test module)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from libp2pia.errors import PeerUnavailable
from libp2pia.net.framed import FramedStream, open_stream
from libp2pia.wire.framing import encode_frame, encode_varint


def frame_attacks(max_bytes: int) -> st.SearchStrategy[tuple[str, bytes]]:
    """(kind, bytes): raw garbage, garbage in a valid frame, a frame cut short, a length prefix
    above ``max_bytes`` (the protocol's frame limit)."""
    return st.one_of(
        st.binary(max_size=300).map(lambda b: ("garbage", b)),
        st.binary(max_size=300).map(lambda b: ("framed-garbage", encode_frame(b))),
        st.tuples(st.binary(min_size=1, max_size=200), st.integers(1, 400)).map(
            lambda t: ("truncated", encode_frame(t[0])[: max(1, len(encode_frame(t[0])) - t[1])])),
        st.integers(max_bytes + 1, 2**34).map(lambda n: ("oversized", encode_varint(n) + b"\x00" * 64)),
    )


async def send_attack(host: Any, peer: Any, protocol: str, blob: bytes, max_bytes: int,
                      decode: Callable[[bytes], Any]) -> list[Any]:
    """Open a stream, write ``blob``, close our side, and collect the decoded answers until EOF;
    a reset or timeout is the answer ``"reset"``."""
    fs = FramedStream(await open_stream(host, peer, [protocol]), max_bytes)
    await fs.stream.write(blob)
    await fs.stream.close_write()  # EOF after the attack: the server must not wait for more
    answers: list[Any] = []
    try:
        while (frame := await fs.recv(10)) is not None:
            answers.append(decode(frame))
    except PeerUnavailable:
        answers.append("reset")
    await fs.reset()
    return answers
