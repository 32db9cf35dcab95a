"""The MVP test: a 50-token greedy answer from Gemma through peers in different network namespaces,
two of them behind NATs, surviving the SIGKILL of 2 workers mid-generation.

Lab (tests/netlab.py, unique namespace names, torn down in ``finally``):

| namespace        | processes                                   | reachable                          |
|------------------|---------------------------------------------|------------------------------------|
| wan (10.77.0.1)  | bootstrap, relay, worker-2, worker-3, client | directly                           |
| lan1 (NAT 1)     | worker-0                                    | only through the relay (then DCUtR) |
| lan2 (NAT 2)     | worker-1                                    | only through the relay (then DCUtR) |

R = 2 (every fragment on 2 of the 4 workers). The client generates the answer twice in one join: once
without failures, once while one NAT'd worker and one public worker are SIGKILLed (a pair whose loss
leaves a replica of every fragment). Both answers must equal the local engine's.
Skips only where root or iptables is missing.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest
import trio

from labprocs import Procs, start_lab_network
from netlab import lab_unavailable_reason, nat_lab

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "The capital of France is"
N_TOKENS = 50
KILL_AT = (8, 20)                  # token indices of the second run at which the two workers die
WORKER_NS = ("lan1", "lan2", "wan", "wan")

pytestmark = [pytest.mark.netns, pytest.mark.slow, pytest.mark.timeout(900)]


def _step(times: list[float]) -> float:
    """Median gap between two tokens."""
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    return gaps[len(gaps) // 2]


def safe_kill_pair(plan: list[list[str]], core: set[str], used: set[int], attention: set[int]) -> tuple[int, int]:
    """Two workers the session uses (a NAT'd and a public one if possible, one of them serving attention
    shards so that a KV cache must be replayed) whose loss leaves a replica of every fragment."""
    held = [set(p) - core for p in plan]
    pairs = [(a, b) for a, b in itertools.product((0, 1), (2, 3))]
    pairs += [p for p in itertools.combinations(range(4), 2) if p not in pairs]
    pairs.sort(key=lambda p: not (set(p) & attention))     # stable: the NAT'd/public order is kept
    for a, b in pairs:
        if a in used and b in used and not held[a] & held[b]:
            return a, b
    raise AssertionError(f"no safe pair among the workers used {sorted(used)}")


def test_mvp_50_tokens_through_nats_survive_two_kills(gemma_path: Path, tmp_path: Path, capsys) -> None:
    reason = lab_unavailable_reason()
    if reason:
        pytest.skip(reason)
    from libp2pia.engine.runner import LocalRunner
    from libp2pia.node.spread import spread, worker_bytes
    from libp2pia.node.swarm import fragment_cache

    frags = fragment_cache(gemma_path, 10 * 2**20)
    runner = LocalRunner.open(frags)
    ids = runner.encode(PROMPT)
    local = trio.run(runner.generate, ids, N_TOKENS).tokens
    text = runner.tokenizer.decode(local)
    manifest = json.loads((frags / "manifest.json").read_text())
    del runner

    dirs = spread(frags, tmp_path / "spread", 4, 2)
    plan = json.loads((tmp_path / "spread" / "placement.json").read_text())["workers"]
    core = {f["id"] for f in manifest["fragments"] if f["role"] == "core"}
    kill: tuple[int, int] = (-1, -1)

    procs = Procs(tmp_path)
    with nat_lab(nats=2) as lab:
        try:
            wan = lab.ip("wan")
            boot, relay = start_lab_network(procs, lab, frags, dirs, WORKER_NS,
                                            [worker_bytes(manifest, p) + 1 for p in plan])
            workers = [procs.line(f"worker-{i}", 300) for i in range(4)]
            reach = {f"worker-{i}": w.get("reachability") for i, w in enumerate(workers)}
            assert reach["worker-0"] == "private" and reach["worker-1"] == "private", reach
            assert workers[0]["circuits"] and workers[1]["circuits"]

            procs.spawn("client", lab.exec("wan"), [
                str(ROOT / "tests" / "failover_client.py"), "--ip", wan, "--bootstrap", *boot, "--relay", *relay,
                "--model", manifest["model_id"], "--prompt", PROMPT, "-n", str(N_TOKENS), "--runs", "2",
                "--data-dir", str(tmp_path / "client"), "--wait-direct", "10"])
            runs: list[dict] = []
            killed: list[tuple[str, int, float]] = []
            dcutr: dict = {}
            while True:
                ev = procs.line("client", 240)
                if ev["event"] == "error":
                    raise AssertionError(f"client failed: {ev}\nworker logs:\n"
                                         + "\n".join(procs.tail(f"worker-{i}", 5) for i in range(4)))
                if ev["event"] == "session" and ev["run"] == 1:
                    ids_ = [w["peer_id"] for w in workers]
                    kill = safe_kill_pair(plan, core, {ids_.index(p) for p in ev["used"] if p in ids_},
                                          {ids_.index(p) for p in ev["attention"] if p in ids_})
                elif ev["event"] == "token" and ev["run"] == 1 and ev["i"] in KILL_AT:
                    victim = f"worker-{kill[KILL_AT.index(ev['i'])]}"
                    procs.kill(victim)
                    killed.append((victim, ev["i"], time.monotonic()))
                elif ev["event"] == "run":
                    runs.append(ev)
                elif ev["event"] == "dcutr":
                    dcutr = ev["kinds"]
                elif ev["event"] == "done":
                    break
        finally:
            procs.stop()

    peer_name = {w["peer_id"][-8:]: f"worker-{i}" for i, w in enumerate(workers)}
    clean, failed = runs
    report = {
        "reachability": reach,
        "first_link": {peer_name.get(p, p): h for p, h in clean["reach"].items()},
        "kinds_run1": {peer_name.get(p, p): k for p, k in clean["kinds"].items()},
        "kinds_after_dcutr_wait": {peer_name.get(p, p): k for p, k in dcutr.items()},
        "killed": [{"worker": name, "after_token": i,
                    "kill_to_next_token_s": round(next(t for t in failed["times"] if t > at) - at, 3)}
                   for name, i, at in killed],
        "ms_per_token": {"clean": round(1e3 * _step(clean["times"]), 1),
                         "with_kills": round(1e3 * _step(failed["times"]), 1)},
        "failovers": [{**f, "peer": peer_name.get(f["peer"][-8:], f["peer"])} for f in failed["failovers"]],
        "seconds": {"clean": round(clean["seconds"], 1), "with_kills": round(failed["seconds"], 1)},
        "text": PROMPT + text,
    }
    with capsys.disabled():
        print("\nMVP:", json.dumps(report, indent=1))
    assert len(killed) == 2
    assert clean["tokens"] == local
    assert failed["tokens"] == local
    assert {f["peer"] for f in report["failovers"]} >= {name for name, _, _ in killed}
    assert sum(f["replayed_layers"] for f in failed["failovers"]) >= 1
