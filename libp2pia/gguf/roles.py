"""Tensor roles, keyed by GGUF tensor-name patterns (the names are the canonical identifiers).

The first matching row wins. ``part`` says which piece of a compute unit the tensor is; the
fragmenter (libp2pia.fragments.units) groups parts into compute units. Names that match nothing
get role ``unknown``: 1-D ones travel with the core fragment, others become opaque byte ranges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .reader import TensorInfo


@dataclass(frozen=True)
class TensorRole:
    role: str               # vocab | norm | attention | attn_shared | ffn | shared_expert | expert | router | unknown
    part: str               # which piece of the unit: q, k, v, o, gate, up, down, embd, output, ...
    layer: int | None
    expert: int | None      # legacy per-expert 2-D tensors only (blk.N.ffn_gate.E.weight)
    stacked: bool           # 3-D tensor whose ne2 indexes experts (``*_exps``)


# (pattern, role, part, stacked). ``L`` = layer group, ``E`` = legacy expert group.
_TABLE: list[tuple[str, str, str, bool]] = [
    (r"token_embd\.weight", "vocab", "embd", False),
    (r"output\.weight", "vocab", "output", False),
    (r"(output_norm|token_embd_norm)\.(weight|bias)", "norm", "norm", False),
    (r"rope_freqs\.weight", "norm", "rope_freqs", False),
    # GQA attention (llama, mistral3, gemma3)
    (r"blk\.(?P<L>\d+)\.attn_q\.weight", "attention", "q", False),
    (r"blk\.(?P<L>\d+)\.attn_k\.weight", "attention", "k", False),
    (r"blk\.(?P<L>\d+)\.attn_v\.weight", "attention", "v", False),
    (r"blk\.(?P<L>\d+)\.attn_output\.weight", "attention", "o", False),
    (r"blk\.(?P<L>\d+)\.attn_q_norm\.weight", "attention", "q_norm", False),
    (r"blk\.(?P<L>\d+)\.attn_k_norm\.weight", "attention", "k_norm", False),
    # MLA attention (deepseek2): per-head parts, and the shared low-rank projections
    (r"blk\.(?P<L>\d+)\.attn_q_b\.weight", "attention", "q", False),
    (r"blk\.(?P<L>\d+)\.attn_k_b\.weight", "attention", "k_b", False),
    (r"blk\.(?P<L>\d+)\.attn_v_b\.weight", "attention", "v_b", False),
    (r"blk\.(?P<L>\d+)\.attn_kv_b\.weight", "attention", "kv_b", False),
    (r"blk\.(?P<L>\d+)\.attn_q_a\.weight", "attn_shared", "q_a", False),
    (r"blk\.(?P<L>\d+)\.attn_q_a_norm\.weight", "attn_shared", "q_a_norm", False),
    (r"blk\.(?P<L>\d+)\.attn_kv_a_mqa\.weight", "attn_shared", "kv_a", False),
    (r"blk\.(?P<L>\d+)\.attn_kv_a_norm\.weight", "attn_shared", "kv_a_norm", False),
    # MoE
    (r"blk\.(?P<L>\d+)\.ffn_gate_inp\.weight", "router", "gate_inp", False),
    (r"blk\.(?P<L>\d+)\.exp_probs_b(\.bias)?", "router", "probs_b", False),
    (r"blk\.(?P<L>\d+)\.ffn_gate_exps\.weight", "expert", "gate", True),
    (r"blk\.(?P<L>\d+)\.ffn_up_exps\.weight", "expert", "up", True),
    (r"blk\.(?P<L>\d+)\.ffn_down_exps\.weight", "expert", "down", True),
    (r"blk\.(?P<L>\d+)\.ffn_gate\.(?P<E>\d+)\.weight", "expert", "gate", False),
    (r"blk\.(?P<L>\d+)\.ffn_up\.(?P<E>\d+)\.weight", "expert", "up", False),
    (r"blk\.(?P<L>\d+)\.ffn_down\.(?P<E>\d+)\.weight", "expert", "down", False),
    (r"blk\.(?P<L>\d+)\.ffn_gate_shexp\.weight", "shared_expert", "gate", False),
    (r"blk\.(?P<L>\d+)\.ffn_up_shexp\.weight", "shared_expert", "up", False),
    (r"blk\.(?P<L>\d+)\.ffn_down_shexp\.weight", "shared_expert", "down", False),
    # dense FFN
    (r"blk\.(?P<L>\d+)\.ffn_gate\.weight", "ffn", "gate", False),
    (r"blk\.(?P<L>\d+)\.ffn_up\.weight", "ffn", "up", False),
    (r"blk\.(?P<L>\d+)\.ffn_down\.weight", "ffn", "down", False),
    # every other per-layer norm (attn_norm, ffn_norm, post_attention_norm, post_ffw_norm, ...)
    (r"blk\.(?P<L>\d+)\.\w*norm\.(weight|bias)", "norm", "norm", False),
]
_COMPILED = [(re.compile(p), role, part, stacked) for p, role, part, stacked in _TABLE]


def tensor_role(info: TensorInfo) -> TensorRole:
    """The role of one tensor, from its name (and shape, for the 3-D expert check)."""
    for rx, role, part, stacked in _COMPILED:
        m = rx.fullmatch(info.name)
        if not m:
            continue
        groups = m.groupdict()
        layer = int(groups["L"]) if groups.get("L") is not None else None
        expert = int(groups["E"]) if groups.get("E") is not None else None
        if stacked and len(info.shape) != 3:
            break  # a *_exps tensor that is not 3-D: we do not know how to cut it
        if role == "norm" and len(info.shape) != 1:
            break
        return TensorRole(role, part, layer, expert, stacked)
    m = re.match(r"blk\.(\d+)\.", info.name)
    return TensorRole("unknown", "unknown", int(m.group(1)) if m else None, None, False)
