"""Deterministic synthetic GGUFs for the golden fixtures (seeded numpy weights, a 608-token SentencePiece vocab).

| kind  | arch  | n_embd | layers | heads / kv | head_dim            | n_ff | experts |
|-------|-------|--------|--------|------------|---------------------|------|---------|
| dense | llama | 256    | 2      | 8 / 2      | 64 (≠ 256/8, like Magistral's key_length) | 512 | - |
| moe   | llama | 256    | 2      | 4 / 2      | 64                  | 256  | 8, top-2 |

The F32 files are rebuilt bit-for-bit from the seed (the fixture records their sha256); the Q4_K_M
files are made from them by llama.cpp's quantizer and committed, since nothing else can make K-quants.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

KINDS = {
    "dense": dict(n_embd=256, n_layer=2, n_head=8, n_head_kv=2, head_dim=64, n_ff=512, n_expert=0, n_expert_used=0),
    "moe": dict(n_embd=256, n_layer=2, n_head=4, n_head_kv=2, head_dim=64, n_ff=256, n_expert=8, n_expert_used=2),
}
WORDS = "the of and to in is that for it as was with be by on not he this are or his from at capital country city".split()


def _vocab() -> tuple[list[str], list[float], list[int]]:
    from gguf import TokenType

    tokens, scores, types = [], [], []

    def add(t: str, s: float, ty: int) -> None:
        tokens.append(t); scores.append(s); types.append(int(ty))

    add("<unk>", 0.0, TokenType.UNKNOWN); add("<s>", 0.0, TokenType.CONTROL); add("</s>", 0.0, TokenType.CONTROL)
    for b in range(256):
        add(f"<0x{b:02X}>", 0.0, TokenType.BYTE)
    pieces = ["\u2581"] + [chr(c) for c in range(33, 127)] + ["\u2581" + chr(c) for c in range(33, 127)]
    for w in WORDS:
        for k in range(2, len(w) + 1):
            for p in (w[:k], "\u2581" + w[:k]):
                if p not in pieces:
                    pieces.append(p)
    for i, p in enumerate(pieces):
        add(p, -float(i) - 1.0, TokenType.NORMAL)
    while len(tokens) < 608:
        add(f"<unused{len(tokens)}>", -1e4, TokenType.UNUSED)
    return tokens, scores, types


def write_synthetic(path: str | Path, kind: str, seed: int = 1234) -> str:
    """Write the F32 model `kind` to `path` (temp name, then rename); returns its sha256."""
    import gguf

    hp = KINDS[kind]
    n_embd, n_layer, n_head, n_kv, hd, n_ff = (hp[k] for k in ("n_embd", "n_layer", "n_head", "n_head_kv",
                                                               "head_dim", "n_ff"))
    n_exp, n_used = hp["n_expert"], hp["n_expert_used"]
    tokens, scores, types = _vocab()
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)

    def mat(rows: int, cols: int, s: float | None = None) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * (s or 1 / np.sqrt(cols))).astype(np.float32)

    def norm_w() -> np.ndarray:
        return (1 + 0.1 * rng.standard_normal(n_embd)).astype(np.float32)

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name(f"synthetic-{kind}"); w.add_context_length(2048); w.add_embedding_length(n_embd)
    w.add_block_count(n_layer); w.add_feed_forward_length(n_ff); w.add_head_count(n_head)
    w.add_head_count_kv(n_kv); w.add_key_length(hd); w.add_value_length(hd); w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(hd); w.add_rope_freq_base(10000.0); w.add_vocab_size(n_vocab)
    if n_exp:
        w.add_expert_count(n_exp); w.add_expert_used_count(n_used)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama"); w.add_token_list(tokens); w.add_token_scores(scores); w.add_token_types(types)
    w.add_bos_token_id(1); w.add_eos_token_id(2); w.add_unk_token_id(0)
    w.add_add_bos_token(True); w.add_add_eos_token(False)
    w.add_tensor("token_embd.weight", mat(n_vocab, n_embd, 1.0))
    w.add_tensor("output_norm.weight", norm_w())
    w.add_tensor("output.weight", mat(n_vocab, n_embd))
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", norm_w())
        w.add_tensor(p + "attn_q.weight", mat(n_head * hd, n_embd))
        w.add_tensor(p + "attn_k.weight", mat(n_kv * hd, n_embd))
        w.add_tensor(p + "attn_v.weight", mat(n_kv * hd, n_embd))
        w.add_tensor(p + "attn_output.weight", mat(n_embd, n_head * hd))
        w.add_tensor(p + "ffn_norm.weight", norm_w())
        if n_exp:
            w.add_tensor(p + "ffn_gate_inp.weight", mat(n_exp, n_embd, 1.0))
            w.add_tensor(p + "ffn_gate_exps.weight", np.stack([mat(n_ff, n_embd) for _ in range(n_exp)]))
            w.add_tensor(p + "ffn_up_exps.weight", np.stack([mat(n_ff, n_embd) for _ in range(n_exp)]))
            w.add_tensor(p + "ffn_down_exps.weight", np.stack([mat(n_embd, n_ff) for _ in range(n_exp)]))
        else:
            w.add_tensor(p + "ffn_gate.weight", mat(n_ff, n_embd))
            w.add_tensor(p + "ffn_up.weight", mat(n_ff, n_embd))
            w.add_tensor(p + "ffn_down.weight", mat(n_embd, n_ff))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    os.replace(tmp, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()
