"""Announcements (heartbeats) published on the gossip topic of a model."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ProtocolError
from ..limits import MAX_ANNOUNCE_BYTES, MAX_ANNOUNCED_ADDRS, MAX_ANNOUNCED_FRAGMENTS
from . import libp2pia_pb2 as pb
from .compute import parse_pb, check_fragment_id

#: Longest peer id / multiaddr string we accept in an announcement.
_MAX_STR = 512


@dataclass
class Announcement:
    peer_id: str
    model_id: str
    seq: int
    addrs: list[str] = field(default_factory=list)
    fragments: list[str] = field(default_factory=list)
    load: float = 0.0
    uptime_s: float = 0.0
    sessions: int = 0
    storage_free_bytes: int = 0


def encode_announcement(a: Announcement) -> bytes:
    msg = pb.Announcement(
        peer_id=a.peer_id, addrs=a.addrs, fragments=a.fragments, load=a.load, uptime_s=a.uptime_s,
        model_id=a.model_id, seq=a.seq, sessions=a.sessions, storage_free_bytes=a.storage_free_bytes,
    )
    data = msg.SerializeToString()
    if len(data) > MAX_ANNOUNCE_BYTES:
        raise ProtocolError(f"announcement of {len(data)} bytes exceeds {MAX_ANNOUNCE_BYTES}")
    return data


def decode_announcement(data: bytes) -> Announcement:
    """Parse and validate; ProtocolError on anything malformed or oversized."""
    if len(data) > MAX_ANNOUNCE_BYTES:
        raise ProtocolError(f"announcement of {len(data)} bytes exceeds {MAX_ANNOUNCE_BYTES}")
    msg = parse_pb(pb.Announcement, data, "announcement")
    if not msg.peer_id or len(msg.peer_id) > _MAX_STR:
        raise ProtocolError("announcement without a valid peer id")
    if len(msg.addrs) > MAX_ANNOUNCED_ADDRS or any(len(x) > _MAX_STR for x in msg.addrs):
        raise ProtocolError("announcement with too many or too long addresses")
    if len(msg.fragments) > MAX_ANNOUNCED_FRAGMENTS:
        raise ProtocolError(f"announcement lists {len(msg.fragments)} fragments (limit {MAX_ANNOUNCED_FRAGMENTS})")
    frags = [check_fragment_id(f) for f in msg.fragments]
    if msg.model_id:
        check_fragment_id(msg.model_id)  # a model id is a sha256 hex too
    if not (math.isfinite(msg.load) and msg.load >= 0) or not (math.isfinite(msg.uptime_s) and msg.uptime_s >= 0):
        raise ProtocolError("announcement with a negative or non-finite load/uptime")
    return Announcement(
        peer_id=msg.peer_id, model_id=msg.model_id, seq=msg.seq, addrs=list(msg.addrs), fragments=frags,
        load=float(msg.load), uptime_s=float(msg.uptime_s), sessions=msg.sessions,
        storage_free_bytes=msg.storage_free_bytes,
    )
