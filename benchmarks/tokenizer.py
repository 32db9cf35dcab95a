"""Tokenizer speed: libp2pia's pure-Python tokenizer next to llama.cpp's, same texts.

    python benchmarks/tokenizer.py [--gguf PATH] [--repeat 20] [--json out.json]

Prints a table (encode and decode time per vocabulary, ours / llama.cpp ratio) and
writes JSON to benchmarks/results/tokenizer.json (or --json). Needs llama-cpp-python
for the reference column; without it only our times are printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from libp2pia.model.tokenizer import Tokenizer  # noqa: E402


def _best(fn, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", help="GGUF whose tokenizer to time (default: the Gemma model)")
    ap.add_argument("--repeat", type=int, default=20, help="copies of the golden corpus in the text")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "tokenizer.json"))
    args = ap.parse_args()

    spec = importlib.util.spec_from_file_location(
        "golden", ROOT / "benchmarks" / "reference" / "make_tokenizer_golden.py")
    golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(golden)
    try:
        import llama_cpp  # noqa: F401
        have_ref = True
    except ImportError:
        have_ref = False

    from libp2pia import default_model_path

    text = "\n".join(golden.CORPUS) * args.repeat
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        vocabs = {"gguf": (None, args.gguf or str(default_model_path()))}
        for name, meta in (("synthetic-spm", golden.spm_vocab()),
                           ("synthetic-tekken", golden.bpe_vocab())):
            path = os.path.join(tmp, name + ".gguf")
            golden.write_vocab_gguf(meta, path)
            vocabs[name] = (meta, path)
        for name, (meta, path) in vocabs.items():
            tok = Tokenizer.from_metadata(meta) if meta else Tokenizer.from_gguf(path)
            ids = tok.encode(text)
            row = {"vocab": name if meta else Path(path).name, "chars": len(text), "tokens": len(ids),
                   "ours_encode_s": _best(lambda: tok.encode(text)),
                   "ours_decode_s": _best(lambda: tok.decode(ids))}
            if have_ref:
                ref = golden.LlamaVocab(path)
                assert ref.tokenize(text, True, False) == ids, "ids differ from llama.cpp"
                row["ref_encode_s"] = _best(lambda: ref.tokenize(text, True, False))
                row["ref_decode_s"] = _best(lambda: ref.detokenize(ids, False, False))
            rows.append(row)

    print(f"{'vocab':34} {'tokens':>7} {'encode ours':>12} {'llama.cpp':>10} {'ratio':>6}"
          f" {'decode ours':>12} {'llama.cpp':>10} {'ratio':>6}")
    for r in rows:
        enc = (f"{r['ref_encode_s'] * 1e3:9.1f}ms {r['ours_encode_s'] / r['ref_encode_s']:5.1f}x"
               if "ref_encode_s" in r else f"{'-':>10} {'-':>6}")
        dec = (f"{r['ref_decode_s'] * 1e3:9.1f}ms {r['ours_decode_s'] / r['ref_decode_s']:5.1f}x"
               if "ref_decode_s" in r else f"{'-':>10} {'-':>6}")
        print(f"{r['vocab']:34} {r['tokens']:7d} {r['ours_encode_s'] * 1e3:10.1f}ms {enc}"
              f" {r['ours_decode_s'] * 1e3:10.1f}ms {dec}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    tmp_json = args.json + ".tmp"
    with open(tmp_json, "w") as f:
        json.dump({"rows": rows}, f, indent=1)
    os.replace(tmp_json, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
