"""Engine behaviour on the small committed synthetic models: sessions, chunking, history, MoE fan-out,
stopping, the CLI. Agreement with llama.cpp itself is in test_engine_golden.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from libp2pia.engine.client import Engine
from libp2pia.engine.generation import Generation
from libp2pia.engine.inprocess import InProcessBackend
from libp2pia.engine.interface import ShardCall, ShardResult
from libp2pia.engine.loader import load_model
from libp2pia.engine.local import best_logits, execute, execute_all
from libp2pia.engine.runner import LocalRunner
from libp2pia.errors import ModelError, SessionError
from libp2pia.limits import MAX_LOGITS_TOP_K
from libp2pia.model.sampling import SamplingParams, candidates_needed
from engine_fixtures import DENSE, MOE, PROMPT, SMALL



class RecordingBackend(InProcessBackend):
    """The in-process backend, also recording every phase's calls (fragment, kind, layer, rows)."""

    def __init__(self, shards):  # type: ignore[no-untyped-def]
        super().__init__(shards)
        self.phases: list[list[tuple[str, str, int | None, int, int, bool]]] = []

    async def call(self, session_id: str, calls: list[ShardCall]) -> list[ShardResult]:
        self.phases.append([(c.fragment_id, c.kind, c.layer, len(c.positions), c.top_k, c.embeddings)
                            for c in calls])
        return await super().call(session_id, calls)


@pytest.fixture(scope="module")
def dense():  # type: ignore[no-untyped-def]
    """Cut in memory into small fragments so that every phase spans several shards."""
    return load_model(DENSE, max_fragment_bytes=SMALL)


@pytest.fixture(scope="module")
def moe():  # type: ignore[no-untyped-def]
    return load_model(MOE, max_fragment_bytes=SMALL)


async def _logits(engine: Engine, pieces: list[list[int]]) -> np.ndarray:
    s = await engine.open_session()
    try:
        return np.concatenate([await engine.forward(s, p, all_logits=True) for p in pieces])
    finally:
        await engine.close_session(s)


async def test_continuing_a_session_equals_one_pass(dense):  # type: ignore[no-untyped-def]
    eng = Engine(dense.layout, InProcessBackend(dense.shards))
    whole = await _logits(eng, [PROMPT])
    split = await _logits(eng, [PROMPT[:4], PROMPT[4:7], [PROMPT[7]], PROMPT[8:]])
    np.testing.assert_allclose(split, whole, atol=1e-3)
    assert (split.argmax(-1) == whole.argmax(-1)).all()


async def test_prompt_chunks_equal_one_batch(dense):  # type: ignore[no-untyped-def]
    whole = await _logits(Engine(dense.layout, InProcessBackend(dense.shards)), [PROMPT])
    chunked = await _logits(Engine(dense.layout, InProcessBackend(dense.shards), prompt_chunk=3), [PROMPT])
    np.testing.assert_allclose(chunked, whole, atol=1e-3)


async def test_sessions_are_isolated_and_closed(dense):  # type: ignore[no-untyped-def]
    backend = InProcessBackend(dense.shards)
    eng = Engine(dense.layout, backend)
    alone = await _logits(eng, [PROMPT])
    a, b = await eng.open_session(), await eng.open_session()
    await eng.forward(b, [1, 500, 501])           # another conversation interleaved
    got = [await eng.forward(a, PROMPT[:5], all_logits=True)]
    await eng.forward(b, [502])
    got.append(await eng.forward(a, PROMPT[5:], all_logits=True))
    np.testing.assert_allclose(np.concatenate(got), alone, atol=1e-3)
    # per-layer history of normalized attention inputs, ready for a replay
    assert a.attention_history(0).shape == (len(PROMPT), dense.cfg.n_embd)
    await eng.close_session(a)
    await eng.close_session(b)
    held = [s for s in dense.shards.values() if hasattr(s, "sessions") and s.sessions]
    assert held == []
    with pytest.raises(SessionError):
        await eng.forward(a, [5])


async def test_context_limit():  # type: ignore[no-untyped-def]
    m = load_model(DENSE, context_limit=8)
    eng = Engine(m.layout, InProcessBackend(m.shards))
    s = await eng.open_session()
    await eng.forward(s, PROMPT[:6])
    with pytest.raises(ModelError, match="context"):
        await eng.forward(s, PROMPT[6:9])
    await eng.close_session(s)


async def test_two_phases_per_layer_and_partial_sums(dense):  # type: ignore[no-untyped-def]
    backend = RecordingBackend(dense.shards)
    eng = Engine(dense.layout, backend)
    await _logits(eng, [PROMPT[:3]])
    kinds = [ph[0][1] for ph in backend.phases]
    n = dense.cfg.n_layer
    assert kinds == ["embed"] + ["attention", "ffn"] * n + ["logits"]
    # the small fragments split every phase over several shards, whose partial outputs were summed
    assert all(len(ph) > 1 for ph in backend.phases[1:-1])


