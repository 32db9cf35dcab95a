"""Agreement with llama.cpp through the committed golden fixtures (tests/golden/, made by
benchmarks/reference/make_golden.py) -- no llama.cpp needed. The same comparisons run live against
llama.cpp in test_engine_live.py.

| model          | check                                                                        |
|----------------|------------------------------------------------------------------------------|
| *-f32          | logits within 1e-4 of llama.cpp (its top-64 per position), greedy identical  |
| *-q4_k_m, gemma| greedy identical except at llama.cpp near-ties; mean KL ≤ llama.cpp's spread |

Every model runs from the plain GGUF (fragmented in memory) and from a manifest directory.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from libp2pia.limits import DEFAULT_MAX_FRAGMENT_BYTES

from golden.compare import F32_ATOL, INDEX, cases, greedy_report, kl_topk, teacher_forced
from golden.models import ENGINE_BACKENDS, SOURCES, engine_for, kl_bound, near_tie_tolerance

F32_MODELS = [m for m in INDEX if m.endswith("-f32")]
#: fragment size for the small synthetic models, so attention/FFN/vocab each span several fragments
SMALL_FRAGMENT = 256 * 1024
QUANT_MODELS = [m for m in INDEX if not m.endswith("-f32")]


#: Every Gemma prompt runs from the GGUF; the first one also from fragment files (the sources are
#: shown equal on every synthetic prompt already), and the long sliding-window prompt from the GGUF.


def _params(models):  # type: ignore[no-untyped-def]
    """(model, case, source) for every fixture case and both sources, within the Gemma budget above."""
    def marks(m, i):  # type: ignore[no-untyped-def]
        out = [pytest.mark.slow] if m.startswith("gemma") else []
        return out

    return [pytest.param(m, c.index, src, id=f"{m}-p{c.index}-{src}", marks=marks(m, c.index))
            for m in models for c in cases(m) for src in SOURCES if m != "gemma" or src == "gguf" or c.index == 0
            if m != "gemma-long" or src == "gguf"]


@pytest.fixture(params=sorted(ENGINE_BACKENDS))
def backend_name(request):  # type: ignore[no-untyped-def]
    return request.param


@pytest.mark.parametrize("model,case_index,source", _params(F32_MODELS))
async def test_f32_logits_match_llama_cpp(model, case_index, source, backend_name, golden_models):
    case = cases(model)[case_index]
    engine = engine_for(golden_models(model, source), backend_name)
    ours = await teacher_forced(engine, case)
    got = np.take_along_axis(ours, case.top_ids.astype(np.int64), axis=1)
    err = np.abs(got - case.top_logits)
    assert err.max() <= F32_ATOL, f"max |Δlogit| {err.max():.3g} at position {int(err.max(1).argmax())}"
    rep = greedy_report(case, ours, tol=0.0)
    assert rep.agreed == rep.total == len(case.greedy) >= 50


@pytest.mark.parametrize("model,case_index,source", _params(QUANT_MODELS))
async def test_quantized_greedy_and_kl(model, case_index, source, backend_name, golden_models):
    case = cases(model)[case_index]
    engine = engine_for(golden_models(model, source), backend_name)
    ours = await teacher_forced(engine, case)
    rep = greedy_report(case, ours, tol=near_tie_tolerance(model))
    assert not rep.failures, f"greedy mismatches where llama.cpp was not near a tie: {rep.failures}"
    if rep.near_ties:
        warnings.warn(f"{model} p{case_index}: {len(rep.near_ties)} greedy flips at llama.cpp near-ties "
                      f"(step, ours, llama, margin): {rep.near_ties}", stacklevel=1)
    assert rep.total >= (50 if case.first_row == 0 else 16)
    kl = kl_topk(case, ours)
    assert kl.mean() <= kl_bound(model), f"mean KL {kl.mean():.3g} > bound {kl_bound(model):.3g}"


@pytest.fixture(scope="session")
def golden_models(gemma_path, tmp_path_factory):  # type: ignore[no-untyped-def]
    """(model name, source) -> LoadedModel, loaded once per test session."""
    from golden.models import model_file

    from libp2pia.engine.loader import load_model

    scratch = tmp_path_factory.mktemp("golden-models")
    loaded: dict = {}

    def get(name: str, source: str):  # type: ignore[no-untyped-def]
        path = model_file(name, gemma_path, scratch)
        key = (path, source)                 # gemma and gemma-long share one loaded model
        if key not in loaded:
            if source == "fragments":
                path = fragment_dir(path, scratch / f"{path.stem}-fragments")
            loaded[key] = load_model(path)
        return loaded[key]

    return get


def fragment_dir(gguf_path, out):  # type: ignore[no-untyped-def]
    """Cut a GGUF into fragment files + manifest.json with libp2pia.fragments (small fragments so that
    every model is split into several shards per role)."""
    from libp2pia.fragments import fragment

    if not (out / "manifest.json").exists():
        size = gguf_path.stat().st_size
        fragment(gguf_path, out, max_fragment_bytes=DEFAULT_MAX_FRAGMENT_BYTES if size > 64 << 20 else SMALL_FRAGMENT)
    return out
