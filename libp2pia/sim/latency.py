"""Seconds per token under the engine's real schedule.

Per token (DESIGN.md §1): one embedding lookup on the vocabulary shard holding
the token's row; then per layer, in order, each non-empty phase — MLA shared
projections (``attn_shared``, when peers serve them), attention shards, then
FFN / shared-expert / chosen routed-expert shards — as one fan-out to every
fragment of the phase, summed at the client; finally the logits fan-out to
every output-vocabulary shard. The router (and whatever ``client_roles`` says)
runs at the client between the attention and FFN phases.

For every fragment the client calls its fastest live replica. Fragments of one
phase held by the same peer travel in one message (the peer is the unit of
messaging). A phase lasts::

    max over peers (rtt + per-request overhead + request/down + Σ bytes/kernel speed + response/up)
      + n_peers × (client per-message CPU + request/client up + response/client down)

which charges the client's serial work (encoding, sending, decoding, summing)
in full — py-libp2p is CPU-bound (1.5 ms loopback round trip for 64 B) — and
lets the peers work in parallel. With ``supernode_mbps`` set (the plan's super
nodes) that serial per-peer work moves to a well-connected super node and the
client pays one round trip and one message each way per phase.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .coverage import route
from .peers import DEFAULT_WEIGHT_BYTES_PER_S, Peers, client_link
from .placement import Placement
from .plan import DEFAULT_CLIENT_ROLES, ROLE_INDEX, PlanArrays


@dataclass(frozen=True)
class LatencyParams:
    """Costs not given by the peers' links (each an assumption; see docs/scaling.md)."""

    client_msg_cpu_s: float = 0.75e-3     # half of py-libp2p's 1.5 ms loopback RTT (both ends on one box)
    peer_overhead_s: float = 0.75e-3      # the peer's half of it
    client_weight_bps: float = DEFAULT_WEIGHT_BYTES_PER_S   # client-side kernels (router GEMV, held roles)
    logits_response_bytes: int = 2048     # top candidates from a vocabulary shard, not full logits
    activation_bytes: int = 4             # float32 activations on the wire
    client_roles: tuple[str, ...] = DEFAULT_CLIENT_ROLES
    #: Fan out through a super node (the plan's §4.3) with this symmetric bandwidth instead of from
    #: the client: the client sends one message per phase, the super node pays the per-peer work.
    supernode_mbps: float | None = None


@dataclass(frozen=True)
class TokenLatency:
    seconds: np.ndarray        # per simulated token
    fragments: np.ndarray      # fragment calls per token
    peers: np.ndarray          # distinct peers per token
    phases: int                # network phases per token
    rtt_yardstick_s: float     # phases × median peer RTT (a yardstick; the client picks fast replicas)
    slowest_peer_s: np.ndarray  # per token: Σ over phases of the slowest peer's time
    client_serial_s: np.ndarray  # per token: Σ over phases of the client's serial per-message work
    client_compute_s: float     # per token: router (and held roles) at the client
    upload_bytes: np.ndarray    # per token: bytes the client sends

    def summary(self, answers: Iterable[int] = (30, 100, 500)) -> dict[str, float]:
        s = self.seconds
        out = {"mean_s_per_token": float(s.mean()), "p50_s_per_token": float(np.median(s)),
               "p95_s_per_token": float(np.percentile(s, 95)), "fragments_per_token": float(self.fragments.mean()),
               "peers_per_token": float(self.peers.mean()), "phases_per_token": self.phases,
               "phases_x_median_rtt_s": self.rtt_yardstick_s,
               "slowest_peer_s_per_token": float(self.slowest_peer_s.mean()),
               "client_serial_s_per_token": float(self.client_serial_s.mean()),
               "client_compute_s_per_token": self.client_compute_s,
               "client_upload_mb_per_token": float(self.upload_bytes.mean() / 1e6)}
        for n in answers:
            out[f"answer_{n}_tokens_s"] = float(n * s.mean())
        return out