async def test_moe_calls_only_the_routed_experts(moe):  # type: ignore[no-untyped-def]
    backend = RecordingBackend(moe.shards)
    eng = Engine(moe.layout, backend)
    s = await eng.open_session()
    await eng.forward(s, PROMPT)
    backend.phases.clear()
    await eng.forward(s, [451])                   # one token: exactly top-k experts per layer
    await eng.close_session(s)
    cfg = moe.cfg
    ffn_phases = [ph for ph in backend.phases if ph[0][1] == "ffn"]
    assert len(ffn_phases) == cfg.n_layer
    for il, ph in enumerate(ffn_phases):
        experts = {e for e, frags in moe.layout.experts[il].items() for f, *_ in ph if f in frags}
        assert len(experts) == cfg.n_expert_used


async def test_generation_stops_at_eog_and_stop_strings(dense):  # type: ignore[no-untyped-def]
    from libp2pia.model.tokenizer import Tokenizer

    tok = Tokenizer.from_metadata(dense.metadata)
    eng = Engine(dense.layout, InProcessBackend(dense.shards))

    async def run(**kw):  # type: ignore[no-untyped-def]
        s = await eng.open_session()
        g = Generation(eng, s, PROMPT, 20, decode=tok.decode, **kw)
        streamed = [t.id async for t in g.stream()]
        await eng.close_session(s)
        assert streamed == g.tokens
        return g.result()

    free = await run()
    assert free.stop_reason == "length" and len(free.tokens) == 20
    eog = await run(eog={free.tokens[5]})
    assert eog.stop_reason == "eog" and eog.tokens == free.tokens[:free.tokens.index(free.tokens[5]) + 1]
    text = tok.decode(free.tokens)
    stop = text[len(text) // 2:len(text) // 2 + 3]
    cut = await run(stop_strings=[stop])
    assert cut.stop_reason == "stop_string" and stop not in cut.text and text.startswith(cut.text)


async def test_seeded_sampling_is_reproducible(dense):  # type: ignore[no-untyped-def]
    runner = LocalRunner(dense, __import__("libp2pia.model.tokenizer", fromlist=["Tokenizer"]).Tokenizer
                         .from_metadata(dense.metadata), Engine(dense.layout, InProcessBackend(dense.shards)))
    p = dict(temperature=1.0, top_k=40, top_p=0.95, min_p=0.01, seed=7)
    a = await runner.generate(PROMPT, 12, SamplingParams(**p))
    b = await runner.generate(PROMPT, 12, SamplingParams(**p))
    c = await runner.generate(PROMPT, 12, SamplingParams(**{**p, "seed": 8}))
    assert a.tokens == b.tokens and a.tokens != c.tokens


def test_cli_generate_json(capsys):  # type: ignore[no-untyped-def]
    from libp2pia.cli import main

    assert main(["generate", str(DENSE), "--prompt", "the capital of the country is", "-n", "6", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prompt_tokens"][0] == 1 and len(out["tokens"]) == 6 and isinstance(out["text"], str)
    assert out["timing"]["prompt_tokens_per_s"] > 0 and out["timing"]["decode_tokens_per_s"] > 0
    # greedy through the CLI = the golden greedy tokens llama.cpp produced for the same prompt
    ref = np.load(Path(__file__).parent / "golden" / "dense-q4_k_m-p0.npz")
    assert out["prompt_tokens"] == ref["prompt"].tolist()
    assert out["tokens"] == ref["greedy"][:6].tolist()


def test_worker_shards_from_fragment_files_match_the_gguf(tmp_path, dense):  # type: ignore[no-untyped-def]
    """A worker builds shards from its fragment files and the manifest alone; they compute what the
    in-memory plan's shards compute."""
    from libp2pia.engine.loader import shard_from_file
    from libp2pia.fragments import fragment

    manifest = fragment(DENSE, tmp_path / "frags", max_fragment_bytes=SMALL)
    from libp2pia.model.config import ModelConfig

    assert ModelConfig.from_manifest(manifest) == dense.cfg
    x = np.random.default_rng(3).standard_normal((3, dense.cfg.n_embd)).astype(np.float32)
    pos = np.arange(3, dtype=np.int32)
    checked = set()
    for i, entry in enumerate(manifest["fragments"]):           # same planner, same limit: same order
        names = {s["tensor"] for s in entry["slices"]}
        kind = {"attention": "attention", "ffn": "ffn"}.get(entry["role"])
        if entry["role"] == "vocab":
            kind = "logits" if "output.weight" in names else "embed"
        if kind is None or kind in checked:
            continue
        checked.add(kind)
        worker = shard_from_file(manifest, entry, tmp_path / "frags" / entry["file"])
        arg = np.array([entry["slices"][0]["rows"][0]], np.int32) if kind == "embed" else x
        call = ShardCall(entry["id"], kind, entry["layer"], pos[:len(arg)], arg)
        np.testing.assert_array_equal(execute(worker, "w", call).y, execute(dense.shards[f"plan-{i:05d}"], "w", call).y)
    assert checked == {"attention", "ffn", "embed", "logits"}


@pytest.mark.parametrize("params", [SamplingParams(),                                   # greedy: 1 per shard
                                    SamplingParams(temperature=0.9, top_k=12, top_p=0.9, seed=3),
                                    SamplingParams(temperature=0.9, top_k=0, seed=3),    # all logits
                                    SamplingParams(repetition_penalty=1.3)])             # all logits
async def test_top_k_logits_pick_what_full_logits_pick(dense, params):  # type: ignore[no-untyped-def]
    """Shards sending only their best candidates change nothing: the same tokens as with every
    logit sent (keep_logits forces the full vectors), over 16 steps, greedy and sampled."""
    backend = RecordingBackend(dense.shards)
    eng = Engine(dense.layout, backend)
    runs = []
    for keep in (False, True):
        s = await eng.open_session()
        g = Generation(eng, s, PROMPT, 16, SamplingParams(**vars(params)), keep_logits=keep)
        runs.append([t.id async for t in g.stream()])
        await eng.close_session(s)
        asked = {c[4] for ph in backend.phases for c in ph if c[1] == "logits"}
        backend.phases.clear()
        assert asked == {0 if keep else candidates_needed(params, MAX_LOGITS_TOP_K)}
    assert runs[0] == runs[1]


def _kinds(phases: list) -> list[str]:
    return [ph[0][1] for ph in phases]


@pytest.mark.slow
async def test_candidate_rows_replace_the_embed_phase(gemma_path: Path) -> None:
    """Gemma ties token_embd to output, so a greedy logits call brings back each shard's best
    token's embedding row and the next step needs no embed phase (one round trip less per token);
    the tokens are those of the run that embeds every step (keep_logits asks for every logit)."""
    model = load_model(gemma_path)
    backend = RecordingBackend(model.shards)
    eng = Engine(model.layout, backend)
    runs, kinds = [], []
    for keep in (False, True):
        s = await eng.open_session()
        runs.append([t.id async for t in Generation(eng, s, [2, 818, 5279, 529, 7001, 563], 6,
                                                     keep_logits=keep).stream()])
        await eng.close_session(s)
        kinds.append(_kinds(backend.phases))
        assert all(c[5] is not keep for ph in backend.phases for c in ph if c[1] == "logits")
        backend.phases.clear()
    assert runs[0] == runs[1]
    assert kinds[0].count("embed") == 1 and kinds[1].count("embed") == 6      # prompt only / every step
    assert kinds[0].count("logits") == kinds[1].count("logits") == 6


@pytest.mark.slow
def test_greedy_logits_phase_looks_up_one_row(gemma_path: Path) -> None:
    """Greedy (top_k = 1): of a phase's candidates only the best can be picked, so only its row is
    looked up, and it is the row of the overall argmax; with top_k = 2 every candidate's row comes."""
    model = load_model(gemma_path)
    x = np.random.default_rng(7).standard_normal((1, model.layout.cfg.n_embd)).astype(np.float32)
    frags = [f for _, _, f in model.layout.logits]
    full = np.concatenate([execute(model.shards[f], "s", ShardCall(f, "logits", None, np.zeros(1, np.int32), x)).y
                           for f in frags], axis=1)
    for k in (1, 2):
        calls = [ShardCall(f, "logits", None, np.zeros(1, np.int32), x, top_k=k, embeddings=True) for f in frags]
        res = execute_all(model.shards.__getitem__, "s", calls)
        with_rows = [r for r in res if r.embeddings is not None]
        assert len(with_rows) == (1 if k == 1 else len(frags))
        for r in with_rows:
            np.testing.assert_array_equal(r.embeddings, _lookup(model, r.ids.ravel()))
        if k == 1:
            assert int(with_rows[0].ids[0, 0]) == int(np.argmax(full[0]))


def _lookup(model, ids: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Embedding rows through ordinary embed calls (the reference the candidate rows must equal)."""
    rows = []
    for t in ids:
        f = next(f for r0, r1, f in model.layout.embed if r0 <= t < r1)
        rows.append(execute(model.shards[f], "s", ShardCall(f, "embed", None, np.zeros(1, np.int32),
                                                            np.array([t], np.int32))).y[0])
    return np.stack(rows)


async def test_untied_output_embeds_as_before(dense) -> None:  # type: ignore[no-untyped-def]
    """The synthetic llama has its own output matrix: logits shards hold no embedding rows, so they
    send none and every step embeds through the token_embd shards."""
    backend = RecordingBackend(dense.shards)
    eng = Engine(dense.layout, backend)
    s = await eng.open_session()
    toks = [t.id async for t in Generation(eng, s, PROMPT, 4).stream()]
    await eng.close_session(s)
    assert len(toks) == 4 and _kinds(backend.phases).count("embed") == 4
    assert all(c[5] for ph in backend.phases for c in ph if c[1] == "logits")     # asked, none came


def _best_by_sorting(y: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-y, axis=1, kind="stable")[:, :k]


@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 40)),
                  elements=st.integers(-4, 4).map(float)),       # small integers: many ties
       st.integers(1, 50))
def test_best_logits_equal_a_stable_sort(y: np.ndarray, k: int) -> None:
    vals, idx = best_logits(y, k)
    want = _best_by_sorting(y, min(k, y.shape[1]))
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_array_equal(vals, np.take_along_axis(y, want, axis=1))
