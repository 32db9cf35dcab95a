"""Which replica serves each call of a phase: a pure function over ids and costs.

One phase = all calls of one layer stage. Each call names a fragment; several
peers may hold it. We pick one holder per call so that (1) cheap peers (low
measured round trip, low load) are preferred and (2) calls land on as few
peers as is reasonable, because calls for the same peer travel in one message.

Greedy, most-constrained first: fragments with the fewest holders are placed
first; a call goes to a peer already used in this phase when that peer costs at
most ``batch_slack`` times the cheapest holder, else to the cheapest holder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..errors import MissingFragment


def plan_phase(
    fragment_ids: Sequence[str],
    holders: Mapping[str, Sequence[str]],
    cost: Callable[[str], float],
    *,
    batch_slack: float = 1.5,
) -> dict[str, list[int]]:
    """``{peer: [indices of the calls it serves]}``; MissingFragment if a fragment has no holder."""
    order = sorted(range(len(fragment_ids)), key=lambda i: (len(holders.get(fragment_ids[i], ())), i))
    chosen: dict[str, list[int]] = {}
    for i in order:
        fid = fragment_ids[i]
        cands = sorted(set(holders.get(fid, ())), key=lambda p: (cost(p), p))
        if not cands:
            raise MissingFragment(fid, "no live holder")
        best = cost(cands[0])
        reuse = [p for p in cands if p in chosen and cost(p) <= batch_slack * best]
        peer = reuse[0] if reuse else cands[0]
        chosen.setdefault(peer, []).append(i)
    return {p: sorted(ix) for p, ix in chosen.items()}
