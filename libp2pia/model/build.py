"""Turn one fragment (its plan entry + its sub-tensors) into a shard object.

A fragment's `slices` name source tensors (GGUF names) and the rows/columns it
holds; the sub-tensor bytes come from the fragment file or, for a plain GGUF,
straight from the source tensor. Which shard class a fragment becomes is fixed
by its role:

| role                    | shard          | tensors (suffix of blk.N.)                          |
|-------------------------|----------------|-----------------------------------------------------|
| attention               | AttentionShard | attn_q, attn_k, attn_v rows; attn_output columns    |
| ffn                     | FFNShard       | ffn_gate, ffn_up rows; ffn_down columns             |
| expert / shared_expert  | FFNShard       | ffn_{gate,up,down}_exps (one expert) / _shexp       |
| vocab                   | VocabShard     | token_embd and/or output rows                       |
| core / router           | (client data)  | norms, ffn_gate_inp                                 |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from ..errors import UnsupportedError
from .attention import AttentionShard
from .config import ModelConfig
from .ffn import FFNShard
from .vocab import VocabShard
from .weights import FusedRows, QMatrix

Shard = Union[AttentionShard, FFNShard, VocabShard]
COMPUTE_ROLES = ("attention", "ffn", "expert", "shared_expert", "vocab")


@dataclass(frozen=True)
class TensorData:
    """A (sub-)tensor as a shard receives it: raw rows (rows, row_bytes) or float rows, its type, its columns."""

    raw: np.ndarray
    qtype: Any
    cols: int


def _slice_of(frag: Mapping[str, Any], suffix: str) -> Mapping[str, Any] | None:
    """The slice of tensor `blk.N.<suffix>.weight` (or `<suffix>.weight`); for `*_exps` also the legacy
    per-expert name `blk.N.ffn_gate.E.weight` of pre-2024 Mixtral GGUFs."""
    legacy = re.compile(r"\.%s\.\d+\.weight$" % re.escape(suffix[:-5])) if suffix.endswith("_exps") else None
    for s in frag["slices"]:
        name = s["tensor"]
        if name.endswith("." + suffix + ".weight") or name == suffix + ".weight":
            return s
        if legacy is not None and legacy.search(name):
            return s
    return None


def _matrix(frag: Mapping[str, Any], tensors: Mapping[str, TensorData], suffix: str) -> QMatrix:
    s = _slice_of(frag, suffix)
    if s is None:
        raise UnsupportedError(f"fragment {frag.get('id', '?')} ({frag['role']}) lacks a {suffix} slice")
    t = tensors[s["tensor"]]
    return QMatrix.from_raw(s["tensor"], t.raw, t.qtype, t.cols)


def _fused(frag: Mapping[str, Any], tensors: Mapping[str, TensorData], suffixes: list[str]) -> FusedRows:
    named = []
    for sfx in suffixes:
        s = _slice_of(frag, sfx)
        if s is None:
            raise UnsupportedError(f"fragment {frag.get('id', '?')} ({frag['role']}) lacks a {sfx} slice")
        t = tensors[s["tensor"]]
        named.append((s["tensor"], t.raw, t.qtype, t.cols))
    return FusedRows.of(named)


def _vector(frag: Mapping[str, Any], tensors: Mapping[str, TensorData], norms: Mapping[str, np.ndarray],
            name: str) -> np.ndarray | None:
    if name in tensors:
        return np.asarray(tensors[name].raw, np.float32).reshape(-1)
    return norms.get(name)


def build_shard(cfg: ModelConfig, frag: Mapping[str, Any], tensors: Mapping[str, TensorData],
                norms: Mapping[str, np.ndarray], context_limit: int | None = None) -> Shard:
    """Build the compute object of one fragment. `norms` supplies 1-D weights the fragment does not carry."""
    role, layer = frag["role"], frag.get("layer")
    if role == "attention":
        q = _slice_of(frag, "attn_q")
        k = _slice_of(frag, "attn_k")
        if q is None or k is None:
            raise UnsupportedError(f"attention fragment of layer {layer} lacks attn_q/attn_k")
        p = f"blk.{layer}."
        return AttentionShard(
            cfg, int(layer), _fused(frag, tensors, ["attn_q", "attn_k", "attn_v"]), _matrix(frag, tensors, "attn_output"),
            q0=int(q["rows"][0]) // cfg.head_dim, kv0=int(k["rows"][0]) // cfg.head_dim,
            q_norm=_vector(frag, tensors, norms, p + "attn_q_norm.weight"),
            k_norm=_vector(frag, tensors, norms, p + "attn_k_norm.weight"),
            context_limit=int(context_limit or cfg.context_length))
    if role in ("ffn", "expert", "shared_expert"):
        sfx = {"ffn": "", "expert": "_exps", "shared_expert": "_shexp"}[role]
        return FFNShard(int(layer), frag.get("expert"), _fused(frag, tensors, ["ffn_gate" + sfx, "ffn_up" + sfx]),
                        _matrix(frag, tensors, "ffn_down" + sfx), cfg.act)
    if role == "vocab":
        emb = _slice_of(frag, "token_embd")
        out = _slice_of(frag, "output")
        embed = _matrix(frag, tensors, "token_embd") if emb is not None else None
        output = _matrix(frag, tensors, "output") if out is not None else (embed if cfg.tied_output else None)
        row0 = int((emb or out)["rows"][0])
        return VocabShard(row0, embed, output)
    raise UnsupportedError(f"fragment role {role!r} is not a compute shard")
