"""Host factory: TCP + Noise only + yamux, a persisted Ed25519 identity, guarded handlers.

py-libp2p's defaults are unsafe or slow for us (reference/py-libp2p-notes.md §4):

| default                                   | what we do                                         |
|-------------------------------------------|----------------------------------------------------|
| plaintext, secio, TLS, Noise all accepted | Noise only (``sec_opt``)                           |
| a raising stream handler kills the host   | every handler goes through :func:`guarded`         |
| 250 ms per ``connect()``                  | ``ConnectionConfig(max_connections_per_peer=1)``   |
| sockets leaked when ``host.run()`` exits  | :func:`open_host` always awaits ``host.close()``   |
| a fresh random identity per process       | Ed25519 key file in the node's data dir (0600)     |
| benign WARNING/ERROR log noise            | :func:`quiet_libp2p_logs`                          |
| a yamux WINDOW_UPDATE after every read    | go-yamux's batching (:mod:`.yamux_window`)         |
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetStream
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair, KeyType
from libp2p.crypto.serialization import deserialize_private_key
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service

from ..errors import NetworkError, PeerUnavailable
from ..limits import DEFAULT_DIAL_TIMEOUT_S, DEFAULT_STREAM_OPEN_TIMEOUT_S, HOST_CLOSE_TIMEOUT_S
from . import yamux_window

log = logging.getLogger(__name__)

yamux_window.install()   # every host of this process: see the module's docstring

#: File name of the identity key inside a node's data directory.
IDENTITY_FILE = "identity.key"
DEFAULT_LISTEN = "/ip4/127.0.0.1/tcp/0"

StreamHandler = Callable[[INetStream], Awaitable[None]]


# ---------------------------------------------------------------- identity


def load_or_create_identity(data_dir: str | os.PathLike[str]) -> KeyPair:
    """The node's Ed25519 key pair: loaded from ``data_dir/identity.key``, created (0600) if absent."""
    path = Path(data_dir) / IDENTITY_FILE
    if path.exists():
        try:
            priv = deserialize_private_key(path.read_bytes())
        except Exception as exc:  # noqa: BLE001 - libp2p raises several types for a bad key
            raise NetworkError(f"identity key {path} is unreadable: {exc}") from exc
        if priv.get_type() != KeyType.Ed25519:
            raise NetworkError(f"identity key {path} is {priv.get_type().name}, not Ed25519")
        return KeyPair(priv, priv.get_public_key())
    path.parent.mkdir(parents=True, exist_ok=True)
    kp = create_new_key_pair()
    tmp = path.with_name(f".{IDENTITY_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # private from the first byte
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(kp.private_key.serialize())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("created identity %s in %s", ID.from_pubkey(kp.public_key), path)
    return kp


# ---------------------------------------------------------------- logging


#: Messages py-libp2p logs at WARNING/ERROR for normal events (EOFs, a peer
#: closing, races on shutdown). They say nothing actionable to our users.
BENIGN_LOG_FRAGMENTS = (
    "Failed to read DHT message from stream",
    "Failed to open stream to peer",
    "Failed to open TCP stream",
    "Error reading from hop stream",
    "Failed to fetch stored addresses",
    "fail to deliver message to subscription",
    "Cannot schedule task after service has stopped",
    "Stream reset",
    "StreamEOF",
    "Error in handler",
    "Failed to negotiate",
    "Rate limit exceeded",
    "Failed to upgrade",
    "Error in handle_incoming",
    "MultiselectClient handshake",
)


class _BenignFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string in a third-party log call
            return False
        return not any(f in msg for f in BENIGN_LOG_FRAGMENTS)


def quiet_libp2p_logs(level: int = logging.ERROR) -> None:
    """Raise the libp2p logger's threshold and drop its known-benign messages. Idempotent."""
    lg = logging.getLogger("libp2p")
    lg.setLevel(level)
    if not any(isinstance(f, _BenignFilter) for f in lg.filters):
        lg.addFilter(_BenignFilter())
    for h in logging.getLogger().handlers:  # child loggers' records skip parent filters
        if not any(isinstance(f, _BenignFilter) for f in h.filters):
            h.addFilter(_BenignFilter())


# ---------------------------------------------------------------- connections


def conn_kind(conn: Any) -> str:
    """'relayed' for a circuit-relay connection, else 'direct' (py-libp2p SwarmConn)."""
    from libp2p.connection_types import ConnectionType

    if getattr(conn, "get_connection_type", lambda: None)() == ConnectionType.RELAYED:
        return "relayed"
    try:
        addrs = [str(a) for a in conn.get_transport_addresses()]
    except Exception:  # noqa: BLE001 - a closing connection may fail to answer
        return "direct"
    return "relayed" if any("/p2p-circuit" in a for a in addrs) else "direct"


def stream_kind(stream: INetStream) -> str:
    """The kind of connection a stream runs on (see :func:`conn_kind`)."""
    conn = getattr(stream, "swarm_conn", None)
    return conn_kind(conn) if conn is not None else "direct"


# ---------------------------------------------------------------- handlers


def stream_peer(stream: INetStream) -> str:
    """The remote peer id of a stream, as a string ('?' if unknown)."""
    try:
        return str(stream.muxed_conn.peer_id)
    except AttributeError:
        return "?"


def guarded(handler: StreamHandler, name: str | None = None, *, close: bool = True) -> StreamHandler:
    """Wrap a stream handler so nothing it raises reaches the swarm (which would kill the host).

    On an exception the stream is reset and one line is logged. With ``close``
    the stream is closed when the handler returns; pass ``close=False`` for
    py-libp2p handlers that hand the stream over to something longer-lived
    (a relay circuit, a relayed connection). Cancellation passes through.
    """
    label = name or getattr(handler, "__qualname__", "handler")

    async def wrapper(stream: INetStream) -> None:
        try:
            await handler(stream)
        except Exception as exc:  # noqa: BLE001 - the whole point: contain everything
            log.warning("%s: stream from %s failed: %s: %s", label, stream_peer(stream)[:16],
                        type(exc).__name__, exc)
            # bounded: a peer that stopped reading must not pin this task forever
            with trio.move_on_after(DEFAULT_STREAM_OPEN_TIMEOUT_S), contextlib.suppress(Exception):
                await stream.reset()
            return
        if close:
            with trio.move_on_after(DEFAULT_STREAM_OPEN_TIMEOUT_S), contextlib.suppress(Exception):
                await stream.close()

    return wrapper


# ---------------------------------------------------------------- host


def expand_unspecified(addr: str) -> list[str]:
    """``/ip4/0.0.0.0/tcp/N`` -> one address per local IPv4 interface (others unchanged)."""
    prefix = "/ip4/0.0.0.0/"
    if not addr.startswith(prefix):
        return [addr]
    import ifaddr  # a py-libp2p dependency

    ips = [ip.ip for ad in ifaddr.get_adapters() for ip in ad.ips if isinstance(ip.ip, str)]
    return [f"/ip4/{ip}/{addr[len(prefix):]}" for ip in sorted(set(ips))] or [addr]


def parse_multiaddr(addr: str) -> multiaddr.Multiaddr:
    """A multiaddr from text; a malformed one (a typo, or a peer's garbage) is PeerUnavailable,
    not one of multiaddr's own exception types escaping to the caller."""
    try:
        return multiaddr.Multiaddr(addr)
    except Exception as exc:  # noqa: BLE001 - multiaddr raises several unrelated types
        raise PeerUnavailable(f"not a multiaddr: {addr[:200]!r} ({exc})") from exc


def peer_info(addr: str) -> PeerInfo:
    """``/ip4/.../tcp/.../p2p/<id>`` → PeerInfo; PeerUnavailable if it is not such an address."""
    try:
        return info_from_p2p_addr(parse_multiaddr(addr))
    except PeerUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - libp2p raises InvalidAddrError, ValueError, ...
        raise PeerUnavailable(f"not a peer address (…/p2p/<peer id>): {addr[:200]!r} ({exc})") from exc


def make_host(key_pair: KeyPair | None = None, listen: Sequence[str] = (DEFAULT_LISTEN,)) -> IHost:
    """A host that speaks TCP + Noise + yamux only, one connection per peer."""
    kp = key_pair or create_new_key_pair()
    return new_host(
        key_pair=kp,
        sec_opt={NOISE_PROTOCOL_ID: NoiseTransport(kp, noise_privkey=create_x25519_key_pair().private_key)},
        muxer_opt={YAMUX_PROTOCOL_ID: Yamux},
        connection_config=ConnectionConfig(max_connections_per_peer=1),
        listen_addrs=[multiaddr.Multiaddr(a) for a in listen],
    )


@dataclass
class NetHost:
    """A running host, a nursery for our background tasks and one for py-libp2p services."""

    host: IHost
    nursery: trio.Nursery
    _services: trio.Nursery
    announce: tuple[str, ...] = ()

    @property
    def peer_id(self) -> ID:
        return self.host.get_id()

    @property
    def addrs(self) -> list[str]:
        """Dialable multiaddrs including ``/p2p/<peer id>``: the ``announce`` ones if given,
        else the listen addresses with 0.0.0.0 expanded into this machine's IPv4 addresses."""
        pid = self.peer_id.to_base58()
        if self.announce:
            return [a if "/p2p/" in a else f"{a}/p2p/{pid}" for a in self.announce]
        out: list[str] = []
        for a in self.host.get_transport_addrs():
            for e in expand_unspecified(str(a)):
                if e not in out:
                    out.append(e)
        return [f"{a}/p2p/{pid}" for a in out]

    def handle(self, protocol_id: str, handler: StreamHandler, *, close: bool = True) -> None:
        """Register a stream handler, guarded (see :func:`guarded` for ``close``)."""
        self.host.set_stream_handler(protocol_id, guarded(handler, protocol_id, close=close))  # type: ignore[arg-type]

    async def start_service(self, service: Any) -> None:
        """Run a py-libp2p service (KadDHT, Pubsub, ...) until the host closes; returns once started."""
        await self._services.start(_run_service, service)

    async def connect(self, addr: str | PeerInfo, timeout: float = DEFAULT_DIAL_TIMEOUT_S) -> ID:
        """Dial a peer (``/ip4/.../tcp/.../p2p/<id>`` or a PeerInfo); PeerUnavailable on failure."""
        info = peer_info(addr) if isinstance(addr, str) else addr
        try:
            with trio.fail_after(timeout):
                await self.host.connect(info)
        except trio.TooSlowError as exc:
            raise PeerUnavailable(f"dial {info.peer_id} timed out after {timeout:.1f} s") from exc
        except Exception as exc:  # noqa: BLE001 - libp2p's dial errors have no common base
            raise PeerUnavailable(f"dial {info.peer_id} failed: {type(exc).__name__}: {exc}") from exc
        return info.peer_id


@contextlib.asynccontextmanager
async def open_host(
    listen: Sequence[str] = (DEFAULT_LISTEN,),
    *,
    data_dir: str | os.PathLike[str] | None = None,
    key_pair: KeyPair | None = None,
    announce: Sequence[str] = (),
) -> AsyncIterator[NetHost]:
    """Run a host (and whatever services are started on it); always close it on exit.

    The identity comes from ``key_pair``, else ``data_dir/identity.key``
    (created on first use), else a fresh random key. ``announce`` overrides the
    addresses we tell others (a VPS behind a provider's NAT knows its public IP).
    """
    if key_pair is None and data_dir is not None:
        key_pair = load_or_create_identity(data_dir)
    host = make_host(key_pair, listen)
    body_done = False
    try:
        async with host.run(listen_addrs=[multiaddr.Multiaddr(a) for a in listen]):
            try:
                # Our tasks stop first, then the services, then the host. Nothing
                # here cancels a scope around code that is still unwinding an
                # exception (that would replace the error with a swallowed Cancelled).
                async with trio.open_nursery() as services:
                    async with trio.open_nursery() as tasks:
                        try:
                            yield NetHost(host, tasks, services, tuple(announce))
                            body_done = True
                        finally:
                            tasks.cancel_scope.cancel()
                    services.cancel_scope.cancel()
            finally:
                # close() must run while the swarm service is still up, or the
                # connections' sockets are left to the garbage collector.
                await _close(host)
    except BaseExceptionGroup as eg:  # trio wraps the body's error in nursery groups: unwrap one
        raise _single(eg) from None
    finally:
        await _close(host)  # idempotent; covers a failure inside host.run()
    if not body_done:
        # The body was cancelled by a scope inside py-libp2p (its swarm stopped) and the
        # Cancelled was absorbed there: never let that look like a normal exit.
        raise NetworkError("the libp2p host stopped unexpectedly")


def _single(eg: BaseExceptionGroup) -> BaseException:
    """The one exception inside nested single-member groups (else the group itself)."""
    exc: BaseException = eg
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def _run_service(service: Any, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    async with background_trio_service(service):
        task_status.started()
        await trio.sleep_forever()


async def _close(host: IHost) -> None:
    with trio.move_on_after(HOST_CLOSE_TIMEOUT_S) as cs:
        cs.shield = True
        await host.close()
    if cs.cancelled_caught:
        log.warning("host %s did not close within %.0f s", host.get_id(), HOST_CLOSE_TIMEOUT_S)
