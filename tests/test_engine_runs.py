"""Runs (layer chaining): consecutive dense phases computed in one call by their holder compute exactly
what the client computes phase by phase -- in float32, and with wire rounding (float16/bfloat16)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from libp2pia.engine.client import Engine
from libp2pia.engine.generation import Generation
from libp2pia.engine.inprocess import InProcessBackend
from libp2pia.engine.interface import RunCall, RunPhase, ShardCall, ShardResult
from libp2pia.engine.loader import load_model
from libp2pia.engine.local import execute_run
from libp2pia.errors import ModelError
from libp2pia.model.residual import Residual
from libp2pia.wire.tensor import wire_round
from engine_fixtures import DENSE, MOE, PROMPT, SMALL



class WireLikeBackend(InProcessBackend):
    """In-process shards, with every tensor rounded as the network path rounds it: phase calls send
    x and get partial outputs in ``dtype``; runs round at the same places (``execute_run``'s
    ``rounding``). ``chain`` switches runs on. Records how many calls and runs were made."""

    def __init__(self, model, dtype: str, chain: bool) -> None:  # type: ignore[no-untyped-def]
        super().__init__(model.shards, Residual(model.cfg, model.layout.norms) if chain else None)
        self.dtype = dtype
        self.runs: list[int] = []                 # phases per run
        self.phase_calls = 0

    async def call(self, session_id: str, calls: list[ShardCall]) -> list[ShardResult]:
        self.phase_calls += 1
        rounded = [c if c.kind == "embed" else ShardCall(c.fragment_id, c.kind, c.layer, c.positions,
                                                          wire_round(c.x, self.dtype), c.weight, c.top_k,
                                                          c.embeddings) for c in calls]
        out = await super().call(session_id, rounded)
        for c, r in zip(calls, out):
            if c.kind in ("attention", "ffn"):
                r.y = wire_round(r.y, self.dtype)
        return out

    async def run(self, session_id: str, run: RunCall):  # type: ignore[no-untyped-def]
        self.runs.append(len(run.phases))
        self._check(session_id, [f for ph in run.phases for f in ph.fragment_ids])
        return execute_run(self.shards.__getitem__, session_id, self.residual, run,
                           lambda a: wire_round(a, self.dtype))


@pytest.fixture(scope="module")
def dense():  # type: ignore[no-untyped-def]
    return load_model(DENSE, max_fragment_bytes=SMALL)   # several shards per phase


async def _greedy(model, backend, n: int = 8, keep_logits: bool = True  # type: ignore[no-untyped-def]
                  ) -> tuple[list[int], list[np.ndarray]]:
    eng = Engine(model.layout, backend)
    s = await eng.open_session()
    toks = [t.id async for t in Generation(eng, s, PROMPT, n, keep_logits=keep_logits).stream()]
    hist = [s.attention_history(l) for l in range(model.cfg.n_layer)]
    await eng.close_session(s)
    return toks, hist


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
async def test_runs_equal_phase_by_phase(dense, dtype: str) -> None:  # type: ignore[no-untyped-def]
    phased = WireLikeBackend(dense, dtype, chain=False)
    chained = WireLikeBackend(dense, dtype, chain=True)
    a, hist_a = await _greedy(dense, phased)
    b, hist_b = await _greedy(dense, chained)
    assert a == b
    # every decode step was one run over all 2 x n_layer phases; the prompt went phase by phase
    assert chained.runs == [2 * dense.cfg.n_layer] * (len(b) - 1)
    assert phased.runs == []
    # the attention history the runs sent back is bit for bit what the shards saw phase by phase
    # (the client keeps its inputs unrounded; a replay rounds them again on the wire)
    for x, y in zip(hist_a, hist_b, strict=True):
        assert x.shape == y.shape == (len(PROMPT) + len(b) - 1, dense.cfg.n_embd)
        np.testing.assert_array_equal(wire_round(x, dtype), wire_round(y, dtype))


async def test_runs_equal_phase_by_phase_logits(dense) -> None:  # type: ignore[no-untyped-def]
    """Not only the argmax: every logit of every step is identical (float32 path)."""
    outs = []
    for chain in (False, True):
        eng = Engine(dense.layout, WireLikeBackend(dense, "float32", chain))
        s = await eng.open_session()
        rows = [await eng.forward(s, PROMPT)]
        for t in (451, 567, 339):
            rows.append(await eng.forward(s, [t]))
        outs.append(np.concatenate(rows))
        await eng.close_session(s)
    np.testing.assert_array_equal(outs[0], outs[1])


async def test_moe_is_never_chained() -> None:
    moe = load_model(MOE, max_fragment_bytes=SMALL)
    phased = WireLikeBackend(moe, "float32", chain=False)
    chained = WireLikeBackend(moe, "float32", chain=True)
    a, _ = await _greedy(moe, phased, 4)
    b, _ = await _greedy(moe, chained, 4)
    assert a == b and chained.runs == []       # the router between phases runs at the client


def test_run_refuses_shards_of_another_layer_or_kind(dense) -> None:  # type: ignore[no-untyped-def]
    res = Residual(dense.cfg, dense.layout.norms)
    h = np.zeros((1, dense.cfg.n_embd), np.float32)
    pos = np.zeros(1, np.int32)
    attn0, ffn0 = dense.layout.attention[0], dense.layout.ffn[0]
    for phase in (RunPhase("attention", 1, attn0), RunPhase("ffn", 0, attn0), RunPhase("attention", 0, ffn0)):
        with pytest.raises(ModelError, match="is not a"):
            execute_run(dense.shards.__getitem__, "s", res, RunCall([phase], pos, h))


@pytest.mark.slow
async def test_gemma_decode_is_one_run_per_token(gemma_path: Path) -> None:
    model = load_model(gemma_path)
    phased = WireLikeBackend(model, "float16", chain=False)
    chained = WireLikeBackend(model, "float16", chain=True)
    a, _ = await _greedy(model, phased, 6, keep_logits=False)
    b, _ = await _greedy(model, chained, 6, keep_logits=False)
    assert a == b
    assert chained.runs == [2 * model.cfg.n_layer] * 5
    # 1 embed + 36 phases for the prompt and its logits; then per token one run and the logits phase
    # (which brings back the next token's embedding row)
    assert chained.phase_calls == 1 + 2 * model.cfg.n_layer + 6
