"""Write the golden fixtures of tests/golden/ with llama.cpp (llama-cpp-python) as the reference.

    /work/venv/bin/python benchmarks/reference/make_golden.py [--out tests/golden] [--n-gen 56]

For every (model, prompt): prompt ids (llama.cpp's tokenizer), the greedy continuation, and per
position the top-K logits, log-sum-exp and top-1/top-2 margin, with llama.cpp run one token per
llama_decode, F32 KV cache, weight repacking off, flash attention off (the settings closest to a
per-token engine, llama-cpp-reference.md §5). Per model, llama.cpp's own batch-prompt vs
one-token spread (mean KL, max |Δlogit|) on the same sequences: the tolerance of the quantized tests.

Models: the Gemma 3 270M Q4_K_M file; synthetic dense llama (GQA, key_length ≠ n_embd/n_head) and
Mixtral-style MoE (8 experts, top-2) in F32 (rebuilt from a seed by tests/golden/synthetic.py) and
in Q4_K_M (quantized here by llama.cpp and committed under tests/golden/models/).
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "golden"))

TOP_K = 64
GEMMA_PROMPTS = ["The capital of France is", "Here is a short poem about the sea:\n",
                 "def fibonacci(n):\n    \"\"\""]
#: a prompt longer than Gemma's 512-token sliding window, so the local layers' mask is exercised; only the
#: positions from LONG_FROM on are kept (the fixture stays small)
LONG_TEXT = ("The old lighthouse keeper wrote in his journal every evening. He described the colour of the sea, "
             "the ships that passed, the birds that rested on the rail, and the weather that came from the west. ")
LONG_REPEAT, LONG_GEN, LONG_FROM = 14, 16, 500
SYNTH_PROMPTS = ["the capital of the country is", "in the city of the"]


def _no_repack() -> None:
    import llama_cpp.llama_cpp as LC

    if getattr(LC.llama_model_default_params, "_libp2pia_no_repack", False):
        return
    orig = LC.llama_model_default_params

    def params():  # type: ignore[no-untyped-def]
        p = orig()
        p.use_extra_bufts = False
        return p

    params._libp2pia_no_repack = True  # type: ignore[attr-defined]
    LC.llama_model_default_params = params


def open_llama(path: Path, n_ctx: int = 512, threads: int = 2):  # type: ignore[no-untyped-def]
    """llama.cpp with all logits kept, F32 KV cache, no repacking, no flash attention."""
    import llama_cpp

    _no_repack()
    return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                           logits_all=True, seed=0, verbose=False, flash_attn=False,
                           type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)


def one_token_run(llm, prompt: list[int], n_gen: int) -> tuple[list[int], np.ndarray]:  # type: ignore[no-untyped-def]
    """Greedy continuation fed one token per decode; logits (len(prompt) + n_gen - 1, vocab)."""
    llm.reset()
    for t in prompt:
        llm.eval([t])
    out: list[int] = []
    for _ in range(n_gen):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(nxt)
        if len(out) < n_gen:
            llm.eval([nxt])
    return out, np.array(llm.scores[: llm.n_tokens], dtype=np.float32)


def batch_run(llm, ids: list[int]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The same sequence as one batch (llama.cpp's prompt path)."""
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: llm.n_tokens], dtype=np.float32)


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def kl_rows(ref: np.ndarray, other: np.ndarray) -> np.ndarray:
    """KL(ref || other) per row over full logits."""
    lp, lq = log_softmax(ref), log_softmax(other)
    return (np.exp(lp) * (lp - lq)).sum(-1)


def fixture_arrays(prompt: list[int], gen: list[int], logits: np.ndarray, first_row: int = 0) -> dict[str, np.ndarray]:
    """Row i of the arrays is position first_row + i."""
    logits = logits[first_row:]
    order = np.argsort(-logits, axis=1, kind="stable")[:, :TOP_K]
    top = np.take_along_axis(logits, order, axis=1)
    z = logits.astype(np.float64)
    lse = z.max(1) + np.log(np.exp(z - z.max(1, keepdims=True)).sum(1))
    return {"prompt": np.array(prompt, np.int32), "greedy": np.array(gen, np.int32),
            "top_ids": order.astype(np.int32), "top_logits": top.astype(np.float32),
            "lse": lse.astype(np.float64), "margin": (top[:, 0] - top[:, 1]).astype(np.float32),
            "first_row": np.array(first_row, np.int32)}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def quantize_q4_k_m(src: Path, dst: Path) -> None:
    import llama_cpp

    p = llama_cpp.llama_model_quantize_default_params()
    p.nthread = 2
    p.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    tmp = dst.with_name(dst.name + ".tmp")
    if llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(p)) != 0:
        raise SystemExit(f"llama.cpp could not quantize {src}")
    os.replace(tmp, dst)


