"""Turn a fragment plan (the manifest-shaped dict of ``libp2pia.fragments``) into numpy arrays.

The simulator never walks the fragment list in Python after this point: every
later stage indexes these arrays. One row per fragment:

| array    | dtype | meaning                                                          |
|----------|-------|------------------------------------------------------------------|
| bytes    | int64 | fragment size                                                    |
| always   | bool  | class "always" (needed by every token) vs "conditional" (expert) |
| phase    | int32 | network phase of the token schedule it is called in, -1 = none   |
| layer    | int32 | transformer layer, -1 where not applicable                       |
| expert   | int32 | routed expert id, -1 where not applicable                        |
| role     | int8  | index into ROLES                                                 |

The token schedule (DESIGN.md §1) is: one embedding lookup, then per layer the
phases below in order, then the logits fan-out. A phase with no fragment is
skipped, so a GQA model has two phases per layer and an MLA model whose shared
projections (``attn_shared``) are served by peers has three.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ManifestError

ROLES = ("core", "attention", "ffn", "expert", "shared_expert", "router", "vocab", "attn_shared", "opaque")
ROLE_INDEX = {r: i for i, r in enumerate(ROLES)}

# Sub-phase of a layer each role is called in (roles absent here have no per-token call
# on peers: core is fetched once by the client, routers run at the client).
LAYER_SUBPHASE = {"attn_shared": 0, "attention": 1, "ffn": 2, "shared_expert": 2, "expert": 2}
SUBPHASES_PER_LAYER = 3
SUBPHASE_NAMES = ("attn_shared", "attention", "ffn")

#: Roles the client holds itself by default (DESIGN.md §1: the router runs at the client).
DEFAULT_CLIENT_ROLES = ("core", "router")


@dataclass(frozen=True)
class PlanArrays:
    """A fragment plan as flat arrays plus what the token schedule needs."""

    bytes: np.ndarray
    always: np.ndarray
    role: np.ndarray
    layer: np.ndarray
    expert: np.ndarray
    embed: np.ndarray          # bool: fragment holds token_embd rows (the per-token lookup)
    logits: np.ndarray         # bool: fragment holds output rows (the final fan-out)
    n_layers: int
    n_experts: int             # routed experts per MoE layer (0 for a dense model)
    top_k: int                 # experts chosen per token and MoE layer
    hidden: int                # width of the activation vector sent to a shard
    architecture: str = "unknown"
    max_fragment_bytes: int = 10 * 1024 * 1024   # the plan's limit = one storage slot
    moe_layers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    @property
    def n(self) -> int:
        return int(self.bytes.shape[0])

    def phase(self, client_roles: Iterable[str] = DEFAULT_CLIENT_ROLES) -> np.ndarray:
        """Global phase index of every fragment (-1 = not called per token).

        Phase 0 is the embedding lookup, ``1 + 3*layer + sub`` the layer phases,
        ``n_phases - 1`` the logits. Vocabulary shards get -1 here: a tied shard
        is called in both end phases, so the latency model uses the ``embed`` and
        ``logits`` flags for them. ``client_roles`` are held by the client and
        never called over the network.
        """
        local = {ROLE_INDEX[r] for r in client_roles if r in ROLE_INDEX}
        ph = np.full(self.n, -1, np.int32)
        for name, sub in LAYER_SUBPHASE.items():
            idx = ROLE_INDEX[name]
            if idx in local:
                continue
            sel = (self.role == idx) & (self.layer >= 0)
            ph[sel] = 1 + SUBPHASES_PER_LAYER * self.layer[sel] + sub
        return ph

    @property
    def n_phases(self) -> int:
        return 2 + SUBPHASES_PER_LAYER * self.n_layers

    def expert_ids(self) -> np.ndarray:
        """Flat id ``layer*n_experts + expert`` of each routed-expert fragment, -1 elsewhere."""
        out = np.full(self.n, -1, np.int64)
        sel = self.expert >= 0
        out[sel] = self.layer[sel].astype(np.int64) * max(self.n_experts, 1) + self.expert[sel]
        return out


# GGUF key suffix -> the flat name libp2pia.gguf.hparams uses for it
_HPARAM_ALIASES = {"block_count": "n_layer", "expert_count": "n_expert", "expert_used_count": "n_expert_used",
                   "embedding_length": "n_embd"}


def _hparam(hparams: Mapping[str, Any], suffix: str, default: int) -> int:
    """Read a hyper-parameter by its flat name (``n_expert``) or GGUF key (``deepseek2.expert_count``)."""
    for key, value in hparams.items():
        if key in (suffix, _HPARAM_ALIASES.get(suffix)) or key.endswith("." + suffix):
            try:
                return int(value)
            except (TypeError, ValueError):
                continue
    return default


def _tensor_names(frag: Mapping[str, Any]) -> list[str]:
    return [str(s.get("tensor", "")) for s in frag.get("slices", []) or []]


def plan_arrays(plan: Mapping[str, Any], top_k: int | None = None) -> PlanArrays:
    """Adapt a plan/manifest dict (see the brief's manifest contract) to :class:`PlanArrays`."""
    frags = plan.get("fragments")
    if not isinstance(frags, list) or not frags:
        raise ManifestError("plan has no 'fragments' list")
    n = len(frags)
    nbytes = np.empty(n, np.int64)
    always = np.empty(n, bool)
    role = np.empty(n, np.int8)
    layer = np.full(n, -1, np.int32)
    expert = np.full(n, -1, np.int32)
    embed = np.zeros(n, bool)
    logits = np.zeros(n, bool)
    # Tied embeddings (Gemma): no vocab shard holds output rows, token_embd serves the logits.
    has_output = any(t.startswith("output.") for f in frags if isinstance(f, Mapping) and f.get("role") == "vocab"
                     for t in _tensor_names(f))
    for i, f in enumerate(frags):
        try:
            r = f["role"]
            nbytes[i] = int(f["bytes"])
            cls = f["class"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"fragment {i}: missing or bad field ({exc})") from exc
        if r not in ROLE_INDEX:
            raise ManifestError(f"fragment {i}: unknown role {r!r}")
        if cls not in ("always", "conditional"):
            raise ManifestError(f"fragment {i}: unknown class {cls!r}")
        role[i] = ROLE_INDEX[r]
        always[i] = cls == "always"
        if f.get("layer") is not None:
            layer[i] = int(f["layer"])
        if f.get("expert") is not None and r == "expert":
            expert[i] = int(f["expert"])
        if r == "vocab":
            names = _tensor_names(f)
            has_out = any(t.startswith("output.") for t in names)
            has_emb = any(t.startswith("token_embd.") for t in names)
            embed[i] = has_emb or not names
            logits[i] = has_out or (has_emb and not has_output) or not names
    hp = plan.get("hparams") or {}
    n_layers = max(_hparam(hp, "block_count", 0), int(layer.max()) + 1 if n else 0)
    n_experts = max(_hparam(hp, "expert_count", 0), int(expert.max()) + 1 if (expert >= 0).any() else 0)
    k = top_k if top_k is not None else _hparam(hp, "expert_used_count", 2 if n_experts else 0)
    hidden = _hparam(hp, "embedding_length", 4096)
    moe_layers = np.unique(layer[expert >= 0]).astype(np.int32)
    if n_experts and not 1 <= k <= n_experts:
        raise ManifestError(f"top-k {k} is not within 1..{n_experts} experts")
    limit = int(plan.get("max_fragment_bytes") or nbytes.max())
    return PlanArrays(bytes=nbytes, always=always, role=role, layer=layer, expert=expert, embed=embed,
                      logits=logits, n_layers=n_layers, n_experts=n_experts, top_k=k, hidden=hidden,
                      architecture=str(plan.get("architecture", "unknown")), max_fragment_bytes=limit,
                      moe_layers=moe_layers)


def summary(p: PlanArrays) -> dict[str, Any]:
    """Counts and bytes per class and role, as the plan's claims are stated."""
    out: dict[str, Any] = {
        "architecture": p.architecture, "fragments": p.n, "bytes": int(p.bytes.sum()),
        "always_fragments": int(p.always.sum()), "always_bytes": int(p.bytes[p.always].sum()),
        "conditional_fragments": int((~p.always).sum()), "conditional_bytes": int(p.bytes[~p.always].sum()),
        "layers": p.n_layers, "moe_layers": int(p.moe_layers.size), "experts": p.n_experts, "top_k": p.top_k,
        "hidden": p.hidden, "max_fragment_bytes": int(p.bytes.max()),
    }
    out["per_role"] = {r: {"fragments": int((p.role == i).sum()), "bytes": int(p.bytes[p.role == i].sum())}
                       for i, r in enumerate(ROLES) if (p.role == i).any()}
    return out
