"""Header-only presets of the big models: counts, shapes and Q4_K_M types from the reference tables
(/work/shared/reference/models-and-gguf.md §2, copied into docs/fragments.md)."""

from __future__ import annotations


import pytest
from gguf import GGMLQuantizationType as Q

from libp2pia.gguf import hparams, read_header
from libp2pia.gguf.presets import PRESETS, write_preset

# Layers whose ffn_down / attn_v are Q6_K in Q4_K_M, as listed by the reference (use_more_bits).
MORE_BITS = {
    32: {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31},
    40: {0, 1, 2, 3, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 35, 36, 37, 38, 39},
    61: {0, 1, 2, 3, 4, 5, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 42, 45, 48, 51, 53, 54, 55, 56, 57, 58, 59, 60},
}


@pytest.fixture(scope="module")
def headers(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("presets")
    return {n: read_header(write_preset(n, d / f"{n}.gguf"), require_data=False) for n in PRESETS}


def _types(h, suffix: str) -> dict[int, Q]:
    return {int(t.name.split(".")[1]): t.qtype for t in h.tensors if t.name.endswith(suffix)}


def test_tensor_counts(headers: dict) -> None:
    # 291 and 323 are the reference counts; ML3 = 1 + 3*13 + 58*17 + 2; Magistral = 3 + 40*9.
    assert {n: len(h.tensors) for n, h in headers.items()} == {
        "mistral-7b-v0.3": 291, "mixtral-8x7b": 323, "magistral-small-2509": 363, "mistral-large-3": 1028}
    for h in headers.values():
        assert not h.data_present and h.file_size == h.data_start


def test_mistral_large_3_shapes_and_types(headers: dict) -> None:
    h = headers["mistral-large-3"]
    hp = hparams(h)
    assert (hp["n_layer"], hp["n_embd"], hp["n_expert"], hp["n_expert_used"], hp["n_expert_shared"],
            hp["n_leading_dense"], hp["n_ff_exp"]) == (61, 7168, 128, 4, 1, 3, 4096)
    t = h.by_name
    assert t["blk.3.ffn_gate_exps.weight"].shape == (7168, 4096, 128)
    assert t["blk.3.attn_k_b.weight"].shape == (128, 512, 128) and t["blk.3.attn_k_b.weight"].qtype == Q.Q5_0
    assert t["blk.3.attn_v_b.weight"].shape == (512, 128, 128) and t["blk.3.attn_v_b.weight"].qtype == Q.Q4_K
    assert t["blk.0.ffn_down.weight"].qtype == Q.Q6_K and "blk.3.ffn_down.weight" not in t
    assert t["blk.3.ffn_gate_inp.weight"].qtype == Q.F32
    assert t["output.weight"].row_bytes == 5880 and t["token_embd.weight"].row_bytes == 4032
    q6 = {i for i, q in _types(h, "ffn_down_exps.weight").items() if q == Q.Q6_K}
    assert q6 == MORE_BITS[61] - {0, 1, 2}
    assert {i for i, q in _types(h, "ffn_down_shexp.weight").items() if q == Q.Q6_K} == q6
    # routers: 58 x 7168 x 128 x 4 bytes ~ 213 MB (the reference's "~210 MB")
    routers = sum(x.n_bytes for x in h.tensors if "ffn_gate_inp" in x.name)
    assert routers == 58 * 7168 * 128 * 4


@pytest.mark.parametrize("name,n_layer", [("mistral-7b-v0.3", 32), ("magistral-small-2509", 40)])
def test_dense_q4_k_m_types(headers: dict, name: str, n_layer: int) -> None:
    h = headers[name]
    for suffix in ("ffn_down.weight", "attn_v.weight"):
        types = _types(h, suffix)
        assert {i for i, q in types.items() if q == Q.Q6_K} == MORE_BITS[n_layer]
        assert {q for i, q in types.items() if i not in MORE_BITS[n_layer]} == {Q.Q4_K}
    assert h.by_name["output.weight"].qtype == Q.Q6_K and h.by_name["token_embd.weight"].qtype == Q.Q4_K


def test_mixtral_rules(headers: dict) -> None:
    h = headers["mixtral-8x7b"]
    assert h.by_name["blk.5.attn_k.weight"].qtype == Q.Q8_0
    assert h.by_name["blk.5.attn_v.weight"].qtype == Q.Q8_0
    assert h.by_name["blk.5.attn_output.weight"].qtype == Q.Q5_K
    assert h.by_name["blk.5.ffn_down_exps.weight"].shape == (14336, 4096, 8)
    assert {i for i, q in _types(h, "ffn_down_exps.weight").items() if q == Q.Q6_K} == MORE_BITS[32]


def test_magistral_sizes_match_reference(headers: dict) -> None:
    # reference §4.5: Magistral ffn_down Q6_K 137.6 MB, output 550 MB
    h = headers["magistral-small-2509"]
    assert round(h.by_name["blk.0.ffn_down.weight"].n_bytes / 1e6, 1) == 137.6
    assert h.by_name["output.weight"].n_bytes == 131072 * 4200   # 4200 bytes/row (Q6_K, 5120 wide)
