"""Compute protocol over real hosts: round trips, typed errors, stream reuse, garbage."""

from __future__ import annotations

import numpy as np
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libp2pia.errors import PeerUnavailable, RemoteError
from libp2pia.limits import MAX_MESSAGE_BYTES
from libp2pia.net.host import open_host
from libp2pia.net.rpc import PROTOCOL_ID, ComputeClient, ServerStats, compute_handler
from libp2pia.wire.compute import WireCall, decode_response
from attacks import frame_attacks, send_attack
from netpeer import TOY_FRAGMENTS, ToyService, spawn_sync

F1, F2 = TOY_FRAGMENTS


def call(fid: str, layer: int, x: np.ndarray, kind: str = "ffn") -> WireCall:
    return WireCall(fid, kind, layer, np.arange(x.shape[0], dtype=np.int32), x)


async def test_round_trips_sessions_and_typed_errors() -> None:
    stats = ServerStats()
    with trio.fail_after(30):
        async with open_host() as server, open_host() as client_host:
            server.handle(PROTOCOL_ID, compute_handler(ToyService(), stats))
            await client_host.connect(server.addrs[0])
            c = ComputeClient(client_host)
            x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
            with pytest.raises(RemoteError) as ei:
                await c.compute(server.peer_id, "s1", [call(F1, 1, x)])
            assert ei.value.code == "UNKNOWN_SESSION"
            await c.open_session(server.peer_id, "s1")
            ys = await c.compute(server.peer_id, "s1", [call(F1, 1, x), call(F2, 5, x)], activation_dtype="float32",
                                 result_dtype="float32")
            np.testing.assert_array_equal(ys[0], 2 * x + 1)
            np.testing.assert_array_equal(ys[1], 2 * x + 5)
            # float16 default: within float16 rounding of the exact answer
            (y16,) = await c.compute(server.peer_id, "s1", [call(F1, 2, x)])
            np.testing.assert_allclose(y16, 2 * x + 2, rtol=2e-3, atol=2e-3)
            with pytest.raises(RemoteError) as ei:
                await c.compute(server.peer_id, "s1", [call("3" * 64, 1, x)])
            assert ei.value.code == "UNKNOWN_SHARD"
            # embed calls carry token ids
            (emb,) = await c.compute(server.peer_id, "s1", [WireCall(F1, "embed", 0, np.arange(2, dtype=np.int32),
                                                                      np.array([7, 9], dtype=np.int32))])
            np.testing.assert_array_equal(emb, [[14], [18]])
            await c.close_session(server.peer_id, "s1")
            with pytest.raises(RemoteError):
                await c.compute(server.peer_id, "s1", [call(F1, 1, x)])
            await c.aclose()
            assert stats.streams == 2  # one stream for all of s1 (the close ended the first)
            assert c.rtt(server.peer_id) is not None


async def test_runs_round_trip_and_typed_errors() -> None:
    """A run (several phases in one request) over real hosts: h in float32 both ways, the attention
    inputs in the activation dtype, unknown shards and sessions as typed errors."""
    from libp2pia.engine.interface import RunCall, RunPhase

    with trio.fail_after(30):
        async with open_host() as server, open_host() as client_host:
            server.handle(PROTOCOL_ID, compute_handler(ToyService()))
            await client_host.connect(server.addrs[0])
            c = ComputeClient(client_host)
            h = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
            run = RunCall([RunPhase("attention", 3, [F1]), RunPhase("ffn", 3, [F1, F2]), RunPhase("attention", 4, [F2])],
                          np.arange(2, dtype=np.int32), h)
            with pytest.raises(RemoteError) as ei:
                await c.run(server.peer_id, "r", run)
            assert ei.value.code == "UNKNOWN_SESSION"
            await c.open_session(server.peer_id, "r")
            out = await c.run(server.peer_id, "r", run)
            np.testing.assert_array_equal(out.h, h + 3 + 6 + 4)                 # float32: exact
            assert len(out.attention_inputs) == 2
            np.testing.assert_array_equal(out.attention_inputs[1], (h + 9).astype(np.float16).astype(np.float32))
            bad = RunCall([RunPhase("ffn", 1, ["3" * 64])], run.positions, h)
            with pytest.raises(RemoteError) as ei:
                await c.run(server.peer_id, "r", bad)
            assert ei.value.code == "UNKNOWN_SHARD"
            out = await c.run(server.peer_id, "r", RunCall(run.phases, run.positions, h, attention_inputs=False))
            assert out.attention_inputs == []                                    # the stream still serves
            await c.aclose()


