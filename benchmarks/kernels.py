"""libp2pia.quant kernels vs llama.cpp (ggml) vs numpy, side by side in one run.

Per type: a ~10 MB matrix of ggml-quantized random weights (2048 columns), y = W x timed as
  ours      libp2pia.quant.matvec on a prepared matrix, mode="ggml" (and mode="exact")
  ggml      ggml_mul_mat in a CPU graph on a persistent threadpool (llama.cpp's decode path), same threads
  numpy     gguf.quants.dequantize, then float32 matmul (the naive baseline)
at 1 and 2 threads, interleaved in rounds (the machine is shared; min and median are both reported).
Also: llama.cpp decoding the Gemma model (bytes of weights per token / time per token) next to our kernels
running all of Gemma's matrices once, and numba JIT cold/warm start (fresh processes, own cache dir).

    /work/venv/bin/python benchmarks/kernels.py [--types Q4_K Q6_K] [--rounds 6] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType  # noqa: E402
from gguf import quants as gq  # noqa: E402

import libp2pia.quant as Q  # noqa: E402

TYPES = ["Q4_K", "Q6_K", "Q5_0", "Q8_0", "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_1", "Q2_K", "Q3_K", "Q5_K",
         "IQ4_NL", "IQ4_XS"]
FRAGMENT = 10 * 1024 * 1024


def _ggml():  # type: ignore[no-untyped-def]
    try:
        from benchmarks.reference import ggml_ref

        ggml_ref.libs()
        return ggml_ref
    except ImportError:
        return None


def _time(fn, n: int, cpu: list[float] | None = None) -> list[float]:  # type: ignore[no-untyped-def]
    """Wall seconds per call; with `cpu`, also the calling thread's CPU seconds (robust to being descheduled:
    at 1 thread both our kernel and ggml's graph run in the calling thread)."""
    out = []
    for _ in range(n):
        c = time.thread_time()
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
        if cpu is not None:
            cpu.append(time.thread_time() - c)
    return out


