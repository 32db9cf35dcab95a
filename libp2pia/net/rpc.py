"""Request/response on ``/libp2pia/compute/1.0.0`` over streams reused per (peer, session).

Server side: :func:`compute_handler` turns a :class:`ComputeService` (the
node's worker) into a guarded stream handler. It serves requests one after
another on each stream and answers anything malformed with a typed
BAD_REQUEST error; a broken frame (oversize, bad prefix, truncated) is
answered and the stream reset, and the host keeps serving everyone else.

Client side: :class:`ComputeClient` keeps one stream per (peer, session)
(a fresh stream costs ~4 ms, a round trip on a reused one ~1.5-2 ms), bounds
every call with a timeout, and raises PeerUnavailable / ProtocolError /
RemoteError. It measures round trips per peer for replica choice.

| exception raised by the service | error code answered |
|---------------------------------|---------------------|
| RemoteError(code, ...)          | that code           |
| SessionError                    | UNKNOWN_SESSION     |
| FragmentError, MissingFragment  | UNKNOWN_SHARD       |
| ProtocolError, other Libp2piaError | BAD_REQUEST      |
| anything else (a bug)           | INTERNAL (logged)   |
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import trio
from libp2p.abc import INetStream
from libp2p.peer.id import ID

from ..errors import (
    FragmentError, Libp2piaError, MissingFragment, NetworkError, PeerUnavailable, ProtocolError, RemoteError,
    SessionError,
)
from ..limits import BAD_FRAME_LINGER_S, DEFAULT_REQUEST_TIMEOUT_S, MAX_MESSAGE_BYTES, STREAM_IDLE_TIMEOUT_S
from ..wire.compute import (
    PROTOCOL_ID, CallLike, Request, Response, RunLike, WireCall, WireResult, WireRun, WireRunResult, decode_request,
    decode_response, encode_ack, encode_error, encode_request, encode_results, encode_run_result,
)
from ..wire.tensor import DEFAULT_ACTIVATION_DTYPE
from .framed import FramedStream, open_stream, peer_name, to_peer_id
from .host import NetHost, StreamHandler, conn_kind, stream_kind, stream_peer

log = logging.getLogger(__name__)

__all__ = ["PROTOCOL_ID", "ComputeClient", "ComputeService", "ServerStats", "compute_handler"]


# ---------------------------------------------------------------- server


class ComputeService(Protocol):
    """What a worker implements; ``peer`` is the caller's peer id (base58)."""

    async def open_session(self, peer: str, session_id: str) -> None: ...

    async def compute(self, peer: str, session_id: str,
                      calls: list[WireCall]) -> list[np.ndarray | WireResult]: ...

    async def close_session(self, peer: str, session_id: str) -> None: ...

    async def run(self, peer: str, session_id: str, run: WireRun, dtype: str) -> WireRunResult:
        """Consecutive dense phases; ``dtype`` is the wire rounding to apply inside the run."""
        ...


@dataclass
class ServerStats:
    requests: int = 0
    errors: int = 0
    bad_frames: int = 0
    streams: int = 0
    active_streams: int = 0
    inflight: int = 0  # compute requests being computed now


def error_code_for(exc: BaseException) -> str:
    """The wire error code for an exception raised while serving a request."""
    if isinstance(exc, RemoteError):
        return exc.code
    if isinstance(exc, SessionError):
        return "UNKNOWN_SESSION"
    if isinstance(exc, (FragmentError, MissingFragment)):
        return "UNKNOWN_SHARD"
    if isinstance(exc, Libp2piaError):
        return "BAD_REQUEST"
    return "INTERNAL"


async def _answer(service: ComputeService, peer: str, req: Request) -> bytes:
    if req.op == "open":
        await service.open_session(peer, req.session_id)
        return encode_ack(req.id)
    if req.op == "close":
        await service.close_session(peer, req.session_id)
        return encode_ack(req.id)
    if req.op == "run":
        if req.run is None:
            raise ProtocolError("run request without its run")
        result = await service.run(peer, req.session_id, req.run, req.result_dtype)
        return encode_run_result(req.id, result, req.result_dtype)
    ys = await service.compute(peer, req.session_id, req.calls)
    if len(ys) != len(req.calls):
        raise RuntimeError(f"service returned {len(ys)} results for {len(req.calls)} calls")
    return encode_results(req.id, [(c.fragment_id, y) for c, y in zip(req.calls, ys)], req.result_dtype)


