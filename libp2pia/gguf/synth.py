"""Small synthetic GGUFs written with ``gguf.GGUFWriter`` (tests, benchmarks, the engine's fixtures).

Three families, deterministic from a seed, with a minimal SentencePiece vocab (the recipe that
llama.cpp accepts: <unk>/<s>/</s>, 256 byte tokens, pieces whose prefixes all exist):

| kind | architecture | what it exercises |
|---|---|---|
| ``dense`` | llama | GQA attention, SwiGLU FFN, untied output |
| ``moe`` | llama + experts | router + experts, ``layout="stacked"`` (3-D ``*_exps``) or ``"legacy"`` (``ffn_*.E``) |
| ``deepseek`` | deepseek2 | MLA (q_a/q_b, kv_a_mqa, k_b/v_b), leading dense layer, routed + shared experts |

Matrices are F32 or F16, or any type ``gguf.quants`` can quantize (Q8_0, Q5_0, Q4_0, ...). K-quant
types (Q4_K, Q6_K, ...) are filled with random blocks: gguf-py cannot quantize them and the
fragmenter is byte-exact whatever the values; :func:`quantize_q4_k_m` makes real K-quant content
through llama.cpp when ``llama_cpp`` is importable.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import ExpertGatingFuncType, GGMLQuantizationType, GGUFWriter, LlamaFileType, TokenType
from gguf import quants as gquants

from ..errors import Libp2piaError, UnsupportedError
from .format import block_info, qtype_of

_QUANTIZABLE = {GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16,
                GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q4_1, GGMLQuantizationType.Q5_0,
                GGMLQuantizationType.Q5_1, GGMLQuantizationType.Q8_0}


@dataclass(frozen=True)
class SynthConfig:
    kind: str = "dense"            # dense | moe | deepseek
    n_embd: int = 256
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 2
    head_dim: int = 64
    n_ff: int = 512
    n_expert: int = 4
    n_expert_used: int = 2
    layout: str = "stacked"        # moe only: stacked | legacy
    n_vocab: int = 512
    qtype: str = "F32"             # type of every matrix (norms and routers stay F32)
    seed: int = 0
    # deepseek only
    q_lora_rank: int = 64
    kv_lora_rank: int = 64
    qk_nope: int = 32
    qk_rope: int = 32
    v_head_dim: int = 32
    n_ff_exp: int = 256
    n_leading_dense: int = 1


def spm_vocab(n_vocab: int) -> tuple[list[str], list[float], list[int]]:
    """A minimal SentencePiece vocab of exactly ``n_vocab`` (>= 300) tokens."""
    tokens: list[str] = []
    scores: list[float] = []
    types: list[int] = []

    def add(t: str, s: float, ty: TokenType) -> None:
        if len(tokens) < n_vocab:
            tokens.append(t)
            scores.append(s)
            types.append(int(ty))

    add("<unk>", 0.0, TokenType.UNKNOWN)
    add("<s>", 0.0, TokenType.CONTROL)
    add("</s>", 0.0, TokenType.CONTROL)
    for b in range(256):
        add(f"<0x{b:02X}>", 0.0, TokenType.BYTE)
    pieces = ["\u2581"] + [chr(c) for c in range(33, 127)] + ["\u2581" + chr(c) for c in range(33, 127)]
    for w in "the of and to in is that for it as was with be by on not he this are or his from at".split():
        for k in range(2, len(w) + 1):
            for p in (w[:k], "\u2581" + w[:k]):
                if p not in pieces:
                    pieces.append(p)
    for i, p in enumerate(pieces):
        add(p, -float(i) - 1.0, TokenType.NORMAL)
    while len(tokens) < n_vocab:
        add(f"<unused{len(tokens)}>", -1e4, TokenType.UNUSED)
    return tokens, scores, types


class _Mats:
    """Deterministic matrices in the requested type, as GGUFWriter wants them."""

    def __init__(self, cfg: SynthConfig) -> None:
        self.rng = np.random.default_rng(cfg.seed)
        self.qtype = qtype_of(cfg.qtype)

    def f32(self, *shape: int, scale: float | None = None) -> np.ndarray:
        s = scale if scale is not None else 1 / np.sqrt(shape[-1])
        return (self.rng.standard_normal(shape) * s).astype(np.float32)

    def norm(self, n: int) -> np.ndarray:
        return (1 + 0.1 * self.rng.standard_normal(n)).astype(np.float32)

    def mat(self, *shape: int, scale: float | None = None) -> tuple[np.ndarray, GGMLQuantizationType | None]:
        """numpy shape (..., out, in) -> (array, raw_dtype) in the configured type."""
        x = self.f32(*shape, scale=scale)
        q = self.qtype
        if q == GGMLQuantizationType.F32:
            return x, None
        if q == GGMLQuantizationType.F16:
            return x.astype(np.float16), None
        blk, size = block_info(q)
        if shape[-1] % blk:
            raise UnsupportedError(f"synthetic {q.name} matrix needs a row length multiple of {blk}, got {shape[-1]}")
        if q in _QUANTIZABLE:
            return gquants.quantize(x, q), q
        raw = self.rng.integers(0, 256, size=shape[:-1] + (shape[-1] // blk * size,), dtype=np.uint8)
        return raw, q


def _add(w: GGUFWriter, name: str, m: tuple[np.ndarray, GGMLQuantizationType | None] | np.ndarray) -> None:
    if isinstance(m, tuple):
        arr, raw = m
        w.add_tensor(name, arr, raw_dtype=raw)
    else:
        w.add_tensor(name, m)


def write_synthetic(path: str | os.PathLike[str], cfg: SynthConfig = SynthConfig()) -> Path:
    """Write one synthetic GGUF (temp name then rename) and return its path."""
    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    arch = "deepseek2" if cfg.kind == "deepseek" else "llama"
    if cfg.kind not in ("dense", "moe", "deepseek"):
        raise UnsupportedError(f"unknown synthetic model kind {cfg.kind!r}")
    m = _Mats(cfg)
    w = GGUFWriter(str(tmp), arch)
    try:
        _write_kv(w, cfg, arch)
        _add(w, "token_embd.weight", m.mat(cfg.n_vocab, cfg.n_embd, scale=1.0))
        for i in range(cfg.n_layer):
            p = f"blk.{i}."
            w.add_tensor(p + "attn_norm.weight", m.norm(cfg.n_embd))
            if cfg.kind == "deepseek":
                _mla(w, m, cfg, p)
            else:
                _add(w, p + "attn_q.weight", m.mat(cfg.n_head * cfg.head_dim, cfg.n_embd))
                _add(w, p + "attn_k.weight", m.mat(cfg.n_head_kv * cfg.head_dim, cfg.n_embd))
                _add(w, p + "attn_v.weight", m.mat(cfg.n_head_kv * cfg.head_dim, cfg.n_embd))
                _add(w, p + "attn_output.weight", m.mat(cfg.n_embd, cfg.n_head * cfg.head_dim))
            w.add_tensor(p + "ffn_norm.weight", m.norm(cfg.n_embd))
            _ffn(w, m, cfg, i, p)
        w.add_tensor("output_norm.weight", m.norm(cfg.n_embd))
        _add(w, "output.weight", m.mat(cfg.n_vocab, cfg.n_embd))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _write_kv(w: GGUFWriter, cfg: SynthConfig, arch: str) -> None:
    w.add_name(f"synthetic-{cfg.kind}")
    w.add_context_length(2048)
    w.add_embedding_length(cfg.n_embd)
    w.add_block_count(cfg.n_layer)
    w.add_feed_forward_length(cfg.n_ff)
    w.add_head_count(cfg.n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(cfg.n_vocab)
    w.add_file_type(LlamaFileType.MOSTLY_F16 if cfg.qtype == "F16" else LlamaFileType.ALL_F32)
    if cfg.kind == "deepseek":
        w.add_head_count_kv(1)
        w.add_q_lora_rank(cfg.q_lora_rank)
        w.add_kv_lora_rank(cfg.kv_lora_rank)
        w.add_key_length(cfg.kv_lora_rank + cfg.qk_rope)
        w.add_value_length(cfg.kv_lora_rank)
        w.add_key_length_mla(cfg.qk_nope + cfg.qk_rope)
        w.add_value_length_mla(cfg.v_head_dim)
        w.add_rope_dimension_count(cfg.qk_rope)
        w.add_leading_dense_block_count(cfg.n_leading_dense)
        w.add_expert_feed_forward_length(cfg.n_ff_exp)
        w.add_expert_shared_count(1)
        w.add_expert_weights_scale(1.0)
        w.add_expert_weights_norm(True)
        w.add_expert_gating_func(ExpertGatingFuncType.SOFTMAX)
    else:
        w.add_head_count_kv(cfg.n_head_kv)
        w.add_key_length(cfg.head_dim)
        w.add_value_length(cfg.head_dim)
        w.add_rope_dimension_count(cfg.head_dim)
    if cfg.kind != "dense":
        w.add_expert_count(cfg.n_expert)
        w.add_expert_used_count(cfg.n_expert_used)
    tokens, scores, types = spm_vocab(cfg.n_vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)


def _mla(w: GGUFWriter, m: _Mats, cfg: SynthConfig, p: str) -> None:
    # numpy (out, in) <-> GGUF ne [in, out]; k_b ne [nope, kv_lora, n_head]; v_b ne [kv_lora, v_hd, n_head]
    _add(w, p + "attn_q_a.weight", m.mat(cfg.q_lora_rank, cfg.n_embd))
    w.add_tensor(p + "attn_q_a_norm.weight", m.norm(cfg.q_lora_rank))
    _add(w, p + "attn_q_b.weight", m.mat(cfg.n_head * (cfg.qk_nope + cfg.qk_rope), cfg.q_lora_rank))
    _add(w, p + "attn_kv_a_mqa.weight", m.mat(cfg.kv_lora_rank + cfg.qk_rope, cfg.n_embd))
    w.add_tensor(p + "attn_kv_a_norm.weight", m.norm(cfg.kv_lora_rank))
    _add(w, p + "attn_k_b.weight", m.mat(cfg.n_head, cfg.kv_lora_rank, cfg.qk_nope))
    _add(w, p + "attn_v_b.weight", m.mat(cfg.n_head, cfg.v_head_dim, cfg.kv_lora_rank))
    _add(w, p + "attn_output.weight", m.mat(cfg.n_embd, cfg.n_head * cfg.v_head_dim))


def _ffn(w: GGUFWriter, m: _Mats, cfg: SynthConfig, i: int, p: str) -> None:
    dense = cfg.kind == "dense" or (cfg.kind == "deepseek" and i < cfg.n_leading_dense)
    if dense:
        _add(w, p + "ffn_gate.weight", m.mat(cfg.n_ff, cfg.n_embd))
        _add(w, p + "ffn_up.weight", m.mat(cfg.n_ff, cfg.n_embd))
        _add(w, p + "ffn_down.weight", m.mat(cfg.n_embd, cfg.n_ff))
        return
    n_ff = cfg.n_ff_exp if cfg.kind == "deepseek" else cfg.n_ff
    w.add_tensor(p + "ffn_gate_inp.weight", m.f32(cfg.n_expert, cfg.n_embd))   # router stays F32
    if cfg.layout == "legacy" and cfg.kind == "moe":
        for e in range(cfg.n_expert):
            _add(w, f"{p}ffn_gate.{e}.weight", m.mat(n_ff, cfg.n_embd))
            _add(w, f"{p}ffn_down.{e}.weight", m.mat(cfg.n_embd, n_ff))
            _add(w, f"{p}ffn_up.{e}.weight", m.mat(n_ff, cfg.n_embd))
    else:
        _add(w, p + "ffn_gate_exps.weight", m.mat(cfg.n_expert, n_ff, cfg.n_embd))
        _add(w, p + "ffn_up_exps.weight", m.mat(cfg.n_expert, n_ff, cfg.n_embd))
        _add(w, p + "ffn_down_exps.weight", m.mat(cfg.n_expert, cfg.n_embd, n_ff))
    if cfg.kind == "deepseek":
        _add(w, p + "ffn_gate_shexp.weight", m.mat(n_ff, cfg.n_embd))
        _add(w, p + "ffn_up_shexp.weight", m.mat(n_ff, cfg.n_embd))
        _add(w, p + "ffn_down_shexp.weight", m.mat(cfg.n_embd, n_ff))


def quantize_q4_k_m(src: str | os.PathLike[str], dst: str | os.PathLike[str], nthread: int = 2) -> Path:
    """Quantize a GGUF to Q4_K_M with llama.cpp's ``llama_model_quantize`` (needs llama-cpp-python)."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise UnsupportedError("quantizing to Q4_K_M needs llama-cpp-python (pip install llama-cpp-python)") from exc
    out = Path(dst)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = nthread
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    try:
        rc = llama_cpp.llama_model_quantize(os.fsencode(src), os.fsencode(tmp), ctypes.byref(params))
        if rc != 0:
            raise Libp2piaError(f"llama_model_quantize failed on {src} (code {rc})")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
