"""Hyper-parameters per architecture, read from the ``<arch>.*`` keys of a GGUF header.

Returned as a plain dict (it goes into the manifest as JSON): the normalized names below plus every
scalar ``<arch>.*`` key verbatim under ``raw``. Keys absent from the file are derived the way
llama.cpp derives them (head_dim = n_embd / n_head, n_head_kv = n_head, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import UnsupportedError
from .reader import GGUFHeader

SUPPORTED_ARCHITECTURES = ("llama", "mistral3", "gemma3", "deepseek2")

# normalized name -> key suffix after "<arch>."
_KEYS = {
    "context_length": "context_length",
    "n_embd": "embedding_length",
    "n_layer": "block_count",
    "n_ff": "feed_forward_length",
    "n_head": "attention.head_count",
    "n_head_kv": "attention.head_count_kv",
    "head_dim_k": "attention.key_length",
    "head_dim_v": "attention.value_length",
    "rms_eps": "attention.layer_norm_rms_epsilon",
    "sliding_window": "attention.sliding_window",
    "rope_dim": "rope.dimension_count",
    "rope_freq_base": "rope.freq_base",
    "rope_scaling_type": "rope.scaling.type",
    "rope_scaling_factor": "rope.scaling.factor",
    "rope_scaling_orig_ctx": "rope.scaling.original_context_length",
    "n_expert": "expert_count",
    "n_expert_used": "expert_used_count",
    "n_expert_shared": "expert_shared_count",
    "n_ff_exp": "expert_feed_forward_length",
    "n_leading_dense": "leading_dense_block_count",
    "expert_weights_scale": "expert_weights_scale",
    "expert_weights_norm": "expert_weights_norm",
    "expert_gating_func": "expert_gating_func",
    "q_lora_rank": "attention.q_lora_rank",
    "kv_lora_rank": "attention.kv_lora_rank",
    "head_dim_k_mla": "attention.key_length_mla",
    "head_dim_v_mla": "attention.value_length_mla",
    "vocab_size": "vocab_size",
}


def hparams(header: GGUFHeader) -> dict[str, Any]:
    """Normalized hyper-parameters of a supported architecture; UnsupportedError otherwise."""
    arch = header.architecture
    if arch not in SUPPORTED_ARCHITECTURES:
        where = f"{header.path}: " if header.path else ""
        raise UnsupportedError(f"{where}unsupported architecture {arch or '(none)'!r} "
                               f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)})")
    kv = header.kv
    hp: dict[str, Any] = {"architecture": arch}
    for name, suffix in _KEYS.items():
        hp[name] = kv.get(f"{arch}.{suffix}")
    if hp["n_head"] is None or hp["n_embd"] is None or hp["n_layer"] is None:
        raise UnsupportedError(f"{header.path}: {arch} header lacks embedding_length/block_count/head_count")
    if hp["n_head_kv"] is None:
        hp["n_head_kv"] = hp["n_head"]
    if hp["head_dim_k"] is None:
        hp["head_dim_k"] = hp["n_embd"] // _first(hp["n_head"])
    if hp["head_dim_v"] is None:
        hp["head_dim_v"] = hp["head_dim_k"]
    for name in ("n_expert", "n_expert_used", "n_expert_shared", "n_leading_dense"):
        hp[name] = hp[name] or 0
    if hp["vocab_size"] is None:
        tokens = kv.get("tokenizer.ggml.tokens")
        hp["vocab_size"] = len(tokens) if isinstance(tokens, Sequence) and not isinstance(tokens, str) else None
    hp["raw"] = {k[len(arch) + 1:]: v for k, v in kv.items()
                 if k.startswith(arch + ".") and (isinstance(v, (int, float, str, bool)))}
    return hp


def _first(v: Any) -> int:
    return int(v[0]) if isinstance(v, list) else int(v)


def per_layer(value: Any, layer: int) -> int:
    """A hyper-parameter that GGUF may store per layer (array) or once (scalar)."""
    return int(value[layer]) if isinstance(value, list) else int(value)