def compute_handler(
    service: ComputeService,
    stats: ServerStats | None = None,
    *,
    idle_timeout: float = STREAM_IDLE_TIMEOUT_S,
    write_timeout: float = DEFAULT_REQUEST_TIMEOUT_S,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_inflight: int | None = None,
) -> StreamHandler:
    """A stream handler serving ``service`` (register it with ``NetHost.handle(PROTOCOL_ID, ...)``).

    With ``max_inflight``, a compute request arriving while that many are being
    computed (over all streams) is answered OVERLOADED at once, so the client
    can use another replica instead of queueing behind a saturated worker.
    """
    st = stats if stats is not None else ServerStats()

    async def handler(stream: INetStream) -> None:
        peer = stream_peer(stream)
        fs = FramedStream(stream, max_bytes)
        st.streams += 1
        st.active_streams += 1
        try:
            while True:
                try:
                    frame = await fs.recv(idle_timeout)
                except ProtocolError as exc:  # the framing itself is broken: answer, then reset
                    st.bad_frames += 1
                    log.info("compute: bad frame from %s: %s", peer[:16], exc)
                    try:
                        await fs.send(encode_error(0, "BAD_REQUEST", str(exc)), write_timeout)
                    finally:
                        await fs.close_after_error(BAD_FRAME_LINGER_S)
                    return
                except PeerUnavailable:
                    return  # idle timeout or the client went away
                if frame is None:
                    return  # the client closed its side: done
                st.requests += 1
                try:
                    req = decode_request(frame)
                except ProtocolError as exc:  # a well-framed but malformed request: keep the stream
                    st.errors += 1
                    await fs.send(encode_error(0, "BAD_REQUEST", str(exc)), write_timeout)
                    continue
                work = req.op in ("compute", "run")
                busy = max_inflight is not None and work and st.inflight >= max_inflight
                if busy:
                    st.errors += 1
                    await fs.send(encode_error(req.id, "OVERLOADED", f"{st.inflight} requests in progress"),
                                  write_timeout)
                    continue
                st.inflight += work
                try:
                    answer = await _answer(service, peer, req)
                except Exception as exc:  # noqa: BLE001 - every failure becomes a typed answer
                    st.errors += 1
                    code = error_code_for(exc)
                    if code == "INTERNAL":
                        log.exception("compute: internal error serving %s", peer[:16])
                    answer = encode_error(req.id, code, str(exc), getattr(exc, "fragment", ""))
                finally:
                    st.inflight -= work
                await fs.send(answer, write_timeout)
        finally:
            st.active_streams -= 1
            await fs.close()

    return handler


# ---------------------------------------------------------------- client


@dataclass
class _Channel:
    stream: FramedStream
    lock: trio.Lock = field(default_factory=trio.Lock)
    #: a stream's connection never changes kind: asked once, not per request (it renders multiaddrs)
    relayed: bool = False


