"""Header-only GGUFs with the real shapes of the big target models (for ``plan`` and the simulator).

Each preset is the tensor table and the hyper-parameter keys of a Q4_K_M conversion, built from
the facts in docs/fragments.md (source: llama.cpp's loaders and ``llama_tensor_get_type_impl``):
per-tensor types follow the Q4_K_M rules (use_more_bits layers get Q6_K ffn_down/attn_v, the
Mixtral n_expert == 8 rule, the ne0 % 256 fallback). The tokenizer is a placeholder with the real
token count (the real vocab strings are not bundled), so the header size is close to, not equal
to, a real file's. :func:`write_preset` writes the header with real tensor infos and no data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

from ..errors import UnsupportedError
from .writer import KV, TensorSpec, encode_header


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    architecture: str
    kv: list[KV] = field(repr=False)
    tensors: list[TensorSpec] = field(repr=False)


def use_more_bits(i: int, n: int) -> bool:
    """llama-quant.cpp: layers that get the bigger type in Q4_K_M (C integer division)."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


_FALLBACK = {Q.Q4_K: Q.Q5_0, Q.Q5_K: Q.Q5_1, Q.Q6_K: Q.Q8_0}


def q4_k_m_type(name: str, shape: tuple[int, ...], n_layer: int, n_expert: int) -> Q:
    """The type llama.cpp's Q4_K_M recipe gives one tensor (the subset of rules our targets hit)."""
    if len(shape) == 1 or "ffn_gate_inp" in name or "exp_probs_b" in name:
        return Q.F32
    layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
    t = Q.Q4_K
    if name == "output.weight":
        t = Q.Q6_K
    elif ".attn_v." in name or ".attn_kv_b." in name:
        t = Q.Q8_0 if n_expert == 8 else (Q.Q6_K if use_more_bits(layer, n_layer) else Q.Q4_K)
    elif ".attn_k." in name and n_expert == 8:
        t = Q.Q8_0
    elif ".attn_output." in name and n_expert == 8:
        t = Q.Q5_K
    elif "ffn_down" in name and use_more_bits(layer, n_layer):
        t = Q.Q6_K
    if shape[0] % 256 and t in _FALLBACK:
        t = _FALLBACK[t]
    return t


def _u32(k: str, v: int) -> KV:
    return KV(k, V.UINT32, v)


def _f32(k: str, v: float) -> KV:
    return KV(k, V.FLOAT32, v)


def _tokenizer(n_vocab: int, model: str, pre: str | None) -> list[KV]:
    # Placeholder strings with the real count: header size in the right range, no real vocab bundled.
    kvs = [KV("tokenizer.ggml.model", V.STRING, model)]
    if pre:
        kvs.append(KV("tokenizer.ggml.pre", V.STRING, pre))
    kvs.append(KV("tokenizer.ggml.tokens", V.ARRAY, [f"<t{i}>" for i in range(n_vocab)], V.STRING))
    if model == "llama":
        kvs.append(KV("tokenizer.ggml.scores", V.ARRAY, [0.0] * n_vocab, V.FLOAT32))
    kvs.append(KV("tokenizer.ggml.token_type", V.ARRAY, [1] * n_vocab, V.INT32))
    kvs += [_u32("tokenizer.ggml.bos_token_id", 1), _u32("tokenizer.ggml.eos_token_id", 2)]
    return kvs


