"""The small committed models the engine tests run on, and their common prompt."""

from __future__ import annotations

from pathlib import Path

MODELS = Path(__file__).parent / "golden" / "models"
DENSE = MODELS / "dense-q4_k_m.gguf"
MOE = MODELS / "moe-q4_k_m.gguf"
#: fragment limit that cuts every phase of the small models into several shards
SMALL = 128 * 1024
PROMPT = [1, 451, 567, 339, 472, 562, 453, 451, 420, 338]
