"""Entry points of the four node processes: argparse → config → ``trio.run``.

    python -m libp2pia.node.run bootstrap|relay|worker|client [options]    (apps/*.py call the same main)

A service prints one JSON readiness line on stdout once it serves (``{"role": ..., "peer_id": ...,
"addrs": [...]}``), then human status lines on stderr. Ctrl-C or SIGTERM cancels everything and
closes the host; a bad argument or an unreachable bootstrap node gives one line and exit code 1.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..cli._common import add_sampling_args
from ..errors import Libp2piaError
from ..limits import DEFAULT_CONTEXT_LENGTH, DEFAULT_HEARTBEAT_PERIOD_S, DEFAULT_WORKER_STORAGE_BYTES

ROLES = ("bootstrap", "relay", "worker", "client")
HELP = {
    "bootstrap": "DHT server that helps peers find each other and publishes model manifests (no compute)",
    "relay": "circuit relay v2 hop (with limits) for peers behind NAT",
    "worker": "serve compute on the fragments of a directory",
    "client": "generate text with a model served by the network (one-shot --prompt or interactive chat)",
}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", action="append", default=None, metavar="MULTIADDR",
                   help="listen address (repeatable; default /ip4/127.0.0.1/tcp/0; use /ip4/0.0.0.0/tcp/PORT on a server)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="node directory: identity key (persisted peer id) and caches")
    p.add_argument("--bootstrap", nargs="+", default=[], metavar="ADDR",
                   help="multiaddr(s) of bootstrap nodes, /ip4/…/tcp/…/p2p/<peer id>")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    p.add_argument("-q", "--quiet", action="count", default=0, help="less log output")
    p.add_argument("--debug", action="store_true", help="debug logs and tracebacks")


def build_parser(role: str, prog: str | None = None) -> argparse.ArgumentParser:
    from ..cli._common import size_arg

    p = argparse.ArgumentParser(prog=prog or f"libp2pia-{role}", description=HELP[role])
    _common(p)
    if role == "bootstrap":
        p.add_argument("--manifest", nargs="+", type=Path, default=[], metavar="PATH",
                       help="manifest.json (or a fragment directory) of a model to publish")
    elif role == "worker":
        p.add_argument("--fragments", type=Path, default=None, metavar="DIR",
                       help="directory with manifest.json and fragment files to serve (without it: --model, and "
                            "the fragments with the fewest live replicas are fetched from peers, see node.acquire)")
        p.add_argument("--model", default=None, metavar="MODEL_ID",
                       help="without --fragments: the model whose fragments to fetch into DATA_DIR/store")
        p.add_argument("--storage", type=size_arg, default=DEFAULT_WORKER_STORAGE_BYTES,
                       help="storage budget: serve fragments up to this many bytes (default 10MB)")
        p.add_argument("--context", type=int, default=DEFAULT_CONTEXT_LENGTH, help="KV cache limit per session")
        p.add_argument("--status-period", type=float, default=30.0, help="seconds between status lines")
        p.add_argument("--relay", nargs="+", default=[], metavar="ADDR",
                       help="relay multiaddr(s): AutoNAT asks them; if private, a slot is reserved on each "
                            "(announced as /p2p-circuit addresses)")
        p.add_argument("--publish-manifest", action="store_true",
                       help="also publish the model manifest on the DHT (bootstrap nodes normally do)")
        p.add_argument("--heartbeat-period", type=float, default=DEFAULT_HEARTBEAT_PERIOD_S,
                       help="seconds between two announcements on gossip (default 30)")
    elif role == "client":
        p.add_argument("--model", required=True, metavar="MODEL_ID", help="model id (sha256 of its manifest)")
        p.add_argument("--prompt", "-p", default=None, help="one-shot prompt; without it: interactive chat")
        p.add_argument("-n", "--max-tokens", type=int, default=64, help="tokens to generate (default 64)")
        add_sampling_args(p)
        p.add_argument("--chat", action="store_true", help="wrap --prompt with the chat template")
        p.add_argument("--json", action="store_true", help="print one JSON object (tokens, text, timing, peers)")
        p.add_argument("--wire-dtype", choices=("float32", "float16", "bfloat16"), default="float16",
                       help="activation encoding on the wire (default float16: half the bytes; float32: output "
                            "bit-identical to the local engine's)")
        p.add_argument("--relay", nargs="+", default=[], metavar="ADDR",
                       help="relay multiaddr(s): workers behind NATs are reached through them")
    return p


def sampling_params(args: argparse.Namespace):  # noqa: ANN201 - SamplingParams (imported lazily)
    from ..model.sampling import SamplingParams

    params = SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                            repetition_penalty=args.repeat_penalty, seed=args.seed)
    params.validate()
    return params


# ---------------------------------------------------------------- process shell


async def _until_signal(body: Callable[..., Any], *args: Any) -> None:
    """Run ``body``; SIGTERM cancels it like Ctrl-C does (hosts get closed either way)."""
    import trio

    async with trio.open_nursery() as n:
        async def watch() -> None:
            with trio.open_signal_receiver(signal.SIGTERM) as sigs:
                async for _ in sigs:
                    n.cancel_scope.cancel()
                    return

        n.start_soon(watch)
        await body(*args)
        n.cancel_scope.cancel()


async def _serve(serve: Callable[..., Any], cfg: Any) -> None:
    """Start a service, print its readiness line, run until cancelled."""
    import trio

    from .services import print_ready

    async with trio.open_nursery() as n:
        info = await n.start(serve, cfg)
        print_ready(info if isinstance(info, dict) else info.to_json())


def silence_libp2p() -> None:
    """Drop py-libp2p's log records (call after importing libp2p, which resets its logger).

    Its logger does not propagate and has no handler, so records reach logging.lastResort:
    multi-line ERRORs for benign stream failures. Ours say what happened instead.
    """
    from ..net.host import quiet_libp2p_logs

    quiet_libp2p_logs(logging.CRITICAL)
    lg = logging.getLogger("libp2p")
    if not any(isinstance(h, logging.NullHandler) for h in lg.handlers):
        lg.addHandler(logging.NullHandler())


def _leaf(exc: BaseException) -> BaseException:
    """The one real error inside nested single-member exception groups (trio nurseries wrap them)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def main(role: str, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    import trio

    from ..cli import configure_logging

    args = build_parser(role, prog).parse_args(argv)
    configure_logging(args.verbose, args.quiet, args.debug)
    if not args.debug:
        silence_libp2p()
    name = prog or f"libp2pia-{role}"
    try:
        trio.run(_until_signal, _ROLE_MAIN[role], args)
        return 0
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:  # noqa: BLE001 - unwrap nursery groups, then decide
        leaf = _leaf(exc)
        if isinstance(leaf, KeyboardInterrupt):
            print(f"{name}: interrupted", file=sys.stderr)
            return 130
        if isinstance(leaf, (Libp2piaError, OSError)) and not args.debug:
            msg = " ".join(str(leaf).split()) or type(leaf).__name__
            print(f"{name}: error: {msg}", file=sys.stderr)
            return 1
        raise


# ---------------------------------------------------------------- roles


def _listen(args: argparse.Namespace) -> tuple[str, ...]:
    from ..net.host import DEFAULT_LISTEN

    return tuple(args.listen or (DEFAULT_LISTEN,))


async def _bootstrap(args: argparse.Namespace) -> None:
    from .services import ServiceConfig, serve_bootstrap

    await _serve(serve_bootstrap, ServiceConfig(_listen(args), args.data_dir, args.bootstrap, args.manifest))


async def _relay(args: argparse.Namespace) -> None:
    from .services import ServiceConfig, serve_relay

    await _serve(serve_relay, ServiceConfig(_listen(args), args.data_dir, args.bootstrap))


async def _worker(args: argparse.Namespace) -> None:
    import trio

    from .worker import Worker, WorkerConfig

    extra: dict = {}
    if args.fragments is None:                     # fetch from peers what the network is shortest of
        from .acquire import acquire_from_args

        args.fragments, extra = await acquire_from_args(args)
    cfg = WorkerConfig(args.fragments, args.bootstrap, args.storage, args.data_dir, _listen(args), args.context,
                       args.status_period, publish_manifest=args.publish_manifest,
                       heartbeat_period=args.heartbeat_period, relays=args.relay, extra=extra)
    worker = await trio.to_thread.run_sync(Worker.load, cfg.fragments, cfg.storage, cfg.context_limit)
    await _serve(worker.serve, cfg)


async def _client(args: argparse.Namespace) -> None:
    from .chat import run_client

    await run_client(args)


_ROLE_MAIN: dict[str, Callable[[argparse.Namespace], Any]] = {
    "bootstrap": _bootstrap, "relay": _relay, "worker": _worker, "client": _client,
}


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ROLES:
        print(f"usage: python -m libp2pia.node.run {{{','.join(ROLES)}}} [options]  (--help per role)",
              file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2:]))