class ComputeClient:
    """Calls workers over streams reused per (peer, session)."""

    #: weight of the newest sample in the per-peer round-trip average
    RTT_ALPHA = 0.2

    def __init__(self, net: NetHost, *, timeout: float = DEFAULT_REQUEST_TIMEOUT_S,
                 max_bytes: int = MAX_MESSAGE_BYTES,
                 observer: Callable[[str, bool], None] | None = None) -> None:
        """``observer(peer_id, reachable)`` hears every request's outcome: False when the
        peer could not be reached or answered garbage (e.g. ``Heartbeats.observe``)."""
        self.net = net
        self.observer = observer
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._channels: dict[tuple[ID, str], _Channel] = {}
        self._ids = itertools.count(1)
        self._rtt: dict[ID, float] = {}
        self.requests = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    def rtt(self, peer: ID | str) -> float | None:
        """Smoothed request round trip to ``peer`` in seconds (None before the first call)."""
        return self._rtt.get(to_peer_id(peer))

    def _has_direct(self, pid: ID) -> bool:
        return any(conn_kind(c) == "direct" for c in self.net.host.get_network().get_connections(pid))

    def _observe(self, pid: ID, ok: bool) -> None:
        if self.observer is not None:
            self.observer(peer_name(pid), ok)

    async def _channel(self, pid: ID, session_id: str) -> _Channel:
        ch = self._channels.get((pid, session_id))
        if ch is not None and ch.relayed and not ch.lock.locked() and self._has_direct(pid):
            # DCUtR made a direct link since this stream was opened: move the session's traffic
            # there (the worker keys sessions by id, not by stream). New streams prefer direct links.
            await self._drop((pid, session_id), reset=False)
            ch = None
        if ch is None:
            stream = await open_stream(self.net.host, pid, [PROTOCOL_ID])
            ch = self._channels.setdefault((pid, session_id), _Channel(FramedStream(stream, self.max_bytes),
                                                                        relayed=stream_kind(stream) == "relayed"))
            if ch.stream.stream is not stream:  # lost a race with a concurrent opener
                await FramedStream(stream).close()
        return ch

    async def _drop(self, key: tuple[ID, str], reset: bool) -> None:
        ch = self._channels.pop(key, None)
        if ch is not None:
            await (ch.stream.reset() if reset else ch.stream.close())

    async def request(self, peer: ID | str, session_id: str, payload_for_id: Callable[[int], bytes],
                      timeout: float | None = None) -> Response:
        """Send one request (built by ``payload_for_id(req_id)``) and return the decoded response.

        Any failure drops the stream (the next call opens a fresh one), so a
        late answer can never be mistaken for the answer to a later request.
        """
        pid = to_peer_id(peer)
        key = (pid, session_id)
        t = self.timeout if timeout is None else timeout
        try:
            ch = await self._channel(pid, session_id)
        except PeerUnavailable:
            self._observe(pid, False)
            raise
        async with ch.lock:
            if self._channels.get(key) is not ch:  # dropped while we waited for the lock
                return await self.request(pid, session_id, payload_for_id, timeout)
            req_id = next(self._ids)
            payload = payload_for_id(req_id)
            t0 = time.perf_counter()
            try:
                with trio.fail_after(t):
                    await ch.stream.send(payload, t)
                    frame = await ch.stream.recv(t)
                if frame is None:
                    raise PeerUnavailable(f"{pid.to_base58()[:16]} closed the stream")
                resp = decode_response(frame)
                if resp.id != req_id and not (resp.id == 0 and resp.op == "error"):  # 0: request undecodable
                    raise ProtocolError(f"response id {resp.id} for request {req_id}")
            except trio.TooSlowError as exc:
                await self._drop(key, reset=True)
                self._observe(pid, False)
                raise PeerUnavailable(f"{pid.to_base58()[:16]}: no answer within {t:.1f} s") from exc
            except (PeerUnavailable, ProtocolError):
                await self._drop(key, reset=True)
                self._observe(pid, False)
                raise
            rtt = time.perf_counter() - t0
            old = self._rtt.get(pid)
            self._rtt[pid] = rtt if old is None else old + self.RTT_ALPHA * (rtt - old)
            self.requests += 1
            self.bytes_sent += len(payload)
            self.bytes_received += len(frame)
        self._observe(pid, True)  # a typed error is still an answer: the peer is alive
        if resp.op == "error":
            raise resp.error.to_exception(pid.to_base58())
        return resp

    async def open_session(self, peer: ID | str, session_id: str, timeout: float | None = None) -> None:
        await self.request(peer, session_id, lambda i: encode_request(i, session_id, "open"), timeout)

    async def close_session(self, peer: ID | str, session_id: str, timeout: float | None = None) -> None:
        """Ask the worker to drop the session, then close the stream (errors are ignored: best effort)."""
        pid = to_peer_id(peer)
        try:
            await self.request(pid, session_id, lambda i: encode_request(i, session_id, "close"), timeout)
        except (PeerUnavailable, ProtocolError, RemoteError) as exc:
            log.debug("close_session %s on %s: %s", session_id, pid.to_base58()[:16], exc)
        await self._drop((pid, session_id), reset=False)

    async def compute(self, peer: ID | str, session_id: str, calls: Sequence[CallLike] | Iterable[CallLike],
                      **options: Any) -> list[np.ndarray]:
        """compute_results() (same keyword options) without the ids: the float32 results alone."""
        return [r.y for r in await self.compute_results(peer, session_id, calls, **options)]

    async def compute_results(
        self,
        peer: ID | str,
        session_id: str,
        calls: Sequence[CallLike] | Iterable[CallLike],
        *,
        activation_dtype: str = DEFAULT_ACTIVATION_DTYPE,
        result_dtype: str = DEFAULT_ACTIVATION_DTYPE,
        timeout: float | None = None,
    ) -> list[WireResult]:
        """All of one phase's calls for ``peer`` in one message; results (float32 ``y``, and the
        ``ids`` of top-k logits) in call order."""
        calls = list(calls)
        resp = await self.request(
            peer, session_id,
            lambda i: encode_request(i, session_id, "compute", calls, activation_dtype=activation_dtype,
                                     result_dtype=result_dtype),
            timeout,
        )
        if resp.op != "compute" or len(resp.results) != len(calls):
            raise ProtocolError(f"expected {len(calls)} results, got {resp.op} with {len(resp.results)}")
        for c, (fid, _) in zip(calls, resp.results):
            if fid != c.fragment_id:
                raise ProtocolError(f"result for {fid[:12]} where {c.fragment_id[:12]} was asked")
        return [r for _, r in resp.results]

    async def run(self, peer: ID | str, session_id: str, run: RunLike, *,
                  activation_dtype: str = DEFAULT_ACTIVATION_DTYPE, timeout: float | None = None) -> WireRunResult:
        """Consecutive dense phases held by ``peer`` in one message: h after them (and the attention
        inputs, asked for). ``activation_dtype`` is the rounding the peer applies inside the run."""
        resp = await self.request(
            peer, session_id,
            lambda i: encode_request(i, session_id, "run", run=run, activation_dtype=activation_dtype), timeout)
        if resp.op != "run" or resp.run is None:
            raise ProtocolError(f"expected a run result, got {resp.op}")
        n_attn = sum(ph.kind == "attention" for ph in run.phases) if run.attention_inputs else 0
        if resp.run.h.shape != np.shape(run.h) or len(resp.run.attention_inputs) != n_attn:
            raise ProtocolError(f"run result h {list(resp.run.h.shape)} with {len(resp.run.attention_inputs)} "
                                f"attention inputs for h {list(np.shape(run.h))} and {n_attn} attention phases")
        return resp.run

    async def fan_out(
        self,
        session_id: str,
        per_peer: Mapping[ID | str, Sequence[CallLike]],
        *,
        activation_dtype: str = DEFAULT_ACTIVATION_DTYPE,
        result_dtype: str = DEFAULT_ACTIVATION_DTYPE,
        timeout: float | None = None,
    ) -> dict[str, list[np.ndarray] | NetworkError]:
        """One phase: every peer's calls in one message, all peers in parallel.

        Returns, per peer id (base58), its results in call order or the
        NetworkError it failed with (PeerUnavailable / ProtocolError /
        RemoteError): the caller decides where to retry. Never raises those.
        """
        out: dict[str, list[np.ndarray] | NetworkError] = {}

        async def one(peer: ID | str, calls: Sequence[CallLike]) -> None:
            pid = to_peer_id(peer).to_base58()
            try:
                out[pid] = await self.compute(peer, session_id, calls, activation_dtype=activation_dtype,
                                              result_dtype=result_dtype, timeout=timeout)
            except NetworkError as exc:
                out[pid] = exc

        async with trio.open_nursery() as nursery:
            for peer, calls in per_peer.items():
                nursery.start_soon(one, peer, calls)
        return out

    async def aclose(self) -> None:
        """Close every stream (does not close sessions on the workers)."""
        for key in list(self._channels):
            await self._drop(key, reset=False)
