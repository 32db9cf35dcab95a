"""Wire format: framing, tensors and every decoder, driven by hypothesis.

Every decoder must either return a valid message or raise ProtocolError, never
anything else, for any input: garbage, truncations, oversize frames.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from libp2pia.errors import ProtocolError
from libp2pia.limits import MAX_ANNOUNCE_BYTES, MAX_LOGITS_TOP_K, MAX_RUN_PHASES, MAX_VARINT_PREFIX_BYTES
from libp2pia.wire import libp2pia_pb2 as pb
from libp2pia.wire.announce import Announcement, decode_announcement, encode_announcement
from libp2pia.wire.compute import (
    ERROR_CODES, WireCall, WirePhase, WireResult, WireRun, WireRunResult, decode_request, decode_response, encode_ack,
    encode_error, encode_request, encode_results, encode_run_result,
)
from libp2pia.wire.fragment import (
    FragmentChunk, FragmentRequest, decode_fragment_chunk, decode_fragment_request, encode_fragment_chunk,
    encode_fragment_request,
)
from libp2pia.wire.framing import FrameDecoder, decode_varint, encode_frame, encode_varint
from libp2pia.wire.manifest import canonical_json, decode_manifest_record, encode_manifest_record, manifest_model_id
from libp2pia.wire.tensor import decode_tensor, encode_tensor, wire_round

DECODERS = [
    decode_request, decode_response, decode_announcement, decode_fragment_request, decode_fragment_chunk,
    decode_manifest_record,
]
hex_ids = st.text("0123456789abcdef", min_size=64, max_size=64)
session_ids = st.from_regex(r"[A-Za-z0-9_.:-]{1,40}", fullmatch=True)
finite32 = st.floats(-1e4, 1e4, width=32)


# ---------------------------------------------------------------- framing


@given(st.integers(0, 2**60))
def test_varint_round_trip(n: int) -> None:
    enc = encode_varint(n)
    if n <= 2**34:
        assert decode_varint(enc, 2**35) == (n, len(enc))
    else:
        with pytest.raises(ProtocolError):
            decode_varint(enc, 2**34)


@given(st.lists(st.binary(max_size=300), max_size=8), st.data())
def test_frames_round_trip_split_anywhere(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(p, 1000) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    dec, out, prev = FrameDecoder(1000), [], 0
    for c in [*cuts, len(stream)]:
        out += dec.feed(stream[prev:c])
        prev = c
    assert out == payloads
    dec.check_eof()


@given(st.binary(min_size=1, max_size=300), st.data())
def test_truncated_frame_is_reported_at_eof(payload: bytes, data: st.DataObject) -> None:
    frame = encode_frame(payload, 1000)
    cut = data.draw(st.integers(1, len(frame) - 1))
    dec = FrameDecoder(1000)
    assert dec.feed(frame[:cut]) == []
    with pytest.raises(ProtocolError, match="ended inside a frame"):
        dec.check_eof()


@given(st.integers(101, 2**40))
def test_oversize_is_refused_from_the_prefix_alone(n: int) -> None:
    dec = FrameDecoder(100)
    with pytest.raises(ProtocolError, match="exceeds|longer"):
        dec.feed(encode_varint(n))  # no body sent at all
    with pytest.raises(ProtocolError):  # and the decoder stays poisoned
        dec.feed(b"\x00")


def test_endless_varint_is_refused() -> None:
    with pytest.raises(ProtocolError):
        FrameDecoder(2**40).feed(b"\x80" * (MAX_VARINT_PREFIX_BYTES + 1))


def test_encoder_refuses_what_the_decoder_would_refuse() -> None:
    with pytest.raises(ProtocolError):
        encode_frame(b"x" * 101, 100)


@given(st.binary(max_size=2000))
def test_frame_decoder_on_garbage(blob: bytes) -> None:
    dec = FrameDecoder(500)
    try:
        frames = dec.feed(blob)
    except ProtocolError:
        return
    assert all(len(f) <= 500 for f in frames)


# ---------------------------------------------------------------- tensors


@given(hnp.arrays(np.float32, hnp.array_shapes(max_dims=3, max_side=8), elements=finite32))
def test_tensor_float32_is_exact(a: np.ndarray) -> None:
    back = decode_tensor(pb.Tensor.FromString(encode_tensor(a, "float32").SerializeToString()))
    assert back.dtype == np.float32 and back.shape == a.shape
    np.testing.assert_array_equal(back, a)


@given(hnp.arrays(np.float32, hnp.array_shapes(max_dims=2, max_side=8), elements=finite32))
def test_tensor_float16_and_bfloat16_round(a: np.ndarray) -> None:
    h = decode_tensor(encode_tensor(a))  # float16 is the default
    np.testing.assert_array_equal(h, a.astype(np.float16).astype(np.float32))
    b = decode_tensor(encode_tensor(a, "bfloat16"))
    np.testing.assert_allclose(b, a, rtol=2**-8, atol=2**-126)  # atol: bf16 subnormals


@given(hnp.arrays(np.float32, hnp.array_shapes(max_dims=2, max_side=8),
                  elements=st.floats(-1e6, 1e6, width=32) | st.just(np.inf) | st.just(np.nan)),
       st.sampled_from(["float32", "float16", "bfloat16"]))
def test_wire_round_is_an_encode_decode_round_trip(a: np.ndarray, dtype: str) -> None:
    """What a run computes with in place of a tensor that did not travel: the bytes that would have."""
    np.testing.assert_array_equal(wire_round(a, dtype), decode_tensor(encode_tensor(a, dtype)))
    np.testing.assert_array_equal(wire_round(wire_round(a, dtype), dtype), wire_round(a, dtype))   # idempotent


def test_bfloat16_rounds_to_nearest_even_and_keeps_nan() -> None:
    # 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to even (1.0)
    a = np.array([1 + 2**-8, 1 + 3 * 2**-8, np.nan, np.inf, -0.0], dtype=np.float32)
    b = decode_tensor(encode_tensor(a, "bfloat16"))
    assert b[0] == 1.0 and b[1] == 1 + 2**-6 and np.isnan(b[2]) and b[3] == np.inf


def test_float16_overflow_falls_back_to_float32() -> None:
    a = np.array([[1.0, 1e6]], dtype=np.float32)
    t = encode_tensor(a, "float16")
    assert t.dtype == pb.Tensor.FLOAT32
    np.testing.assert_array_equal(decode_tensor(t), a)


@given(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=20))
def test_tensor_int32(ids: list[int]) -> None:
    a = np.array(ids, dtype=np.int32)
    back = decode_tensor(encode_tensor(a))
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, a)


@given(st.integers(0, 6), st.lists(st.integers(0, 2**40), max_size=6), st.binary(max_size=64))
def test_tensor_decoder_validates(dtype: int, shape: list[int], data: bytes) -> None:
    msg = pb.Tensor(dtype=dtype, shape=shape, data=data)
    try:
        out = decode_tensor(msg)
    except ProtocolError:
        return
    assert out.nbytes // out.itemsize * {1: 4, 2: 2, 3: 2, 4: 4}[dtype] == len(data)
    assert list(out.shape) == shape


# ---------------------------------------------------------------- compute messages

calls = st.builds(
    lambda fid, kind, layer, n, d, w, seed: WireCall(
        fid, kind, layer, np.arange(n, dtype=np.int32),
        np.arange(n, dtype=np.int32) if kind == "embed"
        else np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32),
        w,
    ),
    hex_ids, st.sampled_from(["embed", "attention", "ffn", "logits"]), st.none() | st.integers(0, 200),
    st.integers(0, 4), st.integers(1, 16), st.none() | st.floats(0, 1, width=32), st.integers(0, 99),
)


@given(st.integers(0, 2**64 - 1), session_ids, st.lists(calls, min_size=1, max_size=4),
       st.sampled_from(["float32", "float16", "bfloat16"]))
def test_request_round_trip(req_id: int, sid: str, cs: list[WireCall], rdt: str) -> None:
    req = decode_request(encode_request(req_id, sid, "compute", cs, activation_dtype="float32", result_dtype=rdt))
    assert (req.id, req.session_id, req.op, req.result_dtype) == (req_id, sid, "compute", rdt)
    for a, b in zip(cs, req.calls, strict=True):
        assert (a.fragment_id, a.kind, a.layer, a.weight) == (b.fragment_id, b.kind, b.layer, b.weight)
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.x, b.x)


@given(session_ids, st.sampled_from(["open", "close"]))
def test_session_ops_round_trip(sid: str, op: str) -> None:
    req = decode_request(encode_request(1, sid, op))
    assert (req.session_id, req.op, req.calls) == (sid, op, [])


@given(st.integers(0, 2**64 - 1), st.lists(st.tuples(hex_ids, hnp.arrays(np.float32, (2, 3), elements=finite32)), max_size=3))
def test_response_round_trip(req_id: int, results: list) -> None:
    r = decode_response(encode_results(req_id, results, "float32"))
    assert r.id == req_id and r.op == "compute"
    for (fa, ya), (fb, yb) in zip(results, r.results, strict=True):
        assert fa == fb and yb.ids is None
        np.testing.assert_array_equal(ya, yb.y)
    assert decode_response(encode_ack(req_id)).op == "ack"


@given(hex_ids, hnp.arrays(np.float32, (2, 3), elements=finite32),
       hnp.arrays(np.int32, (2, 3), elements=st.integers(0, 2**31 - 1)), st.integers(1, MAX_LOGITS_TOP_K))
def test_top_k_logits_round_trip(fid: str, y: np.ndarray, ids: np.ndarray, k: int) -> None:
    """A top-k logits call carries k; its answer carries float32 values (even when float16 was
    asked for the rest) and int32 ids of the same shape."""
    call = WireCall(fid, "logits", None, np.array([4, 5], np.int32), np.ones((2, 8), np.float32), None, k)
    req = decode_request(encode_request(1, "s", "compute", [call]))
    assert req.calls[0].top_k == k
    r = decode_response(encode_results(1, [(fid, WireResult(y, ids))], "float16"))
    np.testing.assert_array_equal(r.results[0][1].y, y)
    np.testing.assert_array_equal(r.results[0][1].ids, ids)


def test_top_k_rejected_where_it_means_nothing() -> None:
    fid = "ab" * 32
    for kind, k in (("ffn", 1), ("logits", MAX_LOGITS_TOP_K + 1)):
        call = WireCall(fid, kind, 0, np.array([0], np.int32), np.ones((1, 8), np.float32), None, k)
        with pytest.raises(ProtocolError, match="top_k"):
            decode_request(encode_request(1, "s", "compute", [call]))
    bad = pb.Response(id=1)
    res = bad.compute.results.add(fragment_id=fid)
    res.y.CopyFrom(encode_tensor(np.ones((1, 2), np.float32), "float32"))
    res.ids.CopyFrom(encode_tensor(np.ones((1, 3), np.int32), "int32"))
    with pytest.raises(ProtocolError, match="ids of shape"):
        decode_response(bad.SerializeToString())


@given(hex_ids, hnp.arrays(np.float32, (2, 3), elements=finite32),
       hnp.arrays(np.int32, (2, 3), elements=st.integers(0, 2**31 - 1)),
       hnp.arrays(np.float32, (6, 4), elements=st.floats(-1000, 1000, width=32)))
def test_candidate_embeddings_round_trip(fid: str, y: np.ndarray, ids: np.ndarray, emb: np.ndarray) -> None:
    """A top-k logits call may ask for its candidates' embedding rows; they travel in the
    result dtype (float16 here), one row per id in ids' row-major order."""
    call = WireCall(fid, "logits", None, np.array([4, 5], np.int32), np.ones((2, 8), np.float32), None, 3, True)
    assert decode_request(encode_request(1, "s", "compute", [call])).calls[0].embeddings is True
    r = decode_response(encode_results(1, [(fid, WireResult(y, ids, emb))], "float16")).results[0][1]
    np.testing.assert_array_equal(r.ids, ids)
    np.testing.assert_array_equal(r.embeddings, emb.astype(np.float16).astype(np.float32))


