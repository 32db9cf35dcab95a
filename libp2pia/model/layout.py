"""What the client needs to drive a model: which fragment serves which phase, plus the client-side weights.

Built from a fragment plan or manifest (the list of fragment dicts) and the core
data (norms, routers). Pure data; the engine fans calls out according to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ManifestError
from .config import ModelConfig
from .residual import norm_weight


def fragment_key(frag: Mapping[str, Any], index: int) -> str:
    """A fragment's id, or a stable stand-in for an in-memory plan entry (plans carry no ids)."""
    return str(frag.get("id") or f"plan-{index:05d}")


@dataclass
class ModelLayout:
    cfg: ModelConfig
    norms: dict[str, np.ndarray]                                 # 1-D weights by GGUF name
    routers: dict[int, np.ndarray] = field(default_factory=dict)  # layer -> (n_expert, n_embd) float32
    attention: list[list[str]] = field(default_factory=list)      # layer -> fragment ids
    ffn: list[list[str]] = field(default_factory=list)            # layer -> dense FFN slabs
    experts: list[dict[int, list[str]]] = field(default_factory=list)  # layer -> expert -> slabs
    shared: list[list[str]] = field(default_factory=list)         # layer -> shared-expert slabs
    embed: list[tuple[int, int, str]] = field(default_factory=list)    # (row0, row1, id), sorted
    logits: list[tuple[int, int, str]] = field(default_factory=list)

    @classmethod
    def from_fragments(cls, cfg: ModelConfig, fragments: Iterable[Mapping[str, Any]],
                       norms: Mapping[str, np.ndarray], routers: Mapping[int, np.ndarray]) -> "ModelLayout":
        n = cfg.n_layer
        lay = cls(cfg, dict(norms), dict(routers), [[] for _ in range(n)], [[] for _ in range(n)],
                  [{} for _ in range(n)], [[] for _ in range(n)])
        for i, frag in enumerate(fragments):
            key, role, layer = fragment_key(frag, i), frag["role"], frag.get("layer")
            if role == "attention":
                lay.attention[layer].append(key)
            elif role == "ffn":
                lay.ffn[layer].append(key)
            elif role == "expert":
                lay.experts[layer].setdefault(int(frag["expert"]), []).append(key)
            elif role == "shared_expert":
                lay.shared[layer].append(key)
            elif role == "vocab":
                for s in frag["slices"]:
                    r0, r1 = (int(v) for v in s["rows"])
                    if s["tensor"] == "token_embd.weight":
                        lay.embed.append((r0, r1, key))
                        if cfg.tied_output:
                            lay.logits.append((r0, r1, key))
                    elif s["tensor"] == "output.weight":
                        lay.logits.append((r0, r1, key))
        lay.embed.sort()
        lay.logits.sort()
        lay.check()
        return lay

    def check(self) -> None:
        """Every phase has at least one shard, and the vocabulary rows tile [0, n_vocab)."""
        cfg = self.cfg
        for il in range(cfg.n_layer):
            if not self.attention[il]:
                raise ManifestError(f"layer {il} has no attention fragment")
            if cfg.is_moe:
                if len(self.experts[il]) != cfg.n_expert or il not in self.routers:
                    raise ManifestError(f"layer {il} lacks experts or its router")
            elif not self.ffn[il]:
                raise ManifestError(f"layer {il} has no FFN fragment")
        for name, ranges in (("embedding", self.embed), ("output", self.logits)):
            end = 0
            for r0, r1, _ in ranges:
                if r0 != end:
                    raise ManifestError(f"{name} rows do not tile the vocabulary (gap or overlap at {end})")
                end = r1
            if end != cfg.n_vocab:
                raise ManifestError(f"{name} rows cover {end} of {cfg.n_vocab} tokens")

    def norm(self, name: str) -> np.ndarray:
        return norm_weight(self.norms, name)

    def run_order(self) -> list[str]:
        """The dense layers' fragments in phase order (attention, FFN, next layer, ...): what a holder of
        consecutive ones can compute in one run. Empty for MoE models (the router sits between phases)."""
        if self.cfg.is_moe:
            return []
        return [f for il in range(self.cfg.n_layer) for f in self.attention[il] + self.ffn[il]]
