"""Synthetic GGUFs: readable by gguf-py, deterministic, all three families and both expert layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader

from libp2pia.gguf import hparams, read_header, tensor_role
from libp2pia.gguf.synth import SynthConfig, quantize_q4_k_m, write_synthetic


@pytest.mark.parametrize("cfg", [SynthConfig(), SynthConfig(kind="moe"), SynthConfig(kind="moe", layout="legacy"),
                                 SynthConfig(kind="deepseek", n_layer=2, qtype="F16"),
                                 SynthConfig(qtype="Q8_0"), SynthConfig(qtype="Q6_K")],
                         ids=lambda c: f"{c.kind}-{c.layout}-{c.qtype}")
def test_synthetic_models(tmp_path: Path, cfg: SynthConfig) -> None:
    p = write_synthetic(tmp_path / "m.gguf", cfg)
    ref = GGUFReader(p)
    header = read_header(p)
    assert len(ref.tensors) == len(header.tensors)
    roles = {tensor_role(t).role for t in header.tensors}
    assert "unknown" not in roles
    hp = hparams(header)
    assert hp["n_layer"] == cfg.n_layer and hp["vocab_size"] == cfg.n_vocab
    if cfg.kind == "moe":
        assert "expert" in roles and "router" in roles
        legacy = any(".ffn_gate.0." in t.name for t in header.tensors)
        assert legacy == (cfg.layout == "legacy")
    if cfg.kind == "deepseek":
        assert {"attn_shared", "shared_expert", "expert", "ffn"} <= roles
    again = write_synthetic(tmp_path / "again.gguf", cfg)
    assert again.read_bytes() == p.read_bytes()
    other = write_synthetic(tmp_path / "other.gguf", SynthConfig(**{**cfg.__dict__, "seed": 1}))
    assert other.read_bytes() != p.read_bytes()


@pytest.mark.llama
def test_quantize_q4_k_m_with_llama_cpp(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    src = write_synthetic(tmp_path / "f32.gguf", SynthConfig(kind="moe", n_expert=8))
    out = quantize_q4_k_m(src, tmp_path / "q.gguf")
    types = {t.name: t.qtype.name for t in read_header(out).tensors}
    assert types["blk.0.attn_k.weight"] == "Q8_0"          # the n_expert == 8 rule
    assert types["blk.0.ffn_gate_exps.weight"] == "Q4_K"
    assert np.isin(list(types.values()), ["F32", "Q4_K", "Q5_K", "Q6_K", "Q8_0"]).all()