def test_candidate_embeddings_rejected_where_they_mean_nothing() -> None:
    fid = "ab" * 32
    req = pb.Request()     # encode_request never writes this: a peer's hand-made request
    req.ParseFromString(encode_request(1, "s", "compute", [
        WireCall(fid, "logits", None, np.array([0], np.int32), np.ones((1, 8), np.float32))]))
    req.compute.calls[0].embeddings = True
    with pytest.raises(ProtocolError, match="embeddings asked without top_k"):
        decode_request(req.SerializeToString())
    for ids in (None, np.zeros((1, 2), np.int32)):   # rows without ids, or 3 rows for 2 ids
        bad = pb.Response(id=1)
        res = bad.compute.results.add(fragment_id=fid)
        res.y.CopyFrom(encode_tensor(np.ones((1, 2), np.float32), "float32"))
        if ids is not None:
            res.ids.CopyFrom(encode_tensor(ids, "int32"))
        res.embeddings.CopyFrom(encode_tensor(np.ones((3, 8), np.float32), "float32"))
        with pytest.raises(ProtocolError, match="embedding rows of shape"):
            decode_response(bad.SerializeToString())


phases = st.builds(WirePhase, st.sampled_from(["attention", "ffn"]), st.integers(0, 200),
                   st.lists(hex_ids, min_size=1, max_size=3))


