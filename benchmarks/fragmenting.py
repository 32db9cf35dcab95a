"""Fragmenting throughput against ``cp`` on the same file, side by side in one run.

    python benchmarks/fragmenting.py [--model PATH] [--repeat 3] [--json OUT.json]

Both read the same (page-cached) source and write to the same filesystem; each is run
``--repeat`` times alternately and the median is reported. ``fragment`` does strictly more
(sha256 of every fragment on every core, header parsing, planning, manifest); the goal is at
least half of cp's throughput. ``fragment+src`` is ``fragment --source-sha256``, which also
hashes the whole source for the manifest (every byte hashed twice). GNU cp 9 copies in the kernel (copy_file_range), so ``dd bs=4M``
is shown too as a user-space read/write copy. Also times ``reassemble`` (verifies every hash first).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from libp2pia import default_model_path  # noqa: E402
from libp2pia.fragments import file_sha256, fragment, reassemble  # noqa: E402


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="GGUF to cut (default: the bundled Gemma 3 270M Q4_K_M)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "fragmenting.json")
    args = ap.parse_args()
    model = args.model or default_model_path()
    size = model.stat().st_size
    model.read_bytes()  # warm the page cache for both contenders
    times: dict[str, list[float]] = {"cp": [], "dd": [], "sha256": [], "fragment": [], "fragment+src": [],
                                 "reassemble": []}
    with tempfile.TemporaryDirectory(prefix="bench-frag-", dir=model.parent) as tmp:
        d = Path(tmp)
        for i in range(args.repeat):
            times["cp"].append(timed(lambda: subprocess.run(["cp", str(model), str(d / "copy.gguf")], check=True)))
            (d / "copy.gguf").unlink()
            # dd: a plain user-space read/write copy (cp uses in-kernel copy_file_range)
            times["dd"].append(timed(lambda: subprocess.run(
                ["dd", f"if={model}", f"of={d / 'copy.gguf'}", "bs=4M", "status=none"], check=True)))
            (d / "copy.gguf").unlink()
            # the floor of any content-addressed cutter: fragment hashes the source and every fragment
            times["sha256"].append(timed(lambda: file_sha256(model)))
            times["fragment+src"].append(timed(lambda: fragment(model, d / "src", hash_source=True)))
            shutil.rmtree(d / "src")
            times["fragment"].append(timed(lambda: fragment(model, d / "frags")))
            times["reassemble"].append(timed(lambda: reassemble(d / "frags" / "manifest.json", d / "out.gguf")))
            (d / "out.gguf").unlink()
            shutil.rmtree(d / "frags")
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [(k, med[k], size / med[k] / 1e6, med["cp"] / med[k]) for k in times]
    print(f"{model.name}: {size / 1e6:.1f} MB, median of {args.repeat}")
    print(f"{'tool':<12}{'seconds':>10}{'MB/s':>10}{'vs cp':>8}")
    for name, sec, mbs, ratio in rows:
        print(f"{name:<12}{sec:>10.3f}{mbs:>10.0f}{ratio:>8.2f}")
    ok = med["cp"] / med["fragment"] >= 0.5
    print(f"fragment vs dd (user-space copy): {med['dd'] / med['fragment']:.2f}x")
    print(f"goal (fragment >= 0.5x cp throughput): {'met' if ok else 'NOT met'}")
    result = {"model": str(model), "bytes": size, "repeat": args.repeat, "times_s": times, "median_s": med,
              "throughput_MBps": {k: size / v / 1e6 for k, v in med.items()},
              "ratio_vs_cp": {k: med["cp"] / v for k, v in med.items()}, "goal_met": ok,
              "machine": {"python": sys.version.split()[0], "platform": platform.platform()}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
