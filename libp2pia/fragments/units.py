"""Compute units: how each tensor family of a layer is cut (DESIGN.md §1).

A :class:`Family` is a run of ``n`` atoms (KV groups, Q heads, MLA heads, intermediate columns,
vocab rows, router layers) with boundaries on multiples of ``step`` atoms, and ``make(a, b)``
giving the slices of atoms [a, b). The packer (plan.py) chooses the boundaries.

| role | atoms | slices of atoms [a, b) | step |
|---|---|---|---|
| attention (GQA) | KV groups | Q rows, K/V rows, O columns of the group's heads, q/k norms | O block / (heads·head cols) |
| attention (1 group too big) | Q heads of one group | Q rows, O columns; K/V + norms replicated | O block |
| attention (MLA) | heads | q_b rows, k_b/v_b planes, kv_b rows, O columns | O block (2 heads for Q4_K) |
| attn_shared (MLA) | the layer | q_a, q_a_norm, kv_a_mqa, kv_a_norm whole | - |
| ffn / shared_expert / expert | intermediate cols | gate/up rows, down columns (3-D: one expert plane) | down block |
| router | MoE layers | ffn_gate_inp (+ exp_probs_b) whole | 1 layer |
| vocab | rows | token_embd or output rows | 1 row |

Tensors a family cannot explain (odd shapes, unknown names) are returned as ``leftover`` and become
opaque byte ranges (plan.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

from ..gguf.hparams import per_layer
from ..gguf.reader import GGUFHeader, TensorInfo
from ..gguf.roles import TensorRole, tensor_role
from .slices import AnySlice, Slice, whole


@dataclass
class Family:
    role: str
    klass: str
    layer: int | None
    expert: int | None
    kind: str
    n: int
    step: int
    make: Callable[[int, int], list[AnySlice]]
    label: Callable[[int], int] = lambda a: a   # atom index -> reported unit number
    order: tuple = (0,)
    fallback: list["Family"] | None = None   # finer families used when one unit does not fit
    uniform: bool = True                      # every step-sized unit has the same size


def _rows(info: TensorInfo, r0: int, r1: int, replica: bool = False, plane: int | None = None) -> Slice:
    if plane is None:
        return Slice(info, r0, r1, 0, info.shape[0], 0, info.n_planes, False, replica)
    return Slice(info, r0, r1, 0, info.shape[0], plane, plane + 1, True, replica)


def _cols(info: TensorInfo, c0: int, c1: int, plane: int | None = None) -> Slice:
    if plane is None:
        return Slice(info, 0, info.n_rows, c0, c1, 0, info.n_planes)
    return Slice(info, 0, info.n_rows, c0, c1, plane, plane + 1, True)


def _step_for(cols_per_atom: int, block: int, n: int) -> int:
    """Smallest number of atoms whose column count is a multiple of the block size."""
    for s in range(1, n + 1):
        if (s * cols_per_atom) % block == 0:
            return s
    return n


def build_families(header: GGUFHeader, hp: dict[str, Any]) -> tuple[list[Family], list[TensorInfo], list[TensorInfo]]:
    """(families, core tensors (norms, 1-D unknowns), leftover tensors for opaque ranges)."""
    roles = {t.name: tensor_role(t) for t in header.tensors}
    fams: list[Family] = []
    core: list[TensorInfo] = []
    leftover: list[TensorInfo] = []
    by_layer: dict[int | None, dict[str, dict[tuple, TensorInfo]]] = defaultdict(lambda: defaultdict(dict))
    for t in header.tensors:
        r = roles[t.name]
        if r.role == "norm" or (r.role == "unknown" and len(t.shape) == 1):
            core.append(t)
        elif r.role == "unknown":
            leftover.append(t)
        elif r.role == "vocab":
            fams.append(Family("vocab", "always", None, None, "vocab_rows", t.n_rows, 1,
                               lambda a, b, t=t: [_rows(t, a, b)], order=(0 if r.part == "embd" else 2, 0)))
        else:
            by_layer[r.layer][r.role][(r.part, r.expert)] = t
    routers: list[tuple[int, list[TensorInfo]]] = []
    for layer in sorted(k for k in by_layer if k is not None):
        groups = by_layer[layer]
        for role, parts in groups.items():
            if role == "router":
                routers.append((layer, list(parts.values())))
                continue
            made = _layer_families(role, layer, parts, hp, roles)
            if made is None:
                leftover.extend(parts.values())
            else:
                fams.extend(made)
    if routers:
        fams.append(Family("router", "always", routers[0][0], None, "layers", len(routers), 1,
                           lambda a, b: [whole(t) for _, ts in routers[a:b] for t in ts],
                           label=lambda a: routers[a][0] if a < len(routers) else routers[-1][0] + 1,
                           order=(1, routers[0][0], 2), uniform=False))
    leftover.extend(t for parts in by_layer.get(None, {}).values() for t in parts.values())
    fams.sort(key=lambda f: f.order)
    return fams, core, leftover


_ROLE_ORDER = {"attn_shared": 0, "attention": 1, "ffn": 3, "shared_expert": 4, "expert": 5}


def _layer_families(role: str, layer: int, parts: dict[tuple, TensorInfo], hp: dict[str, Any],
                    roles: dict[str, TensorRole]) -> list[Family] | None:
    order = (1, layer, _ROLE_ORDER[role])
    if role == "attn_shared":
        ts = list(parts.values())
        return [Family(role, "always", layer, None, "layers", 1, 1, lambda a, b: [whole(t) for t in ts],
                       label=lambda a: layer + a, order=order)]
    if role == "attention":
        p = {part: t for (part, _), t in parts.items()}
        if "k_b" in p or "kv_b" in p:
            return _mla_attention(layer, p, hp, order)
        return _gqa_attention(layer, p, hp, order)
    if role in ("ffn", "shared_expert"):
        p = {part: t for (part, _), t in parts.items()}
        fam = _ffn(role, "always", layer, None, p, None, order)
        return None if fam is None else [fam]
    # experts: stacked 3-D tensors (one family per expert plane) or legacy per-expert 2-D tensors
    stacked = {part: t for (part, e), t in parts.items() if e is None}
    legacy: dict[int, dict[str, TensorInfo]] = defaultdict(dict)
    for (part, e), t in parts.items():
        if e is not None:
            legacy[e][part] = t
    out: list[Family] = []
    if stacked:
        n_exp = {t.n_planes for t in stacked.values()}
        if len(n_exp) != 1:
            return None
        for e in range(n_exp.pop()):
            fam = _ffn("expert", "conditional", layer, e, stacked, e, order + (e,))
            if fam is None:
                return None
            out.append(fam)
    for e in sorted(legacy):
        fam = _ffn("expert", "conditional", layer, e, legacy[e], None, order + (e,))
        if fam is None:
            return None
        out.append(fam)
    return out


def _ffn(role: str, klass: str, layer: int, expert: int | None, p: dict[str, TensorInfo],
         plane: int | None, order: tuple) -> Family | None:
    down, up, gate = p.get("down"), p.get("up"), p.get("gate")
    if down is None or up is None or set(p) - {"down", "up", "gate"}:
        return None
    n_ff = down.shape[0]
    if any(t.n_rows != n_ff for t in (up, gate) if t is not None):
        return None
    rows = [t for t in (gate, up) if t is not None]

    def make(a: int, b: int) -> list[AnySlice]:
        return [_rows(t, a, b, plane=plane) for t in rows] + [_cols(down, a, b, plane=plane)]

    return Family(role, klass, layer, expert, "ffn_cols", n_ff, down.block_size, make, order=order)


def _gqa_attention(layer: int, p: dict[str, TensorInfo], hp: dict[str, Any], order: tuple) -> list[Family] | None:
    q, k, v, o = p.get("q"), p.get("k"), p.get("v"), p.get("o")
    if q is None or k is None or v is None or o is None or set(p) - {"q", "k", "v", "o", "q_norm", "k_norm"}:
        return None
    n_head, n_kv = per_layer(hp["n_head"], layer), per_layer(hp["n_head_kv"], layer)
    if not n_kv or n_head % n_kv or q.n_rows % n_head or k.n_rows % n_kv or v.n_rows % n_kv or o.shape[0] % n_head:
        return None
    rep, hq, hk, hv, oc = n_head // n_kv, q.n_rows // n_head, k.n_rows // n_kv, v.n_rows // n_kv, o.shape[0] // n_head
    norms = [p[n] for n in ("q_norm", "k_norm") if n in p]

    def groups(a: int, b: int) -> list[AnySlice]:
        return ([_rows(q, a * rep * hq, b * rep * hq), _rows(k, a * hk, b * hk), _rows(v, a * hv, b * hv),
                 _cols(o, a * rep * oc, b * rep * oc)] + [whole(t, replica=a > 0) for t in norms])

    fam = Family("attention", "always", layer, None, "kv_groups", n_kv, _step_for(rep * oc, o.block_size, n_kv),
                 groups, order=order)
    # Alternatives per KV group, split by Q heads with K/V replicated: used only if a group does not fit.
    def by_heads(g: int) -> Family:
        def make(a: int, b: int) -> list[AnySlice]:
            h0, h1 = g * rep + a, g * rep + b
            return ([_rows(q, h0 * hq, h1 * hq), _rows(k, g * hk, (g + 1) * hk, replica=a > 0),
                     _rows(v, g * hv, (g + 1) * hv, replica=a > 0), _cols(o, h0 * oc, h1 * oc)]
                    + [whole(t, replica=(g > 0 or a > 0)) for t in norms])
        return Family("attention", "always", layer, None, "q_heads", rep, _step_for(oc, o.block_size, rep), make,
                      label=lambda a: g * rep + a, order=order)

    if fam.step == 1:  # a group's O columns are block-aligned, so its heads can be cut inside it
        fam.fallback = [by_heads(g) for g in range(n_kv)]
    return [fam]


def _mla_attention(layer: int, p: dict[str, TensorInfo], hp: dict[str, Any], order: tuple) -> list[Family] | None:
    o = p.get("o")
    if o is None or set(p) - {"q", "k_b", "v_b", "kv_b", "o"}:
        return None
    n_head = per_layer(hp["n_head"], layer)
    if o.shape[0] % n_head:
        return None
    oc = o.shape[0] // n_head
    row_parts = [p[n] for n in ("q", "kv_b") if n in p]
    plane_parts = [p[n] for n in ("k_b", "v_b") if n in p]
    if any(t.n_rows % n_head for t in row_parts) or any(t.n_planes != n_head for t in plane_parts):
        return None

    def make(a: int, b: int) -> list[AnySlice]:
        out: list[AnySlice] = []
        for t in row_parts:
            h = t.n_rows // n_head
            out.append(_rows(t, a * h, b * h))
        for t in plane_parts:
            out.append(Slice(t, 0, t.n_rows, 0, t.shape[0], a, b))
        out.append(_cols(o, a * oc, b * oc))
        return out

    return [Family("attention", "always", layer, None, "heads", n_head, _step_for(oc, o.block_size, n_head),
                   make, order=order)]
