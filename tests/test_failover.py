"""Failover with real processes: workers SIGKILLed mid-generation, tokens unchanged; all replicas gone → clear error.

One swarm for the module (start-up dominates), Gemma, 4 workers, R = 2: every fragment on 2 workers. The tests
run in file order: the first kills one worker, the second kills every remaining holder of one fragment.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from libp2pia.engine.runner import LocalRunner
from libp2pia.errors import MissingFragment
from libp2pia.node.client import ClientConfig, NetworkClient
from libp2pia.node.swarm import LocalSwarm, fragment_cache

PROMPT = "The capital of France is"
N_TOKENS = 12
KILL_AFTER = 4

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gemma_fragments(gemma_path: Path) -> Path:
    return fragment_cache(gemma_path, 10 * 2**20)


@pytest.fixture(scope="module")
def gemma_local(gemma_fragments: Path) -> tuple[list[int], list[int]]:
    runner = LocalRunner.open(gemma_fragments)
    ids = runner.encode(PROMPT)
    return ids, trio.run(runner.generate, ids, N_TOKENS).tokens


@pytest.fixture(scope="module")
def swarm(gemma_fragments: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    with LocalSwarm(gemma_fragments, n_workers=4, replication=2, work_dir=tmp_path_factory.mktemp("swarm")) as sw:
        yield sw


def worker_of(swarm: LocalSwarm, peer: str) -> int:
    return next(i for i, w in enumerate(swarm.workers) if w.info["peer_id"] == peer)


def attention_holder(client: NetworkClient, layer: int) -> tuple[str, str]:
    """(fragment, peer) of the attention shard of ``layer`` in the client's only open session."""
    [(sid, s)] = client.backend.sessions.items()
    fid = client.layout.attention[layer][0]
    return fid, s.pinned[fid]


async def test_killing_the_attention_holder_mid_session_keeps_the_tokens(
        swarm: LocalSwarm, gemma_local, tmp_path: Path) -> None:
    ids, expected = gemma_local
    cfg = ClientConfig(swarm.bootstrap_addrs, swarm.model_id, data_dir=tmp_path / "client")
    with trio.fail_after(300):
        async with NetworkClient.connect(cfg) as client:
            got: list[int] = []
            killed_at = None
            runs_at_kill = 0
            async for tok in client.stream(ids, N_TOKENS):
                got.append(tok.id)
                if len(got) == KILL_AFTER:
                    fid, peer = attention_holder(client, client.layout.cfg.n_layer // 2)
                    swarm.kill_worker(worker_of(swarm, peer))
                    killed_at = time.monotonic()
                    runs_at_kill = client.backend.stats.runs
            events = client.backend.events
            runs_after = client.backend.stats.runs - runs_at_kill
    assert killed_at is not None
    assert got == expected
    assert events and events[0].peer == peer
    assert fid in events[0].moved or any(fid in e.moved for e in events)
    assert sum(e.replayed_layers for e in events) >= 1        # the attention cache was rebuilt by replay
    assert sum(e.replay_rows for e in events) >= len(ids) + KILL_AFTER - 1
    # layers held together are computed as runs (the victim was serving one); once the replays are
    # done the rest of the answer goes in runs again, on the replicas
    assert runs_at_kill >= KILL_AFTER - 1 and runs_after >= N_TOKENS - KILL_AFTER - 1


async def test_all_replicas_gone_is_a_clear_error_not_a_hang(swarm: LocalSwarm, gemma_local,
                                                              tmp_path: Path) -> None:
    ids, _ = gemma_local
    alive = {w.info["peer_id"] for w in swarm.workers if w.popen.poll() is None}
    cfg = ClientConfig(swarm.bootstrap_addrs, swarm.model_id, data_dir=tmp_path / "client")
    async with NetworkClient.connect(cfg) as client:   # (its own waits are bounded by discovery deadlines)
        fid = client.layout.attention[1][0]
        holders = [p for p in client.backend.providers[fid] if p in alive]
        assert holders
        with trio.fail_after(2 * client.backend.rpc.timeout + 30):   # bounded by the request timeout
            with pytest.raises(MissingFragment) as info:
                n = 0
                async for _ in client.stream(ids, N_TOKENS):
                    n += 1
                    if n == 2:
                        for peer in holders:
                            swarm.kill_worker(worker_of(swarm, peer))
    lost = info.value.fragment              # the first fragment needed whose every holder is dead
    assert all(swarm.workers[worker_of(swarm, p)].popen.poll() is not None for p in client.backend.providers[lost])
    assert lost in str(info.value) and "every replica is down" in str(info.value)
