"""The golden comparisons run live against llama.cpp (skipped where llama-cpp-python is missing, as in CI).

llama.cpp runs one token per decode, F32 KV cache, no repacking, no flash attention
(benchmarks/reference/make_golden.py) and we compare full logits at every position.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from golden.compare import F32_ATOL, Case, greedy_report, kl_full, teacher_forced
from golden.models import engine_for, kl_bound, model_file, near_tie_tolerance

pytestmark = pytest.mark.llama
ROOT = Path(__file__).resolve().parents[1]
LIVE_PROMPTS = {"dense-f32": "the capital of the country is", "moe-f32": "in the city of the",
                "dense-q4_k_m": "the capital of the country is", "moe-q4_k_m": "in the city of the",
                "gemma": "The capital of France is"}


@pytest.fixture(scope="module")
def reference():  # type: ignore[no-untyped-def]
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (CI uses the golden fixtures)")
    sys.path.insert(0, str(ROOT / "benchmarks" / "reference"))
    import make_golden

    return make_golden


@pytest.mark.parametrize("model", [pytest.param(m, marks=[pytest.mark.slow] if m == "gemma" else [])
                                   for m in LIVE_PROMPTS])
async def test_live_agreement(model, reference, gemma_path, tmp_path):  # type: ignore[no-untyped-def]
    from libp2pia.engine.loader import load_model

    path = model_file(model, gemma_path, tmp_path)
    llm = reference.open_llama(path)
    prompt = llm.tokenize(LIVE_PROMPTS[model].encode(), add_bos=True, special=False)
    greedy, ref = reference.one_token_run(llm, prompt, 50)
    del llm
    top = np.argsort(-ref, axis=1)[:, :2]
    two = np.take_along_axis(ref, top, axis=1)
    case = Case(model, 0, np.array(prompt), np.array(greedy), top, two, np.zeros(len(ref)), two[:, 0] - two[:, 1])
    ours = await teacher_forced(engine_for(load_model(path), "inprocess"), case)
    if model.endswith("-f32"):
        assert np.abs(ours - ref).max() <= F32_ATOL
        assert (ours.argmax(-1) == ref.argmax(-1)).all()
        return
    rep = greedy_report(case, ours, near_tie_tolerance(model))
    assert not rep.failures, rep.failures
    if rep.near_ties:
        warnings.warn(f"{model}: greedy flips at llama.cpp near-ties: {rep.near_ties}", stacklevel=1)
    assert kl_full(ref, ours).mean() <= kl_bound(model)
