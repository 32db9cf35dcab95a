"""``libp2pia swarm --kill K``: SIGKILL K workers while the answer is generated, to show failover.

Victims are chosen so that every fragment keeps at least one replica (else no failover could
save the answer: that case is the MissingFragment error, shown by the tests). They die at evenly
spaced tokens of the answer; each kill is printed with the token and the time.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from ..errors import Libp2piaError


def safe_victims(plan: Sequence[Sequence[str]], core: set[str], k: int) -> list[int]:
    """``k`` workers whose loss leaves a replica of every fragment (pure; first such set in index order)."""
    if k <= 0:
        return []
    held = [set(p) - core for p in plan]
    everything = set().union(*held)
    for combo in itertools.combinations(range(len(plan)), k):
        left = set().union(*(held[i] for i in range(len(plan)) if i not in combo))
        if left >= everything:
            return list(combo)
    raise Libp2piaError(f"no {k} of the {len(plan)} workers can be killed without losing every replica of some "
                        f"fragment: use more workers or a higher --replication")


def kill_points(n_tokens: int, k: int) -> list[int]:
    """Token counts after which the victims die: evenly spaced inside the answer."""
    return [max(1, n_tokens * (j + 1) // (k + 1)) for j in range(k)]


@dataclass
class Kill:
    worker: str
    peer: str
    after_token: int
    at: float          # time.monotonic()


async def kill_during(tokens_so_far: Callable[[], int], victims: Sequence[tuple[str, str, Callable[[], None]]],
                      points: Sequence[int], say: Callable[..., None], poll: float = 0.005) -> list[Kill]:
    """Watch the token count; at each point SIGKILL the next victim (name, peer id, kill function)."""
    done: list[Kill] = []
    t0 = time.monotonic()
    for (name, peer, kill), point in zip(victims, points):
        while tokens_so_far() < point:
            await trio.sleep(poll)
        kill()
        done.append(Kill(name, peer, tokens_so_far(), time.monotonic()))
        say(f"\n[killed {name} ({peer[-8:]}) with SIGKILL after token {done[-1].after_token}, "
            f"+{done[-1].at - t0:.2f} s]")
    return done


def failover_report(kills: Sequence[Kill], events: Sequence[Any], token_times: Sequence[float]) -> list[str]:
    """One line per kill: failover seen, fragments moved, layers replayed, time from the kill to the next token."""
    lines = []
    for k in kills:
        ev = next((e for e in events if e.peer == k.peer), None)
        nxt = token_times[k.after_token] if len(token_times) > k.after_token else None   # token after_token + 1
        gap = f"{nxt - k.at:.3f} s" if nxt is not None else "n/a"
        if ev is None:
            lines.append(f"{k.worker}: killed after token {k.after_token}; not needed afterwards (no failover); "
                         f"next token {gap} later")
        else:
            lines.append(f"{k.worker}: killed after token {k.after_token}; {len(ev.moved)} fragments moved, "
                         f"{ev.replayed_layers} attention layers replayed ({ev.replay_rows} rows, "
                         f"{ev.replay_seconds * 1e3:.0f} ms); kill → next token {gap}")
    return lines


async def watch_tokens(count: Callable[[], int], times: list[float], poll: float = 0.002) -> None:
    """Record when each token arrives (the time the count grows), until cancelled."""
    seen = count()
    while True:
        now = count()
        if now > seen:
            times.extend([time.monotonic()] * (now - seen))
            seen = now
        await trio.sleep(poll)


async def generate_with_kills(client: Any, swarm: Any, args: Any, params: Any, say: Callable[..., None]) -> None:
    """``libp2pia swarm --kill K``: the one-shot answer while K safe victims are SIGKILLed."""
    import json

    from .chat import one_shot

    plan = json.loads((swarm.work_dir / "spread" / "placement.json").read_text())["workers"]
    core = {f["id"] for f in swarm.manifest["fragments"] if f["role"] == "core"}
    victims = [(swarm.workers[i].name, swarm.workers[i].info["peer_id"], swarm.workers[i].popen.kill)
               for i in safe_victims(plan, core, args.kill)]
    points = kill_points(args.max_tokens, args.kill)
    say(f"will SIGKILL {', '.join(v[0] for v in victims)} after tokens {points}")
    if not args.json:  # the answer starts after the plan line, not in the middle of it
        sys.stdout.write(args.prompt)
        sys.stdout.flush()
    times: list[float] = []
    kills: list[Kill] = []

    async def killer() -> None:
        kills.extend(await kill_during(lambda: client.last.tokens, victims, points, say))

    async with trio.open_nursery() as n:
        n.start_soon(watch_tokens, lambda: client.last.tokens, times)
        n.start_soon(killer)
        await one_shot(client, args, params)
        n.cancel_scope.cancel()
    for line in failover_report(kills, client.backend.events, times):
        say(line)
    if len(kills) < len(victims):
        say(f"the answer ended after {client.last.tokens} tokens, before every kill point")
