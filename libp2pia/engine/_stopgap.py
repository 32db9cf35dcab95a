"""STOP-GAP until libp2pia.fragments lands: an in-memory plan over a plain GGUF via gguf.GGUFReader.

Attention split per KV group (per Q head when there is a single KV head), FFN in
two slabs, vocabulary in 8 row ranges -- enough to exercise the partial sums.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGUFReader, GGUFValueType

from .loader import tensor_slice
from ..model.build import TensorData


def gguf_source(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], Callable[[dict], dict[str, TensorData]]]:
    r = GGUFReader(str(path))
    meta: dict[str, Any] = {}
    for k, f in r.fields.items():
        if not f.types:
            continue
        meta[k] = f.contents()
    T = {t.name: t for t in r.tensors}
    arch = meta["general.architecture"]
    n_layer = int(meta[f"{arch}.block_count"])
    n_head = int(meta[f"{arch}.attention.head_count"])
    n_kv = int(meta.get(f"{arch}.attention.head_count_kv", n_head))
    n_embd = int(meta[f"{arch}.embedding_length"])
    hd = int(meta.get(f"{arch}.attention.key_length", n_embd // n_head))
    vd = int(meta.get(f"{arch}.attention.value_length", hd))

    def sl(name: str, rows: tuple[int, int] | None = None, cols: tuple[int, int] | None = None,
           expert: int | None = None) -> dict:
        t = T[name]
        shape = [int(v) for v in t.shape]
        return {"tensor": name, "type": t.tensor_type.name, "shape": shape, "expert": expert,
                "rows": list(rows or (0, shape[1] if len(shape) > 1 else 1)), "cols": list(cols or (0, shape[0]))}

    frags: list[dict[str, Any]] = []
    core = [sl(n) for n, t in T.items() if len(t.shape) == 1 or n.endswith("ffn_gate_inp.weight")]
    frags.append({"role": "core", "layer": None, "expert": None, "slices": core})
    groups = [(g, g + 1, g * (n_head // n_kv), (g + 1) * (n_head // n_kv)) for g in range(n_kv)]
    if n_kv == 1:
        groups = [(0, 1, h, h + 1) for h in range(n_head)]
    for il in range(n_layer):
        p = f"blk.{il}."
        for k0, k1, q0, q1 in groups:
            frags.append({"role": "attention", "layer": il, "expert": None, "slices": [
                sl(p + "attn_q.weight", (q0 * hd, q1 * hd)), sl(p + "attn_k.weight", (k0 * hd, k1 * hd)),
                sl(p + "attn_v.weight", (k0 * vd, k1 * vd)), sl(p + "attn_output.weight", None, (q0 * vd, q1 * vd))]})
        if p + "ffn_gate_exps.weight" in T:
            n_exp, n_ff = int(T[p + "ffn_gate_exps.weight"].shape[2]), int(T[p + "ffn_gate_exps.weight"].shape[1])
            for e in range(n_exp):
                frags.append({"role": "expert", "layer": il, "expert": e, "slices": [
                    sl(p + "ffn_gate_exps.weight", (0, n_ff), expert=e), sl(p + "ffn_up_exps.weight", (0, n_ff), expert=e),
                    sl(p + "ffn_down_exps.weight", None, (0, n_ff), expert=e)]})
        else:
            n_ff = int(T[p + "ffn_gate.weight"].shape[1])
            half = n_ff // 2 // 256 * 256 or n_ff
            for a, b in ((0, half), (half, n_ff)) if half < n_ff else ((0, n_ff),):
                frags.append({"role": "ffn", "layer": il, "expert": None, "slices": [
                    sl(p + "ffn_gate.weight", (a, b)), sl(p + "ffn_up.weight", (a, b)),
                    sl(p + "ffn_down.weight", None, (a, b))]})
    n_vocab = int(T["token_embd.weight"].shape[1])
    edges = np.linspace(0, n_vocab, 9).astype(int)
    for a, b in zip(edges[:-1], edges[1:]):
        s = [sl("token_embd.weight", (int(a), int(b)))]
        if "output.weight" in T:
            s.append(sl("output.weight", (int(a), int(b))))
        frags.append({"role": "vocab", "layer": None, "expert": None, "slices": s})

    def tensors_of(frag: dict) -> dict[str, TensorData]:
        out = {}
        for s in frag["slices"]:
            t = T[s["tensor"]]
            block, ts = GGML_QUANT_SIZES[t.tensor_type]
            out[s["tensor"]] = tensor_slice(np.asarray(t.data), t.tensor_type, s, block, ts)
        return out

    _ = GGUFValueType  # (kept for field typing; contents() decodes values)
    return meta, frags, tensors_of
