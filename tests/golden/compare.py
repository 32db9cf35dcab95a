"""Shared by the golden tests and benchmarks: run our engine teacher-forced on a fixture's sequence and
compare with llama.cpp's logits (top-K fixture or full live logits)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).resolve().parent
INDEX: dict = json.loads((GOLDEN / "index.json").read_text())
#: F32 models: |our logit - llama.cpp's| bound (issue #4)
F32_ATOL = 1e-4


@dataclass
class Case:
    model: str
    index: int
    prompt: np.ndarray
    greedy: np.ndarray
    top_ids: np.ndarray
    top_logits: np.ndarray
    lse: np.ndarray
    margin: np.ndarray
    first_row: int = 0          # fixture row i is position first_row + i (long prompts keep only the tail)

    @property
    def sequence(self) -> list[int]:
        """Prompt + llama.cpp's greedy continuation minus its last token: what gets fed."""
        return [int(t) for t in self.prompt] + [int(t) for t in self.greedy[:-1]]


def cases(model: str) -> list[Case]:
    out = []
    for i, c in enumerate(INDEX[model]["cases"]):
        z = np.load(GOLDEN / c["file"])
        first = int(z["first_row"]) if "first_row" in z.files else 0
        out.append(Case(model, i, z["prompt"], z["greedy"], z["top_ids"], z["top_logits"], z["lse"], z["margin"],
                        first))
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def kl_topk(case: Case, ours: np.ndarray) -> np.ndarray:
    """KL(llama || ours) per position from llama's top-K plus one bucket for the rest of the vocabulary
    (a lower bound of the full KL that is tight when the top-K hold nearly all the mass)."""
    lq = log_softmax(ours)                                                       # (L, V)
    lp_top = case.top_logits.astype(np.float64) - case.lse[:, None]              # (L, K)
    lq_top = np.take_along_axis(lq, case.top_ids.astype(np.int64), axis=1)       # (L, K)
    p_top, q_top = np.exp(lp_top), np.exp(lq_top)
    p_rest = np.clip(1 - p_top.sum(1), 1e-300, None)
    q_rest = np.clip(1 - q_top.sum(1), 1e-300, None)
    return (p_top * (lp_top - lq_top)).sum(1) + p_rest * (np.log(p_rest) - np.log(q_rest))


def kl_full(ref: np.ndarray, ours: np.ndarray) -> np.ndarray:
    lp, lq = log_softmax(ref), log_softmax(ours)
    return (np.exp(lp) * (lp - lq)).sum(-1)


@dataclass
class GreedyReport:
    agreed: int                 # generated positions whose argmax equals llama.cpp's greedy token
    total: int
    near_ties: list[tuple[int, int, int, float]]   # (step, ours, llama, llama's margin) mismatches at near-ties
    failures: list[tuple[int, int, int, float]]    # mismatches where llama.cpp's margin exceeded the tolerance


def greedy_report(case: Case, ours: np.ndarray, tol: float) -> GreedyReport:
    """Teacher-forced greedy agreement: our argmax at each generated position vs llama.cpp's token."""
    p = len(case.prompt) - case.first_row                # `ours` row i is position first_row + i
    gen_rows = ours[p - 1:p - 1 + len(case.greedy)]
    mine = gen_rows.argmax(-1)
    near, fail = [], []
    for step, (a, b) in enumerate(zip(mine, case.greedy)):
        if a != b:
            m = float(case.margin[p - 1 + step])
            (near if m < tol else fail).append((step, int(a), int(b), m))
    return GreedyReport(int((mine == case.greedy).sum()), len(case.greedy), near, fail)


async def teacher_forced(engine, case: Case) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Our logits at the fixture's positions (first_row on): the prompt as one batch (matmul path), then
    llama.cpp's greedy tokens one at a time (matvec path). Returns (L, n_vocab), row i = position first_row + i."""
    seq = case.sequence
    p, f = len(case.prompt), case.first_row
    session = await engine.open_session()
    try:
        if f:
            await engine.forward(session, seq[:f])          # positions without fixture rows: no logits kept
        rows = [await engine.forward(session, seq[f:p], all_logits=True)]
        for t in seq[p:]:
            rows.append(await engine.forward(session, [t]))
        return np.concatenate(rows)
    finally:
        await engine.close_session(session)
