"""Execute ShardCalls on local shard objects (used by the in-process backend and by workers)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import ModelError
from ..model.attention import AttentionShard
from ..model.build import Shard
from ..model.ffn import FFNShard
from ..model.residual import Residual, sum_partials
from ..model.vocab import VocabShard
from .interface import RunCall, RunResult, ShardCall, ShardResult

#: float32 (n, d) -> the same values as they would arrive after crossing the wire (or None: unchanged)
Rounding = Callable[[np.ndarray], np.ndarray]


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
        if call.top_k > 0:
            vals, ids = best_logits(y, call.top_k)
            ids = (ids + shard.row0).astype(np.int32)
            # a shard without embedding rows (untied output) just sends none: the client embeds as usual
            emb = shard.lookup(ids.ravel()) if call.embeddings and shard.embed is not None else None
            return ShardResult(vals, ids, emb)
    else:
        raise ModelError(f"fragment {call.fragment_id} cannot serve a {kind!r} call")
    if call.weight is not None:
        y = y * np.float32(call.weight)
    return ShardResult(np.ascontiguousarray(y, np.float32))


def execute_all(shard_of: Callable[[str], Shard], session_id: str, calls: Sequence[ShardCall]) -> list[ShardResult]:
    """One phase's calls on this process's shards, results in call order.

    A greedy client's logits phase (every logits call: one row, one candidate, its embedding row)
    can only pick the best of these candidates (by value, then lower id, as its argmax does), so
    only that one's row is looked up: one lookup per phase instead of one per shard (18 for Gemma).
    If the client picks a token that came without a row, it simply embeds it with an embed call."""
    logits = [i for i, c in enumerate(calls) if c.kind == "logits"]
    greedy = bool(logits) and all(calls[i].embeddings and calls[i].top_k == 1 and len(calls[i].positions) == 1
                                  for i in logits)
    if not greedy:
        return [execute(shard_of(c.fragment_id), session_id, c) for c in calls]
    out = [execute(shard_of(c.fragment_id), session_id,
                   dataclasses.replace(c, embeddings=False) if c.kind == "logits" else c) for c in calls]
    best = max(logits, key=lambda i: (float(out[i].y[0, 0]), -int(out[i].ids[0, 0])))
    shard = shard_of(calls[best].fragment_id)
    if isinstance(shard, VocabShard) and shard.embed is not None:
        out[best].embeddings = shard.lookup(out[best].ids.ravel())
    return out


def execute_run(shard_of: Callable[[str], Shard], session_id: str, residual: Residual, run: RunCall,
                rounding: Rounding | None = None) -> RunResult:
    """Consecutive dense phases on this process's shards, the residual stream carried from one to the next.

    ``rounding`` is applied wherever the phase-by-phase path would send a tensor over the wire (each
    phase's normalized input, each shard's partial output), so a run computes exactly what the
    client would have computed phase by phase, whatever the activation dtype: the tokens do not depend
    on where the shards sit, and the attention inputs returned replay exactly on another replica."""
    h = np.array(run.h, np.float32)                                                   # (n, n_embd)
    inputs: list[np.ndarray] = []
    for ph in run.phases:
        for fid in ph.fragment_ids:
            _check_run_shard(shard_of(fid), fid, ph.kind, ph.layer)
        x = residual.phase_input(ph.kind, ph.layer, h)                                  # (n, n_embd)
        if rounding is not None:
            x = rounding(x)
        if ph.kind == "attention" and run.attention_inputs:
            inputs.append(x)
        ys = [execute(shard_of(fid), session_id, ShardCall(fid, ph.kind, ph.layer, run.positions, x)).y
              for fid in ph.fragment_ids]                                               # partial outputs
        out = sum_partials([rounding(y) for y in ys] if rounding is not None else ys)
        h = residual.add(ph.kind, ph.layer, h, out)
    return RunResult(h, inputs)


def _check_run_shard(shard: Shard, fid: str, kind: str, layer: int) -> None:
    """A run phase names shards of its own layer and kind only (dense FFN: MoE experts need a router)."""
    ok = (isinstance(shard, AttentionShard) if kind == "attention"
          else isinstance(shard, FFNShard) and shard.expert is None if kind == "ffn" else False)
    if not ok or getattr(shard, "layer", None) != layer:
        raise ModelError(f"fragment {fid[:12]} is not a {kind} shard of layer {layer}")


def best_logits(y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest of each row of y (n, m): values (n, k) float32 and their column indices
    (n, k), best first, ties by lower index (as np.argmax, so a greedy pick is the same)."""
    k = min(k, y.shape[1])
    if k == 1:
        idx = np.argmax(y, axis=1)[:, None]
    else:
        part = np.argpartition(-y, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(y, part, axis=1).min(axis=1, keepdims=True)
        if np.any((y == kth).sum(axis=1) > (np.take_along_axis(y, part, axis=1) == kth).sum(axis=1)):
            part = np.argsort(-y, axis=1, kind="stable")[:, :k]   # a tie at the cut: take the lower ids
        vals = np.take_along_axis(y, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)
        idx = np.take_along_axis(part, order, axis=1)
    return np.ascontiguousarray(np.take_along_axis(y, idx, axis=1), np.float32), idx


def close_session(shard: Shard, session_id: str) -> None:
    if isinstance(shard, AttentionShard):
        shard.close(session_id)