def best_replicas(plan: PlanArrays, peers: Peers, placement: Placement, alive: np.ndarray) -> np.ndarray:
    """Per fragment, the live peer that would answer it fastest (-1 if none)."""
    live = np.flatnonzero(placement.placed)
    live = live[alive[placement.peer[live]]]
    f, p = placement.frag[live], placement.peer[live]
    cost = peers.rtt_s[p] + plan.bytes[f] / peers.weight_bps[p]
    order = np.lexsort((cost, f))
    f, p = f[order], p[order]
    first = np.ones(f.size, bool)
    first[1:] = f[1:] != f[:-1]
    best = np.full(plan.n, -1, np.int32)
    best[f[first]] = p[first]
    return best


def _expert_index(plan: PlanArrays) -> tuple[np.ndarray, np.ndarray]:
    """CSR over flat expert ids: fragments of expert id i are ``frags[start[i]:start[i+1]]``."""
    eid = plan.expert_ids()
    frags = np.flatnonzero(eid >= 0)
    frags = frags[np.argsort(eid[frags], kind="stable")]
    counts = np.bincount(eid[frags], minlength=max(plan.n_layers * plan.n_experts, 1))
    return frags, np.concatenate([[0], np.cumsum(counts)])


def token_latency(plan: PlanArrays, peers: Peers, placement: Placement, alive: np.ndarray,
                  popularity: np.ndarray, expert_ok: np.ndarray | None, n_tokens: int,
                  rng: np.random.Generator, params: LatencyParams = LatencyParams()) -> TokenLatency:
    """Simulate ``n_tokens`` decode steps; tokens that cannot be served are skipped by the caller."""
    best = best_replicas(plan, peers, placement, alive)
    phase = plan.phase(params.client_roles)
    n_ph = plan.n_phases
    last = n_ph - 1
    # --- fragments every token calls: layer phases of always-active fragments + logits shards
    static = np.flatnonzero(plan.always & (phase >= 0) & (best >= 0))
    logit_frags = np.flatnonzero(plan.logits & (best >= 0)) if ROLE_INDEX["vocab"] not in _local(params) else \
        np.zeros(0, np.int64)
    embed_frags = np.flatnonzero(plan.embed & (best >= 0)) if ROLE_INDEX["vocab"] not in _local(params) else \
        np.zeros(0, np.int64)
    st_frag = np.concatenate([static, logit_frags])
    st_phase = np.concatenate([phase[static], np.full(logit_frags.size, last, np.int32)])
    tok = [np.repeat(np.arange(n_tokens), st_frag.size)]
    frg = [np.tile(st_frag, n_tokens)]
    phs = [np.tile(st_phase, n_tokens)]
    # --- one embedding shard per token (the one holding its row; uniform over shards)
    if embed_frags.size:
        tok.append(np.arange(n_tokens))
        frg.append(embed_frags[rng.integers(0, embed_frags.size, n_tokens)])
        phs.append(np.zeros(n_tokens, np.int32))
    # --- routed experts chosen per token and MoE layer
    layers = plan.moe_layers
    if layers.size and plan.n_experts:
        chosen, _ = route(popularity, layers, n_tokens, plan.top_k, expert_ok, rng)
        t_idx = np.repeat(np.arange(n_tokens), layers.size * plan.top_k)
        ids = (layers[None, :, None].astype(np.int64) * plan.n_experts + chosen).reshape(-1)
        keep = chosen.reshape(-1) >= 0
        t_idx, ids = t_idx[keep], ids[keep]
        efr, start = _expert_index(plan)
        cnt = start[ids + 1] - start[ids]
        rows = np.repeat(np.arange(ids.size), cnt)
        within = np.arange(rows.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        f = efr[start[ids][rows] + within]
        alive_f = best[f] >= 0
        tok.append(t_idx[rows][alive_f])
        frg.append(f[alive_f])
        phs.append(phase[f[alive_f]])
    tok_a, frg_a, phs_a = np.concatenate(tok), np.concatenate(frg), np.concatenate(phs)
    peer_a = best[frg_a]
    # --- group calls by (token, phase, peer): one message each
    key = (tok_a.astype(np.int64) * n_ph + phs_a) * peers.n + peer_a
    ukey, inv = np.unique(key, return_inverse=True)
    msg_bytes = np.bincount(inv, weights=plan.bytes[frg_a].astype(float))
    m_peer = (ukey % peers.n).astype(np.int64)
    m_tp = ukey // peers.n                       # token * n_ph + phase
    m_phase = m_tp % n_ph
    act = plan.hidden * params.activation_bytes
    resp = np.where(m_phase == last, params.logits_response_bytes, act).astype(float)
    req = np.where(m_phase == 0, 16.0, act)     # embedding request: a token id
    peer_time = (peers.rtt_s[m_peer] + params.peer_overhead_s + req / peers.down_bps[m_peer]
                 + msg_bytes / peers.weight_bps[m_peer] + resp / peers.up_bps[m_peer])
    client = client_link(peers.network)
    c_up, c_down = client.up_mbps * 1e6 / 8, client.down_mbps * 1e6 / 8
    hub_up, hub_down = (c_up, c_down) if params.supernode_mbps is None else (params.supernode_mbps * 1e6 / 8,) * 2
    serial = params.client_msg_cpu_s + req / hub_up + resp / hub_down
    utp, tp_inv = np.unique(m_tp, return_inverse=True)
    ph_max = np.full(utp.size, 0.0)
    np.maximum.at(ph_max, tp_inv, peer_time)
    ph_serial = np.bincount(tp_inv, weights=serial)
    if params.supernode_mbps is not None:
        # client <-> super node once per phase: one request out, one summed response back
        ph_req = np.zeros(utp.size)
        np.maximum.at(ph_req, tp_inv, req)
        ph_resp = np.zeros(utp.size)
        np.maximum.at(ph_resp, tp_inv, resp)
        ph_serial += (float(np.median(peers.rtt_s)) + params.client_msg_cpu_s + ph_req / c_up + ph_resp / c_down)
    token_of_phase = utp // n_ph
    slowest = np.bincount(token_of_phase, weights=ph_max, minlength=n_tokens)
    client_serial = np.bincount(token_of_phase, weights=ph_serial, minlength=n_tokens)
    # --- client-side compute: routers (and any held role) each token
    local_s = _client_bytes(plan, params) / params.client_weight_bps
    seconds = slowest + client_serial + local_s
    upload = np.bincount(m_tp // n_ph, weights=req, minlength=n_tokens) if params.supernode_mbps is None else \
        np.bincount(utp // n_ph, weights=ph_req, minlength=n_tokens)
    fragments = np.bincount(tok_a, minlength=n_tokens)
    tp_peer = np.unique(tok_a.astype(np.int64) * peers.n + peer_a)
    n_peers = np.bincount(tp_peer // peers.n, minlength=n_tokens)
    phases = int(np.unique(m_phase).size)
    yardstick = phases * float(np.median(peers.rtt_s))
    return TokenLatency(seconds=seconds, fragments=fragments, peers=n_peers, phases=phases, rtt_yardstick_s=yardstick,
                        slowest_peer_s=slowest, client_serial_s=client_serial, client_compute_s=local_s,
                        upload_bytes=upload)


def _local(params: LatencyParams) -> set[int]:
    return {ROLE_INDEX[r] for r in params.client_roles if r in ROLE_INDEX}


def _client_bytes(plan: PlanArrays, params: LatencyParams) -> float:
    """Weight bytes the client streams itself per token: routers and any other role it holds.

    A held vocabulary means the client computes the logits: only output rows count.
    """
    local = _local(params) - {ROLE_INDEX["core"]}
    sel = np.isin(plan.role, list(local))
    sel &= (plan.role != ROLE_INDEX["vocab"]) | plan.logits
    return float(plan.bytes[sel].sum())