@st.composite
def runs(draw: st.DrawFn) -> WireRun:
    n = draw(st.integers(1, 4))
    h = draw(hnp.arrays(np.float32, (n, draw(st.integers(1, 8))), elements=finite32))
    return WireRun(draw(st.lists(phases, min_size=1, max_size=5)),
                   np.asarray(draw(st.lists(st.integers(0, 2**31 - 1), min_size=n, max_size=n)), np.int32),
                   h, draw(st.booleans()))


@given(st.integers(0, 2**64 - 1), session_ids, runs(), st.sampled_from(["float32", "float16", "bfloat16"]))
def test_run_request_round_trip(req_id: int, sid: str, run: WireRun, dtype: str) -> None:
    req = decode_request(encode_request(req_id, sid, "run", run=run, activation_dtype=dtype))
    assert (req.id, req.session_id, req.op, req.result_dtype, req.calls) == (req_id, sid, "run", dtype, [])
    assert req.run is not None and req.run.phases == run.phases
    np.testing.assert_array_equal(req.run.positions, run.positions)
    np.testing.assert_array_equal(req.run.h, run.h)          # the residual stream travels in float32
    assert req.run.attention_inputs == run.attention_inputs


@given(st.integers(0, 2**64 - 1), hnp.arrays(np.float32, (2, 5), elements=finite32), st.integers(0, 4),
       st.sampled_from(["float32", "float16", "bfloat16"]))
