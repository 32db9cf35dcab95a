"""Per-architecture model configuration, read from GGUF metadata.

One frozen dataclass describes every supported graph; the architecture only
decides a handful of switches (RoPE type, norms, activation, sliding window).

| arch              | rope  | act        | QK-norm | sandwich norms | embed scale | SWA              |
|-------------------|-------|------------|---------|----------------|-------------|------------------|
| llama / mistral3  | NORM  | SwiGLU     | no      | no             | 1           | no               |
| llama + experts   | NORM  | SwiGLU MoE | no      | no             | 1           | no               |
| gemma3            | NEOX  | GEGLU-tanh | yes     | yes            | sqrt(n_embd)| il % 6 < 5 (512) |

Values llama.cpp implies but does not store (gemma3): the SWA pattern 6, the
rope base 1e4 on sliding-window layers, Q scaled by 1/sqrt(key_length).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UnsupportedError
from ..limits import DEFAULT_CONTEXT_LENGTH

#: architectures whose graph is llama's (mistral3 = llama + optional scaling we do not use)
LLAMA_LIKE = ("llama", "mistral3")
SUPPORTED_ARCHS = (*LLAMA_LIKE, "gemma3")
#: llama.cpp's hard-coded gemma3 values (src/models/gemma3.cpp, llama-model.cpp)
GEMMA3_SWA_PATTERN = 6
GEMMA3_ROPE_BASE_SWA = 10000.0


@dataclass(frozen=True)
class ModelConfig:
    arch: str
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int            # key_length (Magistral: 128 while n_embd / n_head = 160)
    v_head_dim: int          # value_length
    n_ff: int
    n_vocab: int
    eps: float
    rope_base: float
    rope_base_swa: float
    rope_dim: int
    rope_neox: bool          # True: rotate (x[i], x[i + d/2]); False: (x[2i], x[2i+1])
    n_expert: int = 0
    n_expert_used: int = 0
    sliding_window: int = 0  # 0: none
    swa_pattern: int = 0     # layer il is sliding iff swa_pattern and il % swa_pattern < swa_pattern - 1
    qk_norm: bool = False
    sandwich_norm: bool = False
    act: str = "silu"        # "silu" (SwiGLU) | "gelu_tanh" (GEGLU via ggml's fp16 table)
    embed_scale: float = 1.0
    q_scale: float = 1.0     # applied to Q before QK^T (together with kq_scale)
    kq_scale: float = 1.0
    tied_output: bool = False
    train_context: int = 0
    context_length: int = DEFAULT_CONTEXT_LENGTH

    @property
    def n_rep(self) -> int:
        """Q heads per KV head (GQA)."""
        return self.n_head // self.n_head_kv

    @property
    def is_moe(self) -> bool:
        return self.n_expert > 0

    def is_swa(self, layer: int) -> bool:
        return bool(self.sliding_window and self.swa_pattern and layer % self.swa_pattern < self.swa_pattern - 1)

    def layer_rope_base(self, layer: int) -> float:
        return self.rope_base_swa if self.is_swa(layer) else self.rope_base

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], *, context_length: int = DEFAULT_CONTEXT_LENGTH) -> "ModelConfig":
        """From a manifest's `hparams` (its `raw` block holds every scalar `<arch>.*` key verbatim), so a
        worker holding a few fragments needs no source header."""
        hp = manifest["hparams"]
        arch = hp["architecture"]
        meta: dict[str, Any] = {f"{arch}.{k}": v for k, v in hp.get("raw", {}).items()}
        meta["general.architecture"] = arch
        if hp.get("vocab_size") is not None:
            meta.setdefault(f"{arch}.vocab_size", hp["vocab_size"])
        has_output = any(s["tensor"] == "output.weight" for f in manifest["fragments"] for s in f["slices"])
        return cls.from_metadata(meta, context_length=context_length, has_output=has_output)

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any], *, context_length: int = DEFAULT_CONTEXT_LENGTH,
                      has_output: bool = True) -> "ModelConfig":
        """Build from GGUF key/values (``general.architecture``, ``<arch>.embedding_length``, ...).

        `has_output` says whether the file has a separate ``output.weight`` (else tied to token_embd).
        """
        arch = str(meta.get("general.architecture", ""))
        if arch not in SUPPORTED_ARCHS:
            raise UnsupportedError(f"architecture {arch!r} is not supported (supported: {', '.join(SUPPORTED_ARCHS)})")

        def get(key: str, default: Any = None) -> Any:
            v = meta.get(f"{arch}.{key}", default)
            if v is None:
                raise UnsupportedError(f"GGUF metadata lacks {arch}.{key}")
            return v

        n_embd = int(get("embedding_length"))
        n_head = int(get("attention.head_count"))
        n_head_kv = int(get("attention.head_count_kv", n_head))
        head_dim = int(get("attention.key_length", n_embd // n_head))
        v_head_dim = int(get("attention.value_length", head_dim))
        n_vocab = meta.get(f"{arch}.vocab_size")
        if n_vocab is None:
            toks = meta.get("tokenizer.ggml.tokens")
            if toks is None:
                raise UnsupportedError("GGUF metadata has neither <arch>.vocab_size nor tokenizer.ggml.tokens")
            n_vocab = len(toks)
        common = dict(
            arch=arch, n_embd=n_embd, n_layer=int(get("block_count")), n_head=n_head, n_head_kv=n_head_kv,
            head_dim=head_dim, v_head_dim=v_head_dim, n_ff=int(get("feed_forward_length", 0)), n_vocab=int(n_vocab),
            eps=float(get("attention.layer_norm_rms_epsilon", 1e-5)), rope_base=float(get("rope.freq_base", 10000.0)),
            rope_dim=int(get("rope.dimension_count", head_dim)), train_context=int(get("context_length", 0)),
            context_length=int(context_length), tied_output=not has_output,
        )
        scaling = meta.get(f"{arch}.rope.scaling.type")
        if scaling not in (None, "none") and float(meta.get(f"{arch}.rope.scaling.factor", 1.0) or 1.0) != 1.0:
            raise UnsupportedError(f"RoPE scaling {scaling!r} is not implemented (the result would be wrong)")
        if n_head % n_head_kv:
            raise UnsupportedError(f"head_count {n_head} is not a multiple of head_count_kv {n_head_kv}")
        if arch == "gemma3":
            return cls(**common, rope_base_swa=float(meta.get("gemma3.rope.freq_base_swa", GEMMA3_ROPE_BASE_SWA)),
                       rope_neox=True, sliding_window=int(meta.get("gemma3.attention.sliding_window", 0)),
                       swa_pattern=GEMMA3_SWA_PATTERN, qk_norm=True, sandwich_norm=True, act="gelu_tanh",
                       embed_scale=math.sqrt(n_embd), q_scale=1.0 / math.sqrt(head_dim), kq_scale=1.0)
        return cls(**common, rope_base_swa=common["rope_base"], rope_neox=False,
                   n_expert=int(meta.get(f"{arch}.expert_count", 0) or 0),
                   n_expert_used=int(meta.get(f"{arch}.expert_used_count", 0) or 0),
                   kq_scale=1.0 / math.sqrt(head_dim))
