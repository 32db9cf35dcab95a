"""Distributed = local: real py-libp2p hosts, a bootstrap node and workers in separate processes.

One swarm per model for the whole module (start-up dominates: every worker loads, verifies and
warms its fragments). The client runs in the test's trio loop; every wait is bounded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from libp2pia.engine.runner import LocalRunner
from libp2pia.node.client import ClientConfig, NetworkClient
from libp2pia.node.swarm import LocalSwarm, fragment_cache

ROOT = Path(__file__).resolve().parents[1]
MOE = ROOT / "tests" / "golden" / "models" / "moe-q4_k_m.gguf"
PROMPT = "The capital of France is"
N_TOKENS = 6
MOE_PROMPT = [1, 451, 567, 339, 472, 562, 453, 451, 420, 338]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gemma_fragments(gemma_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fragment_cache(gemma_path, 10 * 2**20, tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def gemma_swarm(gemma_fragments: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    with LocalSwarm(gemma_fragments, n_workers=6, replication=2, work_dir=tmp_path_factory.mktemp("swarm"),
                    relay=True) as swarm:
        yield swarm


@pytest.fixture(scope="module")
def gemma_local(gemma_fragments: Path) -> tuple[list[int], list[int], str]:
    """(prompt ids, greedy tokens, text of the first 4) from the local engine on the same fragments."""
    runner = LocalRunner.open(gemma_fragments)
    ids = runner.encode(PROMPT)
    res = trio.run(runner.generate, ids, N_TOKENS)
    return ids, res.tokens, runner.tokenizer.decode(res.tokens[:4])


def _client_cfg(swarm: LocalSwarm, tmp: Path) -> ClientConfig:
    # float32 on request: the distributed output must equal the local engine's bit for bit
    return ClientConfig(swarm.bootstrap_addrs, swarm.model_id, data_dir=tmp, discovery_deadline=60,
                        wire_dtype="float32")


async def test_gemma_distributed_greedy_equals_local(gemma_swarm: LocalSwarm, gemma_local, tmp_path: Path) -> None:
    ids, expected, _ = gemma_local
    with trio.fail_after(240):
        async with NetworkClient.connect(_client_cfg(gemma_swarm, tmp_path)) as client:
            assert client.encode(PROMPT) == ids
            assert len(client.backend.peers()) == 6
            res = await client.generate(ids, N_TOKENS)
            used = client.last.peers
            stats = client.backend.stats
    assert res.tokens == expected
    assert len(used) >= 2                                    # the work really was spread
    n_layer, passes = client.layout.cfg.n_layer, N_TOKENS      # the prompt's forward pass + N - 1 steps
    # per forward pass: its layer phases, as runs (consecutive layers pinned to one worker) or alone,
    # and logits; one embed phase, the prompt's (greedy logits calls bring back the next token's row)
    alone = passes * 2 * n_layer - stats.run_phases
    assert stats.phases == 1 + stats.runs + alone + passes
    # 6 workers, R = 2, layers in contiguous stretches: a short prompt or a decode step is a few runs
    # (one per stretch of layers one worker holds), not 2 x 18 phases
    assert passes <= stats.runs <= 3 * passes and alone == 0
    # one message per peer per phase: never more messages than calls, never more than peers per phase
    assert stats.messages <= stats.calls and stats.messages <= stats.phases * len(used)


async def test_unknown_model_is_a_clear_error(gemma_swarm: LocalSwarm, tmp_path: Path) -> None:
    from libp2pia.errors import NetworkError

    cfg = ClientConfig(gemma_swarm.bootstrap_addrs, "0" * 64, data_dir=tmp_path, discovery_deadline=1)
    with trio.fail_after(60), pytest.raises(NetworkError, match="not found on the network"):
        async with NetworkClient.connect(cfg):
            pass


def test_api_example_runs(gemma_swarm: LocalSwarm, gemma_local) -> None:
    """The README's example: async streaming, then the blocking wrapper (it exits 1 if they differ)."""
    text = gemma_local[2]
    cmd = [sys.executable, str(ROOT / "examples_libp2pia" / "api_example.py"), "--bootstrap",
           *gemma_swarm.bootstrap_addrs, "--model", gemma_swarm.model_id, "--prompt", PROMPT, "-n", "4"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[:2] == [text, f"blocking: {text}"]


def test_client_app_unreachable_bootstrap_exits_nonzero(gemma_swarm: LocalSwarm) -> None:
    bad = "/ip4/127.0.0.1/tcp/9/p2p/" + gemma_swarm.bootstrap.info["peer_id"]  # type: ignore[union-attr]
    out = subprocess.run([sys.executable, str(ROOT / "apps" / "client.py"), "-q", "--bootstrap", bad,
                          "--model", gemma_swarm.model_id, "-p", "hi"], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("client.py: error: none of the bootstrap nodes")


# ---------------------------------------------------------------- MoE


@pytest.fixture(scope="module")
def moe_fragments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # small fragments so that every expert is its own fragment (several per layer)
    return fragment_cache(MOE, 128 * 1024, tmp_path_factory.mktemp("moecache"))


async def test_moe_distributed_equals_local_with_experts_on_different_workers(
        moe_fragments: Path, tmp_path: Path) -> None:
    manifest = json.loads((moe_fragments / "manifest.json").read_text())
    runner = LocalRunner.open(moe_fragments)
    expected = (await runner.generate(MOE_PROMPT, 8)).tokens
    with LocalSwarm(moe_fragments, n_workers=4, replication=1, work_dir=tmp_path / "swarm") as swarm:
        placement = json.loads((tmp_path / "swarm" / "spread" / "placement.json").read_text())["workers"]
        experts = {f["id"] for f in manifest["fragments"] if f["role"] == "expert" and f["layer"] == 0}
        holders = {i for i, held in enumerate(placement) for f in held if f in experts}
        assert len(holders) >= 2                               # layer 0's experts live on different workers
        with trio.fail_after(240):
            async with NetworkClient.connect(_client_cfg(swarm, tmp_path / "client")) as client:
                res = await client.generate(MOE_PROMPT, 8)
    assert res.tokens == expected
