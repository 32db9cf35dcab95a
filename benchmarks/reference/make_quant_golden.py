"""Write tests/data/quant_golden.npz: per type, ggml-quantized bytes, activations and ggml's own vec_dot rows.

CI has no llama-cpp-python; tests/test_quant_ggml.py checks libp2pia.quant against these numbers, produced
by llama.cpp (ggml_quantize_chunk + the CPU vec_dot of the installed llama-cpp-python).

    /work/venv/bin/python benchmarks/reference/make_quant_golden.py [--out tests/data/quant_golden.npz]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.reference import ggml_ref  # noqa: E402

TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
         "IQ4_NL", "IQ4_XS"]
ROWS, COLS = 12, 512


def activations(rng: np.random.Generator) -> np.ndarray:
    """Four activation rows that stress the activation quantizer differently."""
    X = np.empty((4, COLS), np.float32)
    X[0] = rng.standard_normal(COLS)                                # plain
    X[1] = rng.standard_normal(COLS) * np.exp(rng.standard_normal(COLS) * 2)  # heavy tails, outliers
    X[2] = rng.standard_normal(COLS) * 300.0                        # Gemma-like large norms
    X[2, :64] = 0.0                                                 # an all-zero block
    X[3] = rng.standard_normal(COLS) * 1e-3                         # small values
    X[3, 256:288] = np.ldexp(rng.standard_normal(32), -130)         # one block of float32 denormals
    return X


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "tests/data/quant_golden.npz"))
    args = ap.parse_args()
    rng = np.random.default_rng(20261122)
    X = activations(rng)
    out: dict[str, np.ndarray] = {"X": X}
    for name in TYPES:
        W = (rng.standard_normal((ROWS, COLS)) * rng.uniform(0.01, 2.0, (ROWS, 1))).astype(np.float32)
        raw = ggml_ref.quantize(name, W)
        out[f"{name}/raw"] = raw
        out[f"{name}/Y"] = np.stack([ggml_ref.vec_dot_rows(name, raw, x) for x in X])
    tmp = args.out + ".tmp.npz"
    np.savez_compressed(tmp, **out)
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, {len(TYPES)} types)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
