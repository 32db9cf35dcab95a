"""Small helpers shared by the command modules: sizes, progress bars, atomic output."""

from __future__ import annotations

import argparse
import re
import sys
from fractions import Fraction
from typing import Any

from ..errors import Libp2piaError

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def parse_size(text: str) -> int:
    """Parse ``10MiB``, ``10MB``, ``2.5GiB`` or a plain byte count into bytes."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise Libp2piaError(f"not a size: {text!r} (examples: 10MiB, 512KiB, 1000000)")
    exact = Fraction(m.group(1)) * _UNITS[m.group(2).lower()]  # exact: no float rounding
    if exact <= 0:
        raise Libp2piaError(f"size must be positive: {text!r}")
    if exact.denominator != 1:
        raise Libp2piaError(f"not a whole number of bytes: {text!r}")
    return int(exact)


def size_arg(text: str) -> int:
    """``parse_size`` for argparse's ``type=``: a bad value becomes a usage error carrying our message."""
    try:
        return parse_size(text)
    except Libp2piaError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=int, default=0, help="keep the K most likely tokens (0 = off)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1 = off)")
    p.add_argument("--min-p", type=float, default=0.0, help="drop tokens below min-p × best probability")
    p.add_argument("--repeat-penalty", type=float, default=1.0, help="repetition penalty (1 = off)")
    p.add_argument("--seed", type=int, default=None, help="seed of the sampler")


def progress(total: int, desc: str, unit: str = "B") -> Any:
    """A tqdm progress bar on a terminal, a silent stand-in otherwise."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, unit_divisor=1024,
                disable=not sys.stderr.isatty(), leave=False)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"