def test_run_result_round_trip(req_id: int, h: np.ndarray, n_inputs: int, dtype: str) -> None:
    inputs = [wire_round(h * (i + 1), dtype) for i in range(n_inputs)]      # rounded inside the run already
    resp = decode_response(encode_run_result(req_id, WireRunResult(h, inputs), dtype))
    assert resp.op == "run" and resp.id == req_id and resp.run is not None
    np.testing.assert_array_equal(resp.run.h, h)
    assert len(resp.run.attention_inputs) == n_inputs
    for a, b in zip(resp.run.attention_inputs, inputs):
        np.testing.assert_array_equal(a, b)                                # exact: no second rounding


def test_run_messages_rejected_where_malformed() -> None:
    good = WireRun([WirePhase("attention", 0, ["a" * 64])], np.arange(2, dtype=np.int32), np.ones((2, 4), np.float32))
    assert decode_request(encode_request(1, "s", "run", run=good)).op == "run"
    with pytest.raises(ProtocolError, match="needs its run"):
        encode_request(1, "s", "run")
    with pytest.raises(ProtocolError, match="cannot hold"):
        encode_request(1, "s", "run", run=WireRun([WirePhase("logits", 0, ["a" * 64])], good.positions, good.h))

    def mutated(edit) -> bytes:  # type: ignore[no-untyped-def]
        msg = pb.Request.FromString(encode_request(1, "s", "run", run=good))
        edit(msg.run)
        return msg.SerializeToString()

    cases = {
        "without phases": lambda r: r.ClearField("phases"),
        "only attention and ffn": lambda r: setattr(r.phases[0], "kind", pb.ShardCall.EMBED),
        "without fragments": lambda r: r.phases[0].ClearField("fragment_ids"),
        "residual stream of shape": lambda r: r.positions.append(7),
        "without its residual stream": lambda r: r.ClearField("h"),
        "not a float dtype": lambda r: setattr(r, "activation_dtype", pb.Tensor.INT32),
        "lowercase hex": lambda r: r.phases[0].fragment_ids.append("XYZ"),
        "phases in one run": lambda r: r.phases.extend([r.phases[0]] * MAX_RUN_PHASES),
        "negative token position": lambda r: r.positions.__setitem__(0, -1),
    }
    for match, edit in cases.items():
        with pytest.raises(ProtocolError, match=match):
            decode_request(mutated(edit))
    # answers: attention inputs must have h's shape; h must be [n, d]
    bad = pb.Response(id=1)
    bad.run.h.CopyFrom(encode_tensor(np.ones((2, 4), np.float32), "float32"))
    bad.run.attention_inputs.add().CopyFrom(encode_tensor(np.ones((2, 3), np.float32)))
    with pytest.raises(ProtocolError, match="attention inputs of shapes"):
        decode_response(bad.SerializeToString())
    bad.run.h.CopyFrom(encode_tensor(np.ones(4, np.float32), "float32"))
    with pytest.raises(ProtocolError, match="wants"):
        decode_response(bad.SerializeToString())


