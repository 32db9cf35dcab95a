"""A new worker fetches its fragments from peers (one of them serving corrupted bytes) and then serves
the whole generation alone; plus the pure choice of what to fetch."""

from __future__ import annotations

import json
import os
import select
import subprocess
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from libp2pia.node.acquire import choose_fragments

ROOT = Path(__file__).resolve().parents[1]


def _manifest(sizes: list[int]) -> dict:
    frags = [{"id": "c" * 64, "role": "core", "bytes": 5}]
    frags += [{"id": f"{i:064x}", "role": "ffn", "bytes": b} for i, b in enumerate(sizes)]
    return {"fragments": frags}


@given(st.lists(st.integers(1, 100), min_size=1, max_size=12), st.lists(st.integers(0, 3), min_size=12, max_size=12),
       st.integers(0, 500))
def test_choice_is_core_plus_fewest_replicas_within_budget(sizes: list[int], reps: list[int], budget: int) -> None:
    m = _manifest(sizes)
    replicas = {f["id"]: reps[i] for i, f in enumerate(m["fragments"][1:])}
    chosen = choose_fragments(m, replicas, budget)
    by_id = {f["id"]: f for f in m["fragments"]}
    assert chosen[0] == "c" * 64 and len(set(chosen)) == len(chosen)
    rest = chosen[1:]
    assert sum(by_id[f]["bytes"] for f in rest) <= budget
    # nothing left out that fits and is rarer than something taken
    left = [f for f in m["fragments"][1:] if f["id"] not in chosen]
    used = sum(by_id[f]["bytes"] for f in rest)
    for f in left:
        assert used + f["bytes"] > budget or not rest or replicas[f["id"]] >= min(replicas[r] for r in rest)


def test_fragments_already_held_are_kept_and_count_first() -> None:
    m = _manifest([10, 10, 10])
    held = [m["fragments"][3]["id"]]
    chosen = choose_fragments(m, {}, 20, held)
    assert chosen[:2] == ["c" * 64, held[0]] and len(chosen) == 3


@pytest.mark.slow
async def test_new_worker_fetches_skips_a_corrupt_provider_and_serves(gemma_path: Path, tmp_path: Path) -> None:
    from libp2pia.engine.runner import LocalRunner
    from libp2pia.node.client import ClientConfig, NetworkClient
    from libp2pia.node.swarm import LocalSwarm, fragment_cache, node_command

    frags = fragment_cache(gemma_path, 10 * 2**20)
    runner = LocalRunner.open(frags)
    ids = runner.encode("The capital of France is")
    expected = (await runner.generate(ids, 6)).tokens
    manifest = json.loads((frags / "manifest.json").read_text())
    target = next(f for f in manifest["fragments"] if f["role"] == "attention")
    total = sum(int(f["bytes"]) for f in manifest["fragments"])

    with LocalSwarm(frags, n_workers=2, replication=2, work_dir=tmp_path / "swarm") as swarm:
        # the provider tried first (peer-id order) now serves corrupted bytes for `target`
        first = min(swarm.workers, key=lambda w: w.info["peer_id"])
        bad_file = tmp_path / "swarm" / "spread" / first.name / target["file"]
        data = bytearray(bad_file.read_bytes())
        data[len(data) // 2] ^= 0xFF
        tmp = bad_file.with_name(bad_file.name + ".tmp")
        tmp.write_bytes(bytes(data))
        os.replace(tmp, bad_file)                 # a new inode: the shared fragment cache is untouched

        env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "1"}
        cmd = node_command("worker", "--bootstrap", *swarm.bootstrap_addrs, "--model", swarm.model_id,
                           "--storage", str(total), "--data-dir", str(tmp_path / "new"))
        with open(tmp_path / "new.log", "wb") as err:
            new = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env)
        try:
            ready, _, _ = select.select([new.stdout], [], [], 300)
            line = new.stdout.readline() if ready else b""
            assert line, (tmp_path / "new.log").read_text()[-2000:]
            info = json.loads(line)
            acq = info["acquired"]
            assert acq["fetched"] == len(manifest["fragments"]) and acq["missing"] == 0
            assert acq["rejected"] == {target["id"][:12]: [first.info["peer_id"][-8:]]}
            store = tmp_path / "new" / "store" / swarm.model_id
            assert all((store / f["file"]).exists() for f in manifest["fragments"])

            for w in swarm.workers:               # only the new worker is left to serve
                w.popen.kill()
            cfg = ClientConfig(swarm.bootstrap_addrs, swarm.model_id, data_dir=tmp_path / "client")
            with trio.fail_after(240):
                async with NetworkClient.connect(cfg) as client:
                    res = await client.generate(ids, 6)
                    used = client.last.peers
            assert res.tokens == expected
            assert info["peer_id"] in used
        finally:
            new.kill()
            new.wait(timeout=30)
            new.stdout.close()
