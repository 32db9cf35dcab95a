"""Messages of ``/libp2pia/compute/1.0.0``: pure encode/decode with validation.

A client sends ``Request`` frames on a stream it keeps per (peer, session);
the worker answers each with one ``Response`` frame carrying the same id.

| request body | response body                  | meaning                              |
|--------------|--------------------------------|--------------------------------------|
| open         | ack / error                    | create per-session state (KV caches) |
| compute      | compute (one result per call) / error | one phase's calls for this peer |
| close        | ack / error                    | drop the session's state             |
| run          | run (h after the phases) / error | consecutive dense phases in one go  |

Decoders raise ProtocolError for anything malformed; the engine-facing
dataclasses here mirror ``libp2pia.engine``'s ShardCall/ShardResult field by
field, so the node layer converts between them by attribute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Literal, Protocol

import numpy as np
from google.protobuf.message import DecodeError

from ..errors import ProtocolError, RemoteError
from ..limits import (
    FRAGMENT_ID_CHARS, MAX_CALLS_PER_REQUEST, MAX_LOGITS_TOP_K, MAX_RUN_PHASES, MAX_SESSION_ID_CHARS,
)
from . import libp2pia_pb2 as pb
from .tensor import DEFAULT_ACTIVATION_DTYPE, DTYPE_NAMES, FLOAT_DTYPES, decode_tensor, dtype_code, encode_tensor

PROTOCOL_ID = "/libp2pia/compute/1.0.0"

KINDS: dict[str, int] = {
    "embed": pb.ShardCall.EMBED,
    "attention": pb.ShardCall.ATTENTION,
    "ffn": pb.ShardCall.FFN,
    "logits": pb.ShardCall.LOGITS,
}
KIND_NAMES = {v: k for k, v in KINDS.items()}

ERROR_CODES: dict[str, int] = {
    "UNKNOWN_SHARD": pb.Error.UNKNOWN_SHARD,
    "UNKNOWN_SESSION": pb.Error.UNKNOWN_SESSION,
    "OVERLOADED": pb.Error.OVERLOADED,
    "BAD_REQUEST": pb.Error.BAD_REQUEST,
    "INTERNAL": pb.Error.INTERNAL,
}
ERROR_NAMES = {v: k for k, v in ERROR_CODES.items()}

_HEX_ID = re.compile(rf"[0-9a-f]{{{FRAGMENT_ID_CHARS}}}")
_SESSION_ID = re.compile(rf"[A-Za-z0-9_.:-]{{1,{MAX_SESSION_ID_CHARS}}}")

CallKind = Literal["embed", "attention", "ffn", "logits"]
Op = Literal["open", "compute", "close", "run"]
#: the phase kinds a run may hold (dense layers: an MoE FFN phase needs the client's router)
RUN_KINDS = ("attention", "ffn")


class CallLike(Protocol):
    """What ``encode_request`` needs of a call (engine.ShardCall satisfies it)."""

    fragment_id: str
    kind: str
    layer: int | None
    positions: np.ndarray
    x: np.ndarray
    weight: float | None


@dataclass
class WireCall:
    """A decoded shard call (same fields as engine.ShardCall)."""

    fragment_id: str
    kind: CallKind
    layer: int | None  # None for embed/logits
    positions: np.ndarray  # int32 [n]
    x: np.ndarray  # float32 [n, d], or int32 [n] token ids for embed
    weight: float | None = None
    top_k: int = 0  # logits only: 0 = every logit, k = the k best per row (with their ids)
    embeddings: bool = False  # top-k logits only: also the candidates' embedding rows


@dataclass
class WireResult:
    """One call's answer: y float32, and for a top-k logits call the int32 ids of y's columns
    (and, when asked, their unscaled embedding rows, float32 [ids.size, d] in ids' order)."""

    y: np.ndarray
    ids: np.ndarray | None = None
    embeddings: np.ndarray | None = None


@dataclass
class WirePhase:
    """One phase of a run (same fields as engine.RunPhase)."""

    kind: CallKind  # "attention" or "ffn"
    layer: int
    fragment_ids: list[str]


@dataclass
class WireRun:
    """A decoded run request (same fields as engine.RunCall)."""

    phases: list[WirePhase]
    positions: np.ndarray  # int32 [n]
    h: np.ndarray  # float32 [n, d] residual stream in
    attention_inputs: bool = True


@dataclass
class WireRunResult:
    """A run's answer (same fields as engine.RunResult)."""

    h: np.ndarray  # float32 [n, d]
    attention_inputs: list[np.ndarray] = field(default_factory=list)  # [n, d] each


class RunLike(Protocol):
    """What ``encode_request`` needs of a run (engine.RunCall satisfies it)."""

    phases: list  # of objects with kind, layer, fragment_ids
    positions: np.ndarray
    h: np.ndarray
    attention_inputs: bool


@dataclass
class Request:
    id: int
    session_id: str
    op: Op
    calls: list[WireCall] = field(default_factory=list)
    result_dtype: str = DEFAULT_ACTIVATION_DTYPE  # compute: the answers' dtype; run: the rounding dtype
    run: WireRun | None = None


@dataclass
class WireError:
    code: str  # one of ERROR_CODES
    message: str
    fragment_id: str = ""

    def to_exception(self, peer: str | None = None) -> RemoteError:
        msg = f"{self.message} (fragment {self.fragment_id})" if self.fragment_id else self.message
        return RemoteError(self.code, msg, peer)


@dataclass
class Response:
    id: int
    op: Literal["compute", "ack", "error", "run"]
    results: list[tuple[str, WireResult]] = field(default_factory=list)  # (fragment_id, result)
    error: WireError | None = None
    run: WireRunResult | None = None


# ---------------------------------------------------------------- validation helpers


def check_fragment_id(fid: str) -> str:
    if not _HEX_ID.fullmatch(fid):
        raise ProtocolError(f"fragment id {fid[:80]!r} is not {FRAGMENT_ID_CHARS} lowercase hex characters")
    return fid


def check_session_id(sid: str) -> str:
    if not _SESSION_ID.fullmatch(sid):
        raise ProtocolError(f"session id {sid[:80]!r} is not 1-{MAX_SESSION_ID_CHARS} of [A-Za-z0-9_.:-]")
    return sid


def parse_pb(cls: type, data: bytes, what: str):  # noqa: ANN201 - returns a `cls` instance
    """Parse protobuf bytes into `cls`; ProtocolError if they do not parse."""
    msg = cls()
    try:
        msg.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:  # protobuf's C/upb errors vary
        raise ProtocolError(f"malformed {what}: {exc}") from exc
    return msg


# ---------------------------------------------------------------- requests


def encode_request(
    req_id: int,
    session_id: str,
    op: Op,
    calls: Iterable[CallLike] = (),
    *,
    activation_dtype: str = DEFAULT_ACTIVATION_DTYPE,
    result_dtype: str = DEFAULT_ACTIVATION_DTYPE,
    run: RunLike | None = None,
) -> bytes:
    """Serialize one request (calls only for op="compute", ``run`` only for op="run": its h travels
    in float32, ``activation_dtype`` is the rounding the peer applies inside the run)."""
    msg = pb.Request(id=req_id, session_id=check_session_id(session_id))
    if op == "run":
        if run is None:
            raise ProtocolError("a run request needs its run")
        pr = msg.run
        for ph in run.phases:
            if ph.kind not in RUN_KINDS:
                raise ProtocolError(f"a run cannot hold a {ph.kind!r} phase")
            pr.phases.add(kind=KINDS[ph.kind], layer=int(ph.layer), fragment_ids=list(ph.fragment_ids))
        pr.positions.extend(np.asarray(run.positions, dtype=np.int64).ravel().tolist())
        pr.h.CopyFrom(encode_tensor(run.h, "float32"))
        pr.attention_inputs = bool(run.attention_inputs)
        pr.activation_dtype = dtype_code(activation_dtype)
    elif op == "open":
        msg.open.SetInParent()
    elif op == "close":
        msg.close.SetInParent()
    elif op == "compute":
        msg.compute.result_dtype = dtype_code(result_dtype)
        for c in calls:
            kind = KINDS.get(c.kind)
            if kind is None:
                raise ProtocolError(f"unknown shard call kind {c.kind!r}")
            pc = msg.compute.calls.add(fragment_id=c.fragment_id, kind=kind)
            if c.layer is not None:
                pc.layer = int(c.layer)
            pc.positions.extend(np.asarray(c.positions, dtype=np.int64).ravel().tolist())
            pc.x.CopyFrom(encode_tensor(c.x, "int32" if c.kind == "embed" else activation_dtype))
            if c.weight is not None:
                pc.weight = float(c.weight)
            top_k = int(getattr(c, "top_k", 0) or 0)
            if top_k:
                pc.top_k = top_k
                pc.embeddings = bool(getattr(c, "embeddings", False))
    else:
        raise ProtocolError(f"unknown request op {op!r}")
    return msg.SerializeToString()


def _decode_call(pc: pb.ShardCall) -> WireCall:
    fid = check_fragment_id(pc.fragment_id)
    kind = KIND_NAMES.get(pc.kind)
    if kind is None:
        raise ProtocolError(f"shard call for {fid[:12]} has no valid kind ({pc.kind})")
    if not pc.HasField("x"):
        raise ProtocolError(f"shard call for {fid[:12]} has no input tensor")
    positions = _positions(pc.positions)
    if kind == "embed":
        x = decode_tensor(pc.x, allowed=("int32",))
        if x.ndim != 1:
            raise ProtocolError(f"embed call wants token ids [n], got shape {list(x.shape)}")
    else:
        x = decode_tensor(pc.x, allowed=FLOAT_DTYPES)
        if x.ndim != 2:
            raise ProtocolError(f"{kind} call wants activations [n, d], got shape {list(x.shape)}")
    if x.shape[0] != positions.size:
        raise ProtocolError(f"{x.shape[0]} input rows for {positions.size} positions")
    weight = pc.weight if pc.HasField("weight") else None
    if weight is not None and not np.isfinite(weight):
        raise ProtocolError("non-finite expert weight")
    layer = int(pc.layer) if pc.HasField("layer") else None
    if pc.top_k and (kind != "logits" or pc.top_k > MAX_LOGITS_TOP_K):
        raise ProtocolError(f"top_k {pc.top_k} on a {kind} call (only logits calls, at most {MAX_LOGITS_TOP_K})")
    if pc.embeddings and not pc.top_k:
        raise ProtocolError("embeddings asked without top_k (only the candidates' rows can be sent)")
    return WireCall(fid, kind, layer, positions, x, weight, int(pc.top_k), bool(pc.embeddings))


def _positions(values: Iterable[int]) -> np.ndarray:
    positions = np.asarray(values, dtype=np.int32)
    if positions.size and positions.min() < 0:
        raise ProtocolError("negative token position")
    return positions


def _float_dtype(code: int) -> str:
    name = DTYPE_NAMES.get(code or pb.Tensor.FLOAT16)
    if name not in FLOAT_DTYPES:
        raise ProtocolError(f"dtype code {code} is not a float dtype")
    return name


def _decode_run(pr: pb.RunRequest) -> WireRun:
    if not pr.phases:
        raise ProtocolError("run request without phases")
    if len(pr.phases) > MAX_RUN_PHASES:
        raise ProtocolError(f"{len(pr.phases)} phases in one run (limit {MAX_RUN_PHASES})")
    if sum(len(ph.fragment_ids) for ph in pr.phases) > MAX_CALLS_PER_REQUEST:
        raise ProtocolError(f"more than {MAX_CALLS_PER_REQUEST} shards in one run")
    phases = []
    for ph in pr.phases:
        kind = KIND_NAMES.get(ph.kind)
        if kind not in RUN_KINDS:
            raise ProtocolError(f"run phase of kind {kind or ph.kind!r} (only {' and '.join(RUN_KINDS)})")
        if not ph.fragment_ids:
            raise ProtocolError(f"{kind} phase of layer {ph.layer} without fragments")
        phases.append(WirePhase(kind, int(ph.layer), [check_fragment_id(f) for f in ph.fragment_ids]))
    if not pr.HasField("h"):
        raise ProtocolError("run request without its residual stream")
    h = decode_tensor(pr.h, allowed=FLOAT_DTYPES)
    positions = _positions(pr.positions)
    if h.ndim != 2 or h.shape[0] != positions.size:
        raise ProtocolError(f"residual stream of shape {list(h.shape)} for {positions.size} positions")
    return WireRun(phases, positions, h, bool(pr.attention_inputs))


def decode_request(data: bytes) -> Request:
    """Parse and validate one request frame; ProtocolError on anything malformed."""
    msg = parse_pb(pb.Request, data, "request")
    op = msg.WhichOneof("body")
    if op is None:
        raise ProtocolError("request without a body")
    sid = check_session_id(msg.session_id)
    if op == "run":
        return Request(msg.id, sid, "run", result_dtype=_float_dtype(msg.run.activation_dtype), run=_decode_run(msg.run))
    if op != "compute":
        return Request(msg.id, sid, op)
    if not msg.compute.calls:
        raise ProtocolError("compute request without calls")
    if len(msg.compute.calls) > MAX_CALLS_PER_REQUEST:
        raise ProtocolError(f"{len(msg.compute.calls)} calls in one request (limit {MAX_CALLS_PER_REQUEST})")
    result_dtype = _float_dtype(msg.compute.result_dtype)
    return Request(msg.id, sid, "compute", [_decode_call(pc) for pc in msg.compute.calls], result_dtype)


# ---------------------------------------------------------------- responses


def encode_results(req_id: int, results: Iterable[tuple[str, WireResult | np.ndarray]], dtype: str) -> bytes:
    """One compute answer; a bare array stands for WireResult(y). Top-k logits keep float32
    values whatever ``dtype`` is (they are few, and a greedy pick must not flip on rounding)."""
    msg = pb.Response(id=req_id)
    msg.compute.SetInParent()
    for fid, r in results:
        res = r if isinstance(r, WireResult) else WireResult(r)
        pr = msg.compute.results.add(fragment_id=fid)
        pr.y.CopyFrom(encode_tensor(np.asarray(res.y, dtype=np.float32), dtype if res.ids is None else "float32"))
        if res.ids is not None:
            pr.ids.CopyFrom(encode_tensor(np.asarray(res.ids, dtype=np.int32), "int32"))
        if res.embeddings is not None:
            pr.embeddings.CopyFrom(encode_tensor(np.asarray(res.embeddings, dtype=np.float32), dtype))
    return msg.SerializeToString()


def encode_run_result(req_id: int, result: WireRunResult, dtype: str) -> bytes:
    """A run's answer: h in float32 (the residual stream keeps full precision), the attention inputs
    in ``dtype`` (they were rounded to it inside the run, so this loses nothing)."""
    msg = pb.Response(id=req_id)
    msg.run.h.CopyFrom(encode_tensor(np.asarray(result.h, np.float32), "float32"))
    for x in result.attention_inputs:
        msg.run.attention_inputs.add().CopyFrom(encode_tensor(np.asarray(x, np.float32), dtype))
    return msg.SerializeToString()


def encode_ack(req_id: int) -> bytes:
    msg = pb.Response(id=req_id)
    msg.ack.SetInParent()
    return msg.SerializeToString()


def encode_error(req_id: int, code: str, message: str, fragment_id: str = "") -> bytes:
    if code not in ERROR_CODES:
        raise ValueError(f"unknown error code {code!r}")
    msg = pb.Response(id=req_id)
    msg.error.code = ERROR_CODES[code]
    msg.error.message = message[:1000]
    msg.error.fragment_id = fragment_id
    return msg.SerializeToString()


def decode_response(data: bytes) -> Response:
    """Parse and validate one response frame; ProtocolError on anything malformed."""
    msg = parse_pb(pb.Response, data, "response")
    op = msg.WhichOneof("body")
    if op is None:
        raise ProtocolError("response without a body")
    if op == "ack":
        return Response(msg.id, "ack")
    if op == "run":
        if not msg.run.HasField("h"):
            raise ProtocolError("run result without its residual stream")
        h = decode_tensor(msg.run.h, allowed=FLOAT_DTYPES)
        if h.ndim != 2:
            raise ProtocolError(f"run result of shape {list(h.shape)} (wants [n, d])")
        inputs = [decode_tensor(t, allowed=FLOAT_DTYPES) for t in msg.run.attention_inputs]
        if any(x.shape != h.shape for x in inputs):
            raise ProtocolError(f"run attention inputs of shapes {[list(x.shape) for x in inputs]} for h {list(h.shape)}")
        return Response(msg.id, "run", run=WireRunResult(h, inputs))
    if op == "error":
        code = ERROR_NAMES.get(msg.error.code)
        if code is None:
            raise ProtocolError(f"error response with unknown code {msg.error.code}")
        return Response(msg.id, "error", error=WireError(code, msg.error.message, msg.error.fragment_id))
    results = []
    for r in msg.compute.results:
        if not r.HasField("y"):
            raise ProtocolError("result without a tensor")
        y = decode_tensor(r.y, allowed=FLOAT_DTYPES)
        ids = None
        if r.HasField("ids"):
            ids = decode_tensor(r.ids, allowed=("int32",))
            if ids.shape != y.shape or ids.ndim != 2:
                raise ProtocolError(f"result ids of shape {list(ids.shape)} for values of shape {list(y.shape)}")
            if ids.size and ids.min() < 0:
                raise ProtocolError("negative vocabulary id in a result")
        emb = None
        if r.HasField("embeddings"):
            emb = decode_tensor(r.embeddings, allowed=FLOAT_DTYPES)
            if ids is None or emb.ndim != 2 or emb.shape[0] != ids.size:
                raise ProtocolError(f"embedding rows of shape {list(emb.shape)} for "
                                    f"{'no' if ids is None else ids.size} candidate ids")
        results.append((check_fragment_id(r.fragment_id), WireResult(y, ids, emb)))
    return Response(msg.id, "compute", results)