@given(st.sampled_from(sorted(ERROR_CODES)), st.text(max_size=50), hex_ids)
def test_error_round_trip(code: str, text: str, fid: str) -> None:
    r = decode_response(encode_error(9, code, text, fid))
    assert r.op == "error" and r.error.code == code and r.error.message == text and r.error.fragment_id == fid
    exc = r.error.to_exception("peerX")
    assert exc.code == code and "peerX" in str(exc)


def test_semantic_checks_of_requests() -> None:
    good = WireCall("a" * 64, "ffn", 1, np.arange(2, dtype=np.int32), np.ones((2, 4), np.float32))
    bad_rows = WireCall("a" * 64, "ffn", 1, np.arange(3, dtype=np.int32), np.ones((2, 4), np.float32))
    bad_id = WireCall("A" * 64, "ffn", 1, np.arange(2, dtype=np.int32), np.ones((2, 4), np.float32))
    assert decode_request(encode_request(1, "s", "compute", [good])).calls[0].layer == 1
    for c in (bad_rows, bad_id):
        with pytest.raises(ProtocolError):
            decode_request(encode_request(1, "s", "compute", [c]))
    with pytest.raises(ProtocolError, match="without calls"):
        decode_request(encode_request(1, "s", "compute", []))
    with pytest.raises(ProtocolError, match="without a body"):
        decode_request(pb.Request(id=1, session_id="s").SerializeToString())


# ---------------------------------------------------------------- other messages


@given(st.builds(
    Announcement, peer_id=st.text(min_size=1, max_size=60), model_id=hex_ids, seq=st.integers(0, 2**64 - 1),
    addrs=st.lists(st.text(max_size=60), max_size=4), fragments=st.lists(hex_ids, max_size=5),
    load=st.floats(0, 10, width=32), uptime_s=st.floats(0, 1e9), sessions=st.integers(0, 2**32 - 1),
    storage_free_bytes=st.integers(0, 2**63),
))
def test_announcement_round_trip(a: Announcement) -> None:
    assert decode_announcement(encode_announcement(a)) == a


def test_announcement_size_limit() -> None:
    with pytest.raises(ProtocolError):
        decode_announcement(b"\x00" * (MAX_ANNOUNCE_BYTES + 1))


@given(hex_ids, st.integers(0, 2**40), st.integers(0, 2**20), st.binary(max_size=100), st.booleans())
def test_fragment_messages_round_trip(fid: str, off: int, length: int, data: bytes, last: bool) -> None:
    assert decode_fragment_request(encode_fragment_request(FragmentRequest(fid, off, length))) == FragmentRequest(fid, off, length)
    c = FragmentChunk(fid, off, off + len(data) + length, data, last)
    assert decode_fragment_chunk(encode_fragment_chunk(c)) == c


