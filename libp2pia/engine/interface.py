"""The narrow shard interface: the only way the engine reaches a shard.

    open_session(session_id)
    call(session_id, calls: list[ShardCall]) -> list[ShardResult]    # one phase; results in call order
    close_session(session_id)

The in-process backend (inprocess.py) runs the shard objects directly; the
network backend carries the same calls over /libp2pia/compute/1.0.0.

| kind      | x                          | positions      | result y                         |
|-----------|----------------------------|----------------|----------------------------------|
| embed     | int32 token ids (n,)       | (n,)           | float32 (n, n_embd), unscaled    |
| attention | float32 (n, n_embd) normed | absolute (n,)  | float32 (n, n_embd) partial O    |
| ffn       | float32 (n, n_embd) normed | (n,)           | float32 (n, n_embd) partial down |
| logits    | float32 (n, n_embd) normed | (n,)           | float32 (n, rows of the shard)   |

A logits call with ``top_k = k > 0`` returns only each row's k best logits: y float32 (n, k) and
``ids`` int32 (n, k) their vocabulary ids, best first, ties by lower id (1 MiB -> a few bytes per
token for Gemma's 262,144-token vocabulary; DESIGN §1). With ``embeddings`` it also returns those
candidates' embedding rows (what an embed call would), so the next step's embed phase is skipped
when the sampled token is among them: one network phase less per generated token.

Runs (layer chaining). A backend whose shards of several consecutive phases sit in one place (one
process, one peer) may also offer

    span(session_id, phases: list[list[str]]) -> int        # how many leading phases run together
    run(session_id, RunCall) -> RunResult | None             # those phases in one request

A run carries the residual stream h (n, n_embd) instead of a normalized input: the holder applies
each phase's norm, calls its shards, sums their partial outputs and adds them to h (model.residual),
phase after phase, and returns the new h (and, asked for, each attention phase's normalized input,
which the client keeps for failover replays). ``run`` returns None when the holder failed and the
backend re-pinned its fragments: the engine then plans the same phases again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

KINDS = ("embed", "attention", "ffn", "logits")


@dataclass
class ShardCall:
    fragment_id: str
    kind: str
    layer: int | None
    positions: np.ndarray
    x: np.ndarray
    weight: float | None = None      # optional scale applied by the shard (MoE gate weight for n == 1)
    top_k: int = 0                   # logits only: 0 = every logit, k = the k best per row (+ ids)
    embeddings: bool = False         # top-k logits only: also the candidates' embedding rows


@dataclass
class ShardResult:
    y: np.ndarray
    ids: np.ndarray | None = None    # int32 (n, k) vocabulary ids of y's columns when top_k > 0
    embeddings: np.ndarray | None = None  # float32 (n * k, n_embd) unscaled rows of ids, when asked


@dataclass
class RunPhase:
    kind: str                        # "attention" or "ffn" (dense)
    layer: int
    fragment_ids: list[str]          # every shard of the phase; partial outputs summed in this order


@dataclass
class RunCall:
    phases: list[RunPhase]           # consecutive phases of the residual stream
    positions: np.ndarray            # int32 (n,) absolute positions of h's rows
    h: np.ndarray                    # float32 (n, n_embd) residual stream before the first phase
    attention_inputs: bool = True    # also return each attention phase's normalized input


@dataclass
class RunResult:
    h: np.ndarray                    # float32 (n, n_embd) residual stream after the last phase
    attention_inputs: list[np.ndarray]   # one (n, n_embd) per attention phase of the run, in order


class Backend(Protocol):
    async def open_session(self, session_id: str) -> None: ...

    async def call(self, session_id: str, calls: list[ShardCall]) -> list[ShardResult]: ...

    async def close_session(self, session_id: str) -> None: ...
