"""The ``libp2pia`` console script.

Each sub-command lives in its own module of this package and exposes
``register(subparsers) -> None`` (adds its parser, sets ``func``). Command
modules keep heavy imports (numba, libp2p) inside their run functions so that
``libp2pia --help`` stays fast. Modules whose name starts with ``_`` are helpers.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

from ..errors import Libp2piaError

PROG = "libp2pia"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Peer-to-peer LLM inference on CPUs: cut GGUF models into fragments, serve them, generate.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="less log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def configure_logging(verbose: int, quiet: int, debug: bool) -> None:
    level = logging.DEBUG if debug else {0: logging.INFO, 1: logging.DEBUG}.get(verbose - quiet, logging.DEBUG)
    if quiet > verbose:
        level = logging.WARNING if quiet - verbose == 1 else logging.ERROR
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # py-libp2p logs benign events (EOF on a finished stream, ...) at WARNING/ERROR.
    logging.getLogger("libp2p").setLevel(logging.DEBUG if debug else logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet, args.debug)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `libp2pia inspect ... | head`: the reader left; not an error worth a message.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (Libp2piaError, OSError) as exc:
        if args.debug:
            raise
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return " ".join(str(exc).split()) or type(exc).__name__