async def test_dead_peer_is_peer_unavailable() -> None:
    with trio.fail_after(30):
        async with open_host() as client_host:
            async with open_host() as server:
                server.handle(PROTOCOL_ID, compute_handler(ToyService()))
                await client_host.connect(server.addrs[0])
                c = ComputeClient(client_host, timeout=5)
                await c.open_session(server.peer_id, "s")
                pid = server.peer_id
            seen: list = []
            c.observer = lambda p, ok: seen.append((p, ok))
            with pytest.raises(PeerUnavailable):
                await c.compute(pid, "s", [call(F1, 1, np.ones((1, 4), np.float32))])
            assert seen == [(pid.to_base58(), False)]
            await c.aclose()


async def test_slow_worker_times_out_as_peer_unavailable() -> None:
    class Slow(ToyService):
        async def compute(self, peer, session_id, calls):  # noqa: ANN001, ANN201
            await trio.sleep(30)

    with trio.fail_after(30):
        async with open_host() as server, open_host() as client_host:
            server.handle(PROTOCOL_ID, compute_handler(Slow()))
            await client_host.connect(server.addrs[0])
            c = ComputeClient(client_host)
            await c.open_session(server.peer_id, "s")
            with pytest.raises(PeerUnavailable, match="within"):
                await c.compute(server.peer_id, "s", [call(F1, 1, np.ones((1, 4), np.float32))], timeout=0.5)
            await c.aclose()


# ---------------------------------------------------------------- garbage against a worker process

attacks = frame_attacks(MAX_MESSAGE_BYTES)


@pytest.fixture(scope="module")
def worker():
    """One worker process for every example: it must survive them all."""
    with spawn_sync("compute") as info:
        yield info


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attack_list=st.lists(attacks, min_size=1, max_size=4))
async def test_garbage_gets_an_error_or_a_reset_and_the_worker_keeps_serving(worker, attack_list) -> None:
    pid = worker["peer_id"]
    with trio.fail_after(60):
        async with open_host() as attacker, open_host() as honest:
            await attacker.connect(worker["addrs"][0])
            for kind, blob in attack_list:
                answers = await send_attack(attacker.host, pid, PROTOCOL_ID, blob, MAX_MESSAGE_BYTES, decode_response)
                for a in answers:
                    assert a == "reset" or a.op in ("error", "ack"), a
                if kind == "oversized":
                    assert answers and answers[0] != "reset" and answers[0].error.code == "BAD_REQUEST"
            # the worker still serves an honest client
            await honest.connect(worker["addrs"][0])
            c = ComputeClient(honest, timeout=10)
            await c.open_session(pid, "ok")
            (y,) = await c.compute(pid, "ok", [call(F1, 3, np.ones((2, 4), np.float32))])
            np.testing.assert_array_equal(y, np.full((2, 4), 5, np.float32))
            await c.aclose()
    assert worker["process"].poll() is None


async def test_overloaded_worker_says_so() -> None:
    release = trio.Event()

    class Busy(ToyService):
        async def compute(self, peer, session_id, calls):  # noqa: ANN001, ANN201
            await release.wait()
            return await super().compute(peer, session_id, calls)

    stats = ServerStats()
    x = np.ones((1, 4), np.float32)
    with trio.fail_after(30):
        async with open_host() as server, open_host() as client_host:
            server.handle(PROTOCOL_ID, compute_handler(Busy(), stats, max_inflight=1))
            await client_host.connect(server.addrs[0])
            c = ComputeClient(client_host)
            for s in ("a", "b"):
                await c.open_session(server.peer_id, s)
            results: dict = {}

            async def first() -> None:
                results["a"] = await c.compute(server.peer_id, "a", [call(F1, 1, x)])

            async with trio.open_nursery() as n:
                n.start_soon(first)
                while stats.inflight < 1:
                    await trio.sleep(0.01)
                with pytest.raises(RemoteError) as ei:
                    await c.compute(server.peer_id, "b", [call(F1, 1, x)])
                assert ei.value.code == "OVERLOADED"
                release.set()
            np.testing.assert_array_equal(results["a"][0], 2 * x + 1)
            assert stats.inflight == 0
            await c.aclose()


async def test_fan_out_reports_each_peer_separately() -> None:
    x = np.ones((2, 4), np.float32)
    with trio.fail_after(30):
        async with open_host() as w1, open_host() as w2, open_host() as client_host:
            for w in (w1, w2):
                w.handle(PROTOCOL_ID, compute_handler(ToyService()))
                await client_host.connect(w.addrs[0])
            c = ComputeClient(client_host)
            await c.open_session(w1.peer_id, "s")  # w2 never sees an open: UNKNOWN_SESSION
            out = await c.fan_out("s", {w1.peer_id: [call(F1, 1, x), call(F2, 2, x)], w2.peer_id: [call(F1, 3, x)]})
            r1, r2 = out[w1.peer_id.to_base58()], out[w2.peer_id.to_base58()]
            np.testing.assert_array_equal(r1[1], 2 * x + 2)
            assert isinstance(r2, RemoteError) and r2.code == "UNKNOWN_SESSION"
            await c.aclose()