def make_model(name: str, path: Path, prompts: list[str], n_gen: int, out: Path, extra: dict,
               first_row: int = 0) -> dict:
    llm = open_llama(path, n_ctx=1024)
    cases, kls, maxabs = [], [], []
    for i, text in enumerate(prompts):
        prompt = llm.tokenize(text.encode(), add_bos=True, special=False)
        gen, logits = one_token_run(llm, prompt, n_gen)
        seq = prompt + gen[:-1]
        blogits = batch_run(llm, seq)
        kls.append(kl_rows(logits[first_row:], blogits[first_row:]))
        maxabs.append(float(np.abs(logits[first_row:] - blogits[first_row:]).max()))
        fname = f"{name}-p{i}.npz"
        np.savez_compressed(out / fname, **fixture_arrays(prompt, gen, logits, first_row))
        cases.append({"prompt_text": text, "file": fname, "n_prompt": len(prompt), "n_gen": len(gen),
                      "first_row": first_row})
        print(f"{name} p{i}: {len(prompt)} prompt tokens, greedy {gen[:12]}..., "
              f"llama batch-vs-one-token mean KL {kls[-1].mean():.2e}, max|d| {maxabs[-1]:.3g}")
    del llm
    kl_all = np.concatenate(kls)
    return {"model": name, "sha256": sha256(path), "top_k": TOP_K, "cases": cases,
            "llama_spread": {"mean_kl": float(kl_all.mean()), "max_abs": float(max(maxabs))},
            "llama_settings": {"kv": "F32", "repack": False, "flash_attn": False, "decode": "one token per eval"},
            **extra}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "golden")
    ap.add_argument("--n-gen", type=int, default=56)
    ap.add_argument("--only", default="", help="comma-separated model names (default: all)")
    args = ap.parse_args()
    from synthetic import KINDS, write_synthetic

    from libp2pia import default_model_path

    out: Path = args.out
    (out / "models").mkdir(parents=True, exist_ok=True)
    only = set(filter(None, args.only.split(",")))
    index = {}
    idx_path = out / "index.json"
    if idx_path.exists():
        index = json.loads(idx_path.read_text())
    jobs: list[tuple[str, Path, list[str], dict]] = []
    if not only or "gemma" in only:
        jobs.append(("gemma", default_model_path(), GEMMA_PROMPTS, {"source": "default_model"}))
    scratch = out / "models" / "_f32"
    scratch.mkdir(exist_ok=True)
    for kind in KINDS:
        f32 = scratch / f"{kind}-f32.gguf"
        digest = write_synthetic(f32, kind)
        q = out / "models" / f"{kind}-q4_k_m.gguf"
        if not only or f"{kind}-q4_k_m" in only:
            quantize_q4_k_m(f32, q)
            jobs.append((f"{kind}-q4_k_m", q, SYNTH_PROMPTS, {"source": f"models/{q.name}"}))
        if not only or f"{kind}-f32" in only:
            jobs.append((f"{kind}-f32", f32, SYNTH_PROMPTS, {"source": f"synthetic:{kind}", "f32_sha256": digest}))
    for name, path, prompts, extra in jobs:
        index[name] = make_model(name, path, prompts, args.n_gen, out, extra)
    if not only or "gemma-long" in only:
        index["gemma-long"] = make_model("gemma-long", default_model_path(), [LONG_TEXT * LONG_REPEAT], LONG_GEN,
                                         out, {"source": "default_model"}, first_row=LONG_FROM)
    for f in scratch.iterdir():
        f.unlink()
    scratch.rmdir()
    tmp = idx_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(index, indent=1) + "\n")
    os.replace(tmp, idx_path)
    print(f"wrote {idx_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