def _llama_like(name: str, desc: str, *, n_embd: int, n_layer: int, n_head: int, n_kv: int, head_dim: int,
                n_ff: int, n_vocab: int, ctx: int, rope_base: float, n_expert: int = 0, n_used: int = 0,
                tok_model: str = "llama", tok_pre: str | None = None) -> Preset:
    arch = "llama"
    kv = [KV("general.architecture", V.STRING, arch), KV("general.name", V.STRING, name),
          _u32("general.file_type", 15), _u32("general.quantization_version", 2),
          _u32(f"{arch}.context_length", ctx), _u32(f"{arch}.embedding_length", n_embd),
          _u32(f"{arch}.block_count", n_layer), _u32(f"{arch}.feed_forward_length", n_ff),
          _u32(f"{arch}.attention.head_count", n_head), _u32(f"{arch}.attention.head_count_kv", n_kv),
          _u32(f"{arch}.attention.key_length", head_dim), _u32(f"{arch}.attention.value_length", head_dim),
          _f32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5), _u32(f"{arch}.rope.dimension_count", head_dim),
          _f32(f"{arch}.rope.freq_base", rope_base), _u32(f"{arch}.vocab_size", n_vocab)]
    if n_expert:
        kv += [_u32(f"{arch}.expert_count", n_expert), _u32(f"{arch}.expert_used_count", n_used)]
    kv += _tokenizer(n_vocab, tok_model, tok_pre)
    shapes: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (n_embd, n_vocab))]
    for i in range(n_layer):
        p = f"blk.{i}."
        shapes += [(p + "attn_norm.weight", (n_embd,)), (p + "attn_q.weight", (n_embd, n_head * head_dim)),
                   (p + "attn_k.weight", (n_embd, n_kv * head_dim)), (p + "attn_v.weight", (n_embd, n_kv * head_dim)),
                   (p + "attn_output.weight", (n_head * head_dim, n_embd)), (p + "ffn_norm.weight", (n_embd,))]
        if n_expert:
            shapes += [(p + "ffn_gate_inp.weight", (n_embd, n_expert)),
                       (p + "ffn_gate_exps.weight", (n_embd, n_ff, n_expert)),
                       (p + "ffn_up_exps.weight", (n_embd, n_ff, n_expert)),
                       (p + "ffn_down_exps.weight", (n_ff, n_embd, n_expert))]
        else:
            shapes += [(p + "ffn_gate.weight", (n_embd, n_ff)), (p + "ffn_up.weight", (n_embd, n_ff)),
                       (p + "ffn_down.weight", (n_ff, n_embd))]
    shapes += [("output_norm.weight", (n_embd,)), ("output.weight", (n_embd, n_vocab))]
    tensors = [TensorSpec(n, s, q4_k_m_type(n, s, n_layer, n_expert)) for n, s in shapes]
    return Preset(name, desc, arch, kv, tensors)


def mistral_7b_v03() -> Preset:
    return _llama_like("mistral-7b-v0.3", "Mistral 7B v0.3 Q4_K_M (llama)", n_embd=4096, n_layer=32, n_head=32,
                       n_kv=8, head_dim=128, n_ff=14336, n_vocab=32768, ctx=32768, rope_base=1e6)


def magistral_small_2509() -> Preset:
    return _llama_like("magistral-small-2509", "Magistral Small 2509 (24B) Q4_K_M, text model (llama)",
                       n_embd=5120, n_layer=40, n_head=32, n_kv=8, head_dim=128, n_ff=32768, n_vocab=131072,
                       ctx=131072, rope_base=1e9, tok_model="gpt2", tok_pre="tekken")


def mixtral_8x7b() -> Preset:
    return _llama_like("mixtral-8x7b", "Mixtral 8x7B Q4_K_M (llama, 3-D *_exps experts)", n_embd=4096,
                       n_layer=32, n_head=32, n_kv=8, head_dim=128, n_ff=14336, n_vocab=32000, ctx=32768,
                       rope_base=1e6, n_expert=8, n_used=2)


