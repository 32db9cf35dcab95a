"""FFN / expert shard: gate and up rows [a, b) of the intermediate dimension and down columns [a, b).

down(act(gate x) ⊙ up x) restricted to the slab is a *partial* FFN output; the
partial outputs of all slabs of a layer (or of one expert) sum to the full one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ops import gated_act
from .weights import QMatrix


@dataclass
class FFNShard:
    layer: int
    expert: int | None
    gate: QMatrix          # (b - a) rows × n_embd
    up: QMatrix            # (b - a) rows × n_embd
    down: QMatrix          # n_embd rows × (b - a) columns
    act: str               # "silu" | "gelu_tanh"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (n, n_embd) normalized -> partial FFN output (n, n_embd)."""
        g = self.gate(x)                              # (n, b - a)
        u = self.up(x)                                # (n, b - a)
        h = gated_act(g, u, self.act)                 # (n, b - a)
        return self.down(np.ascontiguousarray(h))     # (n, n_embd)
