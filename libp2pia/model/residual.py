"""The residual stream between two phases of a layer: norm in, partial sums, post-norm, residual add.

Per phase (DESIGN.md §1; ``kind`` is "attention" or "ffn"):

    x   = rms_norm(h, <kind>_in_norm)          # what every shard of the phase receives   (n, n_embd)
    out = Σ partial outputs, in fragment order  # one per shard                              (n, n_embd)
    h   = h + [rms_norm(out, <kind>_post_norm)] # the post-norm only for sandwich-norm models (Gemma)

The client engine runs this between the phases it sends out one by one; a worker that holds every
shard of consecutive phases runs the same functions for a whole run of them (engine.local), so the
two paths compute the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ManifestError
from .config import ModelConfig
from .ops import rms_norm

#: GGUF norm names per phase kind: (input norm, post norm of sandwich-norm models)
PHASE_NORMS: dict[str, tuple[str, str]] = {
    "attention": ("attn_norm", "post_attention_norm"),
    "ffn": ("ffn_norm", "post_ffw_norm"),
}


def norm_weight(norms: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """A 1-D norm weight by GGUF name; ManifestError when the core data lacks it."""
    try:
        return norms[name]
    except KeyError:
        raise ManifestError(f"core data lacks {name}") from None


def sum_partials(ys: Sequence[np.ndarray]) -> np.ndarray:
    """Σ of a phase's partial outputs in the given (fragment) order, float32, a fresh array."""
    out = np.array(ys[0], np.float32)
    for y in ys[1:]:
        out += y
    return out


@dataclass(frozen=True)
class Residual:
    """The per-phase math around the shards of a dense layer, for one model."""

    cfg: ModelConfig
    norms: Mapping[str, np.ndarray]

    def phase_input(self, kind: str, layer: int, h: np.ndarray) -> np.ndarray:
        """x = rms_norm(h) with the phase's input norm: (n, n_embd) -> (n, n_embd)."""
        name = PHASE_NORMS[kind][0]
        return rms_norm(h, norm_weight(self.norms, f"blk.{layer}.{name}.weight"), self.cfg.eps)

    def add(self, kind: str, layer: int, h: np.ndarray, out: np.ndarray) -> np.ndarray:
        """h + out (post-normed on sandwich-norm models): the residual stream after the phase."""
        if self.cfg.sandwich_norm:
            name = PHASE_NORMS[kind][1]
            out = rms_norm(out, norm_weight(self.norms, f"blk.{layer}.{name}.weight"), self.cfg.eps)
        return h + out
