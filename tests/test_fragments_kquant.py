"""Round trips on synthetic models quantized to Q4_K_M by llama.cpp itself (real K-quant mixtures:
Q4_K/Q6_K, Q5_0 fallbacks, Q8_0 for Mixtral-like attention). Needs llama-cpp-python; CI covers
K-quants through the real Gemma file instead."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from libp2pia.fragments import fragment, reassemble
from libp2pia.gguf.synth import SynthConfig, quantize_q4_k_m, write_synthetic
from tests.frag_utils import Source, check_fragment_dequantizes

pytestmark = pytest.mark.llama

CASES = {
    "dense": SynthConfig(kind="dense", n_embd=512),
    "moe-stacked": SynthConfig(kind="moe", n_embd=512, n_expert=8),
    "moe-legacy": SynthConfig(kind="moe", layout="legacy", n_embd=512),
    "deepseek": SynthConfig(kind="deepseek", n_layer=2, n_embd=512, q_lora_rank=256, kv_lora_rank=256,
                            qk_nope=128, v_head_dim=128),
}


@pytest.mark.parametrize("name", list(CASES))
def test_q4_k_m_round_trip_and_dequantized_slices(name: str, tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    src = quantize_q4_k_m(write_synthetic(tmp_path / "f32.gguf", CASES[name]), tmp_path / "q.gguf")
    manifest = fragment(src, tmp_path / "frags", 96 * 1024)
    types = {s["type"] for f in manifest["fragments"] for s in f["slices"]}
    assert {"Q4_K", "Q6_K"} <= types
    digest = reassemble(tmp_path / "frags" / "manifest.json", tmp_path / "out.gguf")
    assert digest == hashlib.sha256(src.read_bytes()).hexdigest()
    source = Source(src)
    for f in manifest["fragments"]:
        assert f["bytes"] <= 96 * 1024 or f["oversize"]
        check_fragment_dequantizes(source, tmp_path / "frags" / f["file"])