def _manifest(extra: dict) -> dict:
    m = {"format": "libp2pia-manifest", "format_version": 1, "architecture": "gemma3", "fragments": [], **extra}
    m["model_id"] = manifest_model_id(m)
    return m


def test_model_id_agrees_with_the_fragment_writer() -> None:
    """wire and fragments share one canonicalisation, so their model ids agree (non-ASCII too)."""
    from libp2pia.fragments.manifest import canonical_bytes, with_model_id

    m = {"format": "libp2pia-manifest", "format_version": 1, "architecture": "gemma3",
         "source": {"file_name": "modèle-é.gguf"}, "fragments": [], "hparams": {"b": 1, "a": [1.5, None]}}
    written = with_model_id(m)
    assert manifest_model_id(written) == written["model_id"] == manifest_model_id(m)
    assert written["model_id"] == hashlib.sha256(canonical_bytes(m)).hexdigest()
    assert decode_manifest_record(encode_manifest_record(written), written["model_id"]) == written
    assert canonical_json(m) == canonical_bytes(m) == canonical_bytes(written)


@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=5))
def test_manifest_record_round_trip_and_forgery(extra: dict) -> None:
    extra.pop("model_id", None)
    m = _manifest(extra)
    assert decode_manifest_record(encode_manifest_record(m), m["model_id"]) == m
    forged = pb.ManifestRecord(model_id=m["model_id"], manifest_json=json.dumps({**m, "architecture": "evil"}).encode())
    with pytest.raises(ProtocolError, match="hashes to"):
        decode_manifest_record(forged.SerializeToString(), m["model_id"])
    with pytest.raises(ProtocolError):
        decode_manifest_record(encode_manifest_record(m), "0" * 64 if m["model_id"] != "0" * 64 else "1" * 64)


# ---------------------------------------------------------------- garbage into every decoder


@pytest.mark.parametrize("decode", DECODERS, ids=lambda f: f.__name__)
@settings(max_examples=300)
@given(blob=st.binary(max_size=400))
def test_decoders_only_raise_protocol_error(decode, blob: bytes) -> None:
    try:
        decode(blob)
    except ProtocolError:
        pass


@pytest.mark.parametrize("decode,sample", [
    (decode_request, encode_request(3, "sess", "compute", [WireCall("b" * 64, "attention", 2, np.arange(3, dtype=np.int32), np.ones((3, 8), np.float32), None)])),
    (decode_response, encode_results(3, [("b" * 64, np.ones((3, 8), np.float32))], "float16")),
    (decode_request, encode_request(4, "sess", "run", run=WireRun([WirePhase("attention", 1, ["c" * 64]), WirePhase("ffn", 1, ["d" * 64])], np.arange(2, dtype=np.int32), np.ones((2, 8), np.float32)))),
    (decode_response, encode_run_result(4, WireRunResult(np.ones((2, 8), np.float32), [np.ones((2, 8), np.float32)]), "float16")),
    (decode_announcement, encode_announcement(Announcement("peer", "c" * 64, 5, ["/ip4/1.2.3.4/tcp/1"], ["d" * 64]))),
    (decode_fragment_chunk, encode_fragment_chunk(FragmentChunk("e" * 64, 0, 10, b"0123456789", True))),
    (decode_manifest_record, encode_manifest_record(_manifest({}))),
], ids=lambda x: getattr(x, "__name__", ""))
@given(data=st.data())
def test_truncated_or_mutated_messages(decode, sample: bytes, data: st.DataObject) -> None:
    """Truncations and byte flips of valid messages: a valid message or ProtocolError."""
    cut = data.draw(st.integers(0, len(sample)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(sample) - 1), st.integers(0, 255)), max_size=3))
    blob = bytearray(sample[:cut] if data.draw(st.booleans()) else sample)
    for i, v in flips:
        if i < len(blob):
            blob[i] = v
    try:
        decode(bytes(blob))
    except ProtocolError:
        pass
