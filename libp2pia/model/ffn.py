"""FFN / expert shard: gate and up rows [a, b) of the intermediate dimension and down columns [a, b).

down(act(gate x) ⊙ up x) restricted to the slab is a *partial* FFN output; the
partial outputs of all slabs of a layer (or of one expert) sum to the full one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ops import gated_act
from .weights import FusedRows, QMatrix


@dataclass
class FFNShard:
    layer: int
    expert: int | None
    gate_up: FusedRows     # gate and up rows [a, b) × n_embd (one kernel call when their types agree)
    down: QMatrix          # n_embd rows × (b - a) columns
    act: str               # "silu" | "gelu_tanh"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (n, n_embd) normalized -> partial FFN output (n, n_embd)."""
        g, u = self.gate_up(x)                        # (n, b - a) each
        h = gated_act(g, u, self.act)                 # (n, b - a)
        return self.down(np.ascontiguousarray(h))     # (n, n_embd)