def bench_type(name: str, cols: int, threads: list[int], rounds: int, per_round: int, G) -> dict:  # type: ignore[no-untyped-def]
    blk, size = GGML_QUANT_SIZES[GGMLQuantizationType[name]]
    rows = max(4, FRAGMENT // (cols // blk * size))
    rng = np.random.default_rng(7)
    W = rng.standard_normal((rows, cols)).astype(np.float32)
    raw = G.quantize(name, W) if G else _random_blocks(name, rows, cols, rng)
    x = rng.standard_normal(cols).astype(np.float32)
    t0 = time.perf_counter()
    pm = Q.prepare(raw, name)
    prep = time.perf_counter() - t0
    res: dict = {"type": name, "rows": rows, "cols": cols, "bytes": int(raw.nbytes), "prepare_s": prep,
                 "layout_bytes": pm.nbytes, "threads": {}}
    # numpy baseline: dequantize everything, then one matvec (BLAS; its own threads)
    tn = _time(lambda: gq.dequantize(raw, GGMLQuantizationType[name]).reshape(rows, cols) @ x, 2)
    res["numpy_ms"] = min(tn) * 1e3
    for th in threads:
        Q.set_threads(th)
        ours, exact, ggml, ours_cpu, ggml_cpu = [], [], [], [], []
        Q.matvec(pm, name, x)
        Q.matvec(pm, name, x, "exact")
        for _ in range(rounds):
            ours += _time(lambda: Q.matvec(pm, name, x), per_round, ours_cpu if th == 1 else None)
            exact += _time(lambda: Q.matvec(pm, name, x, "exact"), per_round)
            if G:
                with G.Gemv(name, raw, cols, 1, th) as gm:
                    gm(x)
                    ggml += _time(lambda: gm(x), per_round, ggml_cpu if th == 1 else None)
        r = {"ours_ms": min(ours) * 1e3, "ours_med_ms": float(np.median(ours)) * 1e3,
             "exact_ms": min(exact) * 1e3, "exact_med_ms": float(np.median(exact)) * 1e3}
        if ours_cpu:
            r["ours_cpu_med_ms"] = float(np.median(ours_cpu)) * 1e3
        if ggml:
            r |= {"ggml_ms": min(ggml) * 1e3, "ggml_med_ms": float(np.median(ggml)) * 1e3}
        if ggml_cpu:
            r["ggml_cpu_med_ms"] = float(np.median(ggml_cpu)) * 1e3
        res["threads"][str(th)] = r
    Q.set_threads(max(threads))
    return res


def _random_blocks(name: str, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """Without llama.cpp: gguf-py's quantizer where it has one, else random quants with sane fp16 scales."""
    t = GGMLQuantizationType[name]
    W = rng.standard_normal((rows, cols)).astype(np.float32)
    try:
        return np.asarray(gq.quantize(W, t)).reshape(rows, -1)
    except NotImplementedError:
        blk, size = GGML_QUANT_SIZES[t]
        raw = rng.integers(0, 256, (rows, cols // blk, size), dtype=np.uint8)
        off = {"Q2_K": [80, 82], "Q3_K": [108], "Q6_K": [208], "Q4_K": [0, 2], "Q5_K": [0, 2]}.get(name, [0])
        for o in off:
            raw[:, :, o:o + 2] = np.full((rows, cols // blk), 0.01, np.float16).view(np.uint8).reshape(rows, -1, 2)
        return raw.reshape(rows, -1)


def gemma_decode(threads: list[int], tokens: int) -> dict | None:
    """llama.cpp decode of Gemma (one token per eval) vs our kernels over all of Gemma's matrices once."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    from gguf import GGUFReader

    from libp2pia import default_model_path

    path = str(default_model_path())
    reader = GGUFReader(path)
    mats = [(t.tensor_type.name, np.asarray(t.data)) for t in reader.tensors if len(t.shape) >= 2]
    weight_bytes = sum(int(a.nbytes) for _, a in mats)  # token_embd counted once: the tied output matmul
    out: dict = {"weight_bytes_per_token": weight_bytes, "threads": {}}
    prepared = [(n, Q.prepare(a.reshape(a.shape[0], -1) if a.ndim == 2 else a.reshape(-1, a.shape[-1]), n))
                for n, a in mats]
    rng = np.random.default_rng(1)
    xs = {pm.cols: rng.standard_normal(pm.cols).astype(np.float32) for _, pm in prepared}
    for th in threads:
        llm = Llama(model_path=path, n_ctx=256, n_threads=th, n_threads_batch=th, verbose=False)
        toks = llm.tokenize(b"The capital of France is", add_bos=True)
        llm.eval(toks)
        per = []
        for _ in range(tokens):
            nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            t = time.perf_counter()
            llm.eval([nxt])
            per.append(time.perf_counter() - t)
        llm.close()
        Q.set_threads(th)
        ours = []
        for _ in range(max(3, tokens // 8)):
            t = time.perf_counter()
            for n, pm in prepared:
                Q.matvec(pm, n, xs[pm.cols])
            ours.append(time.perf_counter() - t)
        out["threads"][str(th)] = {"llama_ms_per_token": float(np.median(per)) * 1e3,
                                   "llama_min_ms": min(per) * 1e3,
                                   "ours_all_matrices_ms": float(np.median(ours)) * 1e3,
                                   "ours_min_ms": min(ours) * 1e3}
    return out


def jit_times(types: list[str]) -> dict:
    """Seconds for import + warmup(types) in a fresh process: cold (empty numba cache dir), then warm."""
    code = ("import time; t=time.perf_counter(); import libp2pia.quant as Q; t1=time.perf_counter(); "
            "Q.warmup(%r); print(t1-t, time.perf_counter()-t1)" % (types,))
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        for label in ("cold", "warm"):
            p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            imp, warm = (float(v) for v in p.stdout.strip().splitlines()[-1].split())
            out[label + "_s"] = imp + warm
            out[label + "_import_s"] = imp
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--types", nargs="+", default=TYPES)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--cols", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=6, help="alternating measurement rounds per type and thread count")
    ap.add_argument("--per-round", type=int, default=5)
    ap.add_argument("--gemma-tokens", type=int, default=24, help="0 skips the Gemma decode comparison")
    ap.add_argument("--no-jit", action="store_true", help="skip the cold/warm JIT measurement")
    ap.add_argument("--jit-only", action="store_true", help="only the cold/warm JIT measurement")
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/kernels.json"))
    args = ap.parse_args()
    if args.jit_only:
        print_table({"types": [], "jit": jit_times(TYPES)}, [])
        return 0
    G = _ggml()
    Q.warmup(args.types)
    results = {"machine": os.uname().machine, "cpus": os.cpu_count(), "llama_cpp": G is not None,
               "load_avg_at_start": os.getloadavg(),
               "types": [bench_type(t, args.cols, args.threads, args.rounds, args.per_round, G) for t in args.types]}
    if args.gemma_tokens and G:
        results["gemma"] = gemma_decode(args.threads, args.gemma_tokens)
    if not args.no_jit:
        results["jit"] = jit_times(TYPES)
    results["load_avg_at_end"] = os.getloadavg()
    print_table(results, args.threads)
    print(f"\nload average at start / end: {results['load_avg_at_start'][0]:.1f} / {results['load_avg_at_end'][0]:.1f}"
          f" on {os.cpu_count()} CPUs (other processes share them: read medians with care)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json + ".tmp"
    Path(tmp).write_text(json.dumps(results, indent=1))
    os.replace(tmp, args.json)
    print(f"\nJSON: {args.json}")
    return 0


def print_table(res: dict, threads: list[int]) -> None:
    mb = FRAGMENT / 1e6
    print("\nms per 10 MB fragment (min over rounds; median in brackets); GB/s of quantized weight; "
          "ratio = our throughput / ggml's")
    hdr = f"{'type':6s} {'th':>2s} {'ours ms':>15s} {'GB/s':>5s} {'exact ms':>15s} {'ggml ms':>15s} " \
          f"{'GB/s':>5s} {'ratio':>5s} {'numpy ms':>8s} {'vs numpy':>8s}"
    print(hdr)
    for r in res["types"]:
        scale = FRAGMENT / r["bytes"]
        for th in threads:
            t = r["threads"][str(th)]
            o, om = t["ours_ms"] * scale, t["ours_med_ms"] * scale
            e, em = t["exact_ms"] * scale, t["exact_med_ms"] * scale
            line = f"{r['type']:6s} {th:2d} {o:6.2f} [{om:6.2f}] {mb / o:5.1f} {e:6.2f} [{em:6.2f}] "
            if "ggml_ms" in t:
                g, gm = t["ggml_ms"] * scale, t["ggml_med_ms"] * scale
                line += f"{g:6.2f} [{gm:6.2f}] {mb / g:5.1f} {g / o:5.2f} "
            else:
                line += f"{'-':>15s} {'-':>5s} {'-':>5s} "
            n = r["numpy_ms"] * scale
            line += f"{n:8.1f} {n / o:7.0f}x"
            print(line)
    cpu_rows = [r for r in res["types"] if "ggml_cpu_med_ms" in r["threads"].get("1", {})]
    if cpu_rows:
        print("\n1 thread, CPU time of the calling thread (median; immune to being descheduled on a busy machine):")
        print(f"{'type':6s} {'ours ms':>8s} {'ggml ms':>8s} {'ratio':>5s}   (per 10 MB)")
        for r in cpu_rows:
            t, scale = r["threads"]["1"], FRAGMENT / r["bytes"]
            o, g = t["ours_cpu_med_ms"] * scale, t["ggml_cpu_med_ms"] * scale
            print(f"{r['type']:6s} {o:8.2f} {g:8.2f} {g / o:5.2f}")
    if res.get("gemma"):
        g = res["gemma"]
        print(f"\nGemma 3 270M: {g['weight_bytes_per_token'] / 1e6:.1f} MB of matrices per token")
        for th, t in g["threads"].items():
            gb = g["weight_bytes_per_token"] / 1e6
            print(f"  {th} thr: llama.cpp decode {t['llama_ms_per_token']:.1f} ms/token "
                  f"({gb / t['llama_ms_per_token']:.1f} GB/s incl. attention etc.); ours, all matrices once "
                  f"{t['ours_all_matrices_ms']:.1f} ms ({gb / t['ours_all_matrices_ms']:.1f} GB/s); "
                  f"ratio {t['llama_ms_per_token'] / t['ours_all_matrices_ms']:.2f}")
    if res.get("jit"):
        j = res["jit"]
        print(f"\nJIT, import + warmup(all types) in a fresh process: cold {j['cold_s']:.1f} s "
              f"(import {j['cold_import_s']:.1f} s), warm from numba's cache {j['warm_s']:.2f} s "
              f"(import {j['warm_import_s']:.2f} s)")


if __name__ == "__main__":
    raise SystemExit(main())
