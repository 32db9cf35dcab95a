"""Token sampling: greedy, or a seeded chain in llama.cpp's order.

    repetition penalty → top-k → top-p → min-p → temperature → softmax → draw

The chain works on the full logits vector the client assembled from the
vocabulary shards. temperature <= 0 means greedy (argmax, lowest id on ties).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import ModelError


@dataclass
class SamplingParams:
    temperature: float = 0.0
    top_k: int = 0                 # 0: off
    top_p: float = 1.0             # 1: off
    min_p: float = 0.0             # 0: off
    repetition_penalty: float = 1.0
    repetition_window: int = 64    # how many recent tokens the penalty looks at
    seed: int | None = None

    def validate(self) -> None:
        if self.temperature < 0 or self.top_k < 0 or not 0 < self.top_p <= 1 or not 0 <= self.min_p <= 1:
            raise ModelError(f"invalid sampling parameters {self}")
        if self.repetition_penalty <= 0:
            raise ModelError("repetition_penalty must be > 0")


def candidates_needed(params: SamplingParams, most: int) -> int:
    """How many best logits per vocabulary shard decide the next token exactly; 0: all of them.

    Greedy needs each shard's best (1). Top-k sampling needs k per shard: the chain starts with
    top-k, so nothing past the k best of the whole vocabulary matters, and those are among the
    k best of their own shard. A repetition penalty moves penalized logits, so it needs all; so
    does sampling without top-k (top-p / min-p / temperature see the whole distribution)."""
    if params.repetition_penalty != 1.0:
        return 0
    if params.temperature <= 0:
        return 1
    return params.top_k if 0 < params.top_k <= most else 0


@dataclass
class Sampler:
    params: SamplingParams = field(default_factory=SamplingParams)

    def __post_init__(self) -> None:
        self.params.validate()
        self.rng = np.random.default_rng(self.params.seed)

    def __call__(self, logits: np.ndarray, history: Sequence[int] = ()) -> int:
        """logits (n_vocab,) -> the next token id."""
        p = self.params
        z = np.asarray(logits, np.float64).copy()
        # 1. repetition penalty (llama.cpp: positive logits divided, negative multiplied)
        if p.repetition_penalty != 1.0 and len(history):
            seen = np.unique(np.asarray(history[-p.repetition_window:], np.int64))
            z[seen] = np.where(z[seen] > 0, z[seen] / p.repetition_penalty, z[seen] * p.repetition_penalty)
        if p.temperature <= 0:
            return int(np.argmax(z))
        # 2. candidates sorted by logit, descending (stable: lower id first on ties)
        order = np.argsort(-z, kind="stable")
        if p.top_k > 0:
            order = order[: p.top_k]
        cand = z[order]
        probs = np.exp(cand - cand[0])
        probs /= probs.sum()
        # 3. top-p: the smallest prefix whose mass reaches top_p
        if p.top_p < 1.0:
            keep = int(np.searchsorted(np.cumsum(probs), p.top_p) + 1)
            order, cand, probs = order[:keep], cand[:keep], probs[:keep]
        # 4. min-p: drop candidates below min_p × the best probability
        if p.min_p > 0.0:
            keep = probs >= p.min_p * probs[0]
            order, cand = order[keep], cand[keep]
        # 5. temperature, then draw
        w = np.exp((cand - cand[0]) / p.temperature)
        return int(order[self.rng.choice(len(order), p=w / w.sum())])
