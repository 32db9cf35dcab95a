"""libp2pia.wire: protobuf messages, tensor encoding and framing. Pure: bytes in, messages out.

Nothing here does I/O; ``libp2pia.net`` is the async shell around it.
"""

from __future__ import annotations

from .framing import FrameDecoder, decode_varint, encode_frame, encode_varint
from .manifest import canonical_json, manifest_model_id
from .tensor import DTYPES, decode_tensor, encode_tensor

__all__ = [
    "DTYPES", "FrameDecoder", "canonical_json", "decode_tensor", "decode_varint", "encode_frame",
    "encode_tensor", "encode_varint", "manifest_model_id",
]
