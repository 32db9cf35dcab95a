"""Execute one ShardCall on a local shard object (used by the in-process backend and by workers)."""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..model.attention import AttentionShard
from ..model.build import Shard
from ..model.ffn import FFNShard
from ..model.vocab import VocabShard
from .interface import ShardCall, ShardResult


def execute(shard: Shard, session_id: str, call: ShardCall) -> ShardResult:
    """Run `call` on `shard`; raises ModelError when the kind does not fit the shard."""
    kind = call.kind
    if kind == "attention" and isinstance(shard, AttentionShard):
        y = shard.forward(session_id, call.positions, np.asarray(call.x, np.float32))
    elif kind == "ffn" and isinstance(shard, FFNShard):
        y = shard.forward(np.asarray(call.x, np.float32))
    elif kind == "embed" and isinstance(shard, VocabShard):
        y = shard.lookup(np.asarray(call.x))
    elif kind == "logits" and isinstance(shard, VocabShard):
        y = shard.logits(np.asarray(call.x, np.float32))
    else:
        raise ModelError(f"fragment {call.fragment_id} cannot serve a {kind!r} call")
    if call.weight is not None:
        y = y * np.float32(call.weight)
    return ShardResult(np.ascontiguousarray(y, np.float32))


def close_session(shard: Shard, session_id: str) -> None:
    if isinstance(shard, AttentionShard):
        shard.close(session_id)