def mistral_large_3() -> Preset:
    """Mistral Large 3 (675B): deepseek2, 61 layers (3 dense + 58 MoE), MLA in k_b/v_b split form."""
    arch, n_embd, n_layer, n_head, n_vocab = "deepseek2", 7168, 61, 128, 131072
    q_lora, kv_lora, nope, rope, v_hd = 1536, 512, 128, 64, 128
    n_ff, n_ff_exp, n_expert, n_dense = 16384, 4096, 128, 3
    kv = [KV("general.architecture", V.STRING, arch), KV("general.name", V.STRING, "mistral-large-3"),
          _u32("general.file_type", 15), _u32("general.quantization_version", 2),
          _u32(f"{arch}.context_length", 294912), _u32(f"{arch}.embedding_length", n_embd),
          _u32(f"{arch}.block_count", n_layer), _u32(f"{arch}.feed_forward_length", n_ff),
          _u32(f"{arch}.attention.head_count", n_head), _u32(f"{arch}.attention.head_count_kv", 1),
          _u32(f"{arch}.attention.q_lora_rank", q_lora), _u32(f"{arch}.attention.kv_lora_rank", kv_lora),
          _u32(f"{arch}.attention.key_length", kv_lora + rope), _u32(f"{arch}.attention.value_length", kv_lora),
          _u32(f"{arch}.attention.key_length_mla", nope + rope), _u32(f"{arch}.attention.value_length_mla", v_hd),
          _f32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6), _u32(f"{arch}.rope.dimension_count", rope),
          _f32(f"{arch}.rope.freq_base", 1e4), KV(f"{arch}.rope.scaling.type", V.STRING, "yarn"),
          _f32(f"{arch}.rope.scaling.factor", 36.0), _u32(f"{arch}.rope.scaling.original_context_length", 8192),
          _f32(f"{arch}.rope.scaling.yarn_log_multiplier", 0.1),
          _u32(f"{arch}.leading_dense_block_count", n_dense), _u32(f"{arch}.expert_feed_forward_length", n_ff_exp),
          _u32(f"{arch}.expert_count", n_expert), _u32(f"{arch}.expert_used_count", 4),
          _u32(f"{arch}.expert_shared_count", 1), _f32(f"{arch}.expert_weights_scale", 1.0),
          KV(f"{arch}.expert_weights_norm", V.BOOL, True), _u32(f"{arch}.expert_gating_func", 1),
          _u32(f"{arch}.vocab_size", n_vocab)]
    kv += _tokenizer(n_vocab, "gpt2", "tekken")
    shapes: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (n_embd, n_vocab))]
    for i in range(n_layer):
        p = f"blk.{i}."
        shapes += [(p + "attn_norm.weight", (n_embd,)), (p + "attn_q_a.weight", (n_embd, q_lora)),
                   (p + "attn_q_a_norm.weight", (q_lora,)), (p + "attn_q_b.weight", (q_lora, n_head * (nope + rope))),
                   (p + "attn_kv_a_mqa.weight", (n_embd, kv_lora + rope)), (p + "attn_kv_a_norm.weight", (kv_lora,)),
                   (p + "attn_k_b.weight", (nope, kv_lora, n_head)), (p + "attn_v_b.weight", (kv_lora, v_hd, n_head)),
                   (p + "attn_output.weight", (n_head * v_hd, n_embd)), (p + "ffn_norm.weight", (n_embd,))]
        if i < n_dense:
            shapes += [(p + "ffn_gate.weight", (n_embd, n_ff)), (p + "ffn_up.weight", (n_embd, n_ff)),
                       (p + "ffn_down.weight", (n_ff, n_embd))]
        else:
            shapes += [(p + "ffn_gate_inp.weight", (n_embd, n_expert)),
                       (p + "ffn_gate_exps.weight", (n_embd, n_ff_exp, n_expert)),
                       (p + "ffn_up_exps.weight", (n_embd, n_ff_exp, n_expert)),
                       (p + "ffn_down_exps.weight", (n_ff_exp, n_embd, n_expert)),
                       (p + "ffn_gate_shexp.weight", (n_embd, n_ff_exp)),
                       (p + "ffn_up_shexp.weight", (n_embd, n_ff_exp)),
                       (p + "ffn_down_shexp.weight", (n_ff_exp, n_embd))]
    shapes += [("output_norm.weight", (n_embd,)), ("output.weight", (n_embd, n_vocab))]
    tensors = [TensorSpec(n, s, q4_k_m_type(n, s, n_layer, n_expert)) for n, s in shapes]
    return Preset("mistral-large-3", "Mistral Large 3 (675B) Q4_K_M, deepseek2 with MLA", arch, kv, tensors)


PRESETS: dict[str, Callable[[], Preset]] = {
    "mistral-large-3": mistral_large_3,
    "mistral-7b-v0.3": mistral_7b_v03,
    "magistral-small-2509": magistral_small_2509,
    "mixtral-8x7b": mixtral_8x7b,
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]()
    except KeyError as exc:
        raise UnsupportedError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})") from exc


def write_preset(name: str, path: str | os.PathLike[str]) -> Path:
    """Write a header-only GGUF (real tensor infos, no tensor data) for a preset; temp name then rename."""
    preset = get_preset(name)
    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(encode_header(preset.kv, preset.tensors))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
