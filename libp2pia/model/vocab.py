"""Vocabulary shard: rows [r0, r1) of token_embd (embedding lookup) and/or output (logits).

Gemma ties them: the same rows serve both. Token ids and logits are in global
vocabulary numbering; the shard translates to its local rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ModelError
from .weights import QMatrix


@dataclass
class VocabShard:
    row0: int
    embed: QMatrix | None      # token_embd rows [row0, row0 + embed.rows)
    output: QMatrix | None     # output (or tied token_embd) rows [row0, row0 + output.rows)

    def lookup(self, token_ids: np.ndarray) -> np.ndarray:
        """token ids (n,) all inside this shard's rows -> float32 embeddings (n, n_embd), unscaled."""
        if self.embed is None:
            raise ModelError("this vocabulary shard holds no embedding rows")
        local = np.asarray(token_ids, np.int64) - self.row0
        if local.size and (local.min() < 0 or local.max() >= self.embed.rows):
            raise ModelError(f"token id outside rows [{self.row0}, {self.row0 + self.embed.rows})")
        return self.embed.rows_dequantized(local)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """x (n, n_embd) final-normed hidden -> logits (n, rows) for this shard's vocabulary rows."""
        if self.output is None:
            raise ModelError("this vocabulary shard holds no output rows")
        return self.output(x)
