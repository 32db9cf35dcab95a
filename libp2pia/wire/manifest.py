"""The manifest record stored in the DHT under the model id.

``model_id = sha256(canonical form of the manifest without "model_id")``. The
canonical form is ``libp2pia.fragments.manifest.canonical_bytes`` — the one
function the fragment writer uses too, so both sides agree by construction.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..errors import ProtocolError
from ..fragments.manifest import canonical_bytes
from ..limits import MAX_MANIFEST_RECORD_BYTES
from . import libp2pia_pb2 as pb
from .compute import parse_pb, check_fragment_id

#: DHT namespace of manifest records: key = f"/{MANIFEST_NAMESPACE}/{model_id}".
MANIFEST_NAMESPACE = "libp2pia-manifest"


def canonical_json(obj: Any) -> bytes:
    """Canonical bytes of any JSON object, in the same form as ``canonical_bytes``
    (which also drops ``model_id``); a test keeps the two identical."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def manifest_model_id(manifest: dict[str, Any]) -> str:
    """sha256 hex of the canonical form of ``manifest`` without its ``model_id`` field."""
    return hashlib.sha256(canonical_bytes(manifest)).hexdigest()


def manifest_key(model_id: str) -> str:
    return f"/{MANIFEST_NAMESPACE}/{check_fragment_id(model_id)}"


def encode_manifest_record(manifest: dict[str, Any]) -> bytes:
    """The DHT value for ``manifest`` (refuses a manifest whose model_id is wrong)."""
    mid = manifest_model_id(manifest)
    if manifest.get("model_id", mid) != mid:
        raise ProtocolError(f"manifest says model_id {manifest.get('model_id')} but hashes to {mid}")
    data = pb.ManifestRecord(model_id=mid, manifest_json=canonical_json({**manifest, "model_id": mid})).SerializeToString()
    if len(data) > MAX_MANIFEST_RECORD_BYTES:
        raise ProtocolError(f"manifest record of {len(data)} bytes exceeds {MAX_MANIFEST_RECORD_BYTES}")
    return data


def decode_manifest_record(data: bytes, model_id: str | None = None) -> dict[str, Any]:
    """Validate a record: its content must hash to its model id (and to ``model_id`` if given)."""
    if len(data) > MAX_MANIFEST_RECORD_BYTES:
        raise ProtocolError(f"manifest record of {len(data)} bytes exceeds {MAX_MANIFEST_RECORD_BYTES}")
    msg = parse_pb(pb.ManifestRecord, data, "manifest record")
    check_fragment_id(msg.model_id)
    if model_id is not None and msg.model_id != model_id:
        raise ProtocolError(f"manifest record for {msg.model_id[:12]} stored under {model_id[:12]}")
    try:
        manifest = json.loads(msg.manifest_json.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(f"manifest record is not JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ProtocolError("manifest record is not a JSON object")
    got = manifest_model_id(manifest)
    if got != msg.model_id or manifest.get("model_id") != msg.model_id:
        raise ProtocolError(f"manifest content hashes to {got[:12]}, not to its key {msg.model_id[:12]}")
    return manifest
