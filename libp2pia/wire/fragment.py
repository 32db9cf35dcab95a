"""Messages of ``/libp2pia/fragment/1.0.0``: download a fragment by hash, in chunks.

The client sends one FragmentRequest frame; the server answers with
FragmentChunk frames of at most FRAGMENT_CHUNK_BYTES, the last one with
``last`` set, or a single chunk carrying an error. The receiver verifies the
sha256 of the whole before storing it (that is the fragments code's job).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ProtocolError
from ..limits import FRAGMENT_CHUNK_BYTES
from . import libp2pia_pb2 as pb
from .compute import ERROR_CODES, ERROR_NAMES, WireError, parse_pb, check_fragment_id

PROTOCOL_ID = "/libp2pia/fragment/1.0.0"


@dataclass
class FragmentRequest:
    fragment_id: str
    offset: int = 0
    length: int = 0  # 0 = to the end


@dataclass
class FragmentChunk:
    fragment_id: str
    offset: int
    total_bytes: int
    data: bytes
    last: bool
    error: WireError | None = None


def encode_fragment_request(r: FragmentRequest) -> bytes:
    return pb.FragmentRequest(fragment_id=check_fragment_id(r.fragment_id), offset=r.offset, length=r.length).SerializeToString()


def decode_fragment_request(data: bytes) -> FragmentRequest:
    msg = parse_pb(pb.FragmentRequest, data, "fragment request")
    return FragmentRequest(check_fragment_id(msg.fragment_id), msg.offset, msg.length)


def encode_fragment_chunk(c: FragmentChunk) -> bytes:
    msg = pb.FragmentChunk(fragment_id=c.fragment_id, offset=c.offset, total_bytes=c.total_bytes, data=c.data, last=c.last)
    if c.error is not None:
        msg.error.code = ERROR_CODES[c.error.code]
        msg.error.message = c.error.message[:1000]
        msg.error.fragment_id = c.error.fragment_id
    return msg.SerializeToString()


def decode_fragment_chunk(data: bytes) -> FragmentChunk:
    msg = parse_pb(pb.FragmentChunk, data, "fragment chunk")
    if msg.HasField("error"):
        code = ERROR_NAMES.get(msg.error.code)
        if code is None:
            raise ProtocolError(f"fragment chunk with unknown error code {msg.error.code}")
        return FragmentChunk(msg.fragment_id, 0, 0, b"", True, WireError(code, msg.error.message, msg.error.fragment_id))
    fid = check_fragment_id(msg.fragment_id)
    if len(msg.data) > FRAGMENT_CHUNK_BYTES:
        raise ProtocolError(f"fragment chunk of {len(msg.data)} bytes (limit {FRAGMENT_CHUNK_BYTES})")
    if msg.offset + len(msg.data) > msg.total_bytes:
        raise ProtocolError(f"chunk [{msg.offset}, +{len(msg.data)}) beyond the fragment's {msg.total_bytes} bytes")
    return FragmentChunk(fid, msg.offset, msg.total_bytes, bytes(msg.data), msg.last)
