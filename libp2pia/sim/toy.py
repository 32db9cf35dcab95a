"""Small hand-made plans in the manifest's shape, for tests and for trying the simulator.

These are not a planner: no GGUF is read and no tensor is cut. They produce the
dict shape that ``libp2pia.fragments`` plans have (role, class, layer, expert,
bytes, slices' tensor names for the vocabulary) with counts chosen by the
caller, so the simulator's logic can be checked on cases small enough for
closed forms.
"""

from __future__ import annotations

from typing import Any

from ..limits import MiB


def _frag(role: str, nbytes: int, layer: int | None = None, expert: int | None = None,
          cls: str = "always", tensor: str | None = None) -> dict[str, Any]:
    f: dict[str, Any] = {"role": role, "class": cls, "bytes": nbytes, "layer": layer, "expert": expert}
    if tensor:
        f["slices"] = [{"tensor": tensor}]
    return f


def toy_plan(layers: int = 4, experts: int = 8, top_k: int = 2, frags_per_expert: int = 2,
             attention_frags: int = 2, shared_expert_frags: int = 0, dense_ffn_frags: int = 0,
             dense_layers: int = 0, attn_shared_frags: int = 0, vocab_frags: int = 2,
             fragment_bytes: int = 8 * MiB, hidden: int = 1024, max_fragment_bytes: int = 10 * MiB) -> dict[str, Any]:
    """A MoE (``experts > 0``) or dense plan: per layer attention shards, then dense FFN
    (first ``dense_layers`` layers, or all when ``experts == 0``) or routed experts."""
    frags: list[dict[str, Any]] = [_frag("core", 1 * MiB)]
    for i in range(vocab_frags):
        frags.append(_frag("vocab", fragment_bytes, tensor="token_embd.weight"))
        frags.append(_frag("vocab", fragment_bytes, tensor="output.weight"))
    for layer in range(layers):
        frags += [_frag("attn_shared", fragment_bytes, layer) for _ in range(attn_shared_frags)]
        frags += [_frag("attention", fragment_bytes, layer) for _ in range(attention_frags)]
        if experts == 0 or layer < dense_layers:
            frags += [_frag("ffn", fragment_bytes, layer) for _ in range(max(dense_ffn_frags, 1))]
            continue
        frags.append(_frag("router", max(hidden * experts * 4, 1), layer))
        frags += [_frag("shared_expert", fragment_bytes, layer) for _ in range(shared_expert_frags)]
        for e in range(experts):
            frags += [_frag("expert", fragment_bytes, layer, e, "conditional") for _ in range(frags_per_expert)]
    hp = {"toy.block_count": layers, "toy.embedding_length": hidden}
    if experts:
        hp.update({"toy.expert_count": experts, "toy.expert_used_count": top_k})
    return {"format": "libp2pia-plan", "architecture": "toy", "hparams": hp,
            "max_fragment_bytes": max_fragment_bytes, "fragments": frags}
