"""The client token loop: embeds, fans each layer out in two phases, sums, samples.

Per layer (DESIGN.md §1):

    x = norm(h)                      -> attention shards (partial O products)  -> Σ -> [post-norm] -> h += a
    x = norm(h) [router top-k]       -> FFN / expert shards (partial down)     -> Σ -> [post-norm] -> h += f

Norms, residuals, routing and sampling happen here; shards are reached only
through the Backend interface, so the same loop runs in-process or over libp2p.
Where one holder has every shard of consecutive dense phases, the backend runs
them in one request (interface.RunCall) with the same per-phase arithmetic
(model.residual): a decode step then costs one round trip per holder, not two
per layer.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ModelError, SessionError
from ..limits import PREFETCH_EMBEDDINGS_MAX_BYTES, RUN_MAX_ROWS, RUN_REPLANS
from ..model.layout import ModelLayout
from ..model.ops import rms_norm
from ..model.residual import Residual, sum_partials
from ..model.routing import route
from .interface import Backend, RunCall, RunPhase, ShardCall

F32 = np.float32


@dataclass
class Session:
    """Client-side state of one conversation: tokens processed so far and, per layer, the normalized
    attention inputs sent (a replica that lost its KV cache is rebuilt by replaying them)."""

    id: str
    tokens: list[int] = field(default_factory=list)
    attn_inputs: list[list[np.ndarray]] = field(default_factory=list)
    closed: bool = False
    #: unscaled embedding rows of the last logits call's candidates (token id -> (n_embd,)): the
    #: next step's embed phase is skipped when the sampled token is among them
    candidate_rows: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def n_past(self) -> int:
        return len(self.tokens)

    def attention_history(self, layer: int) -> np.ndarray:
        """All normalized attention inputs of `layer` so far, (n_past, n_embd)."""
        parts = self.attn_inputs[layer]
        return np.concatenate(parts) if parts else np.zeros((0, 0), F32)


class Engine:
    """Drives generation over a backend. `prompt_chunk` bounds how many tokens go in one batch."""

    def __init__(self, layout: ModelLayout, backend: Backend, *, prompt_chunk: int = 512,
                 keep_history: bool = True) -> None:
        self.layout = layout
        self.cfg = layout.cfg
        self.backend = backend
        self.prompt_chunk = prompt_chunk
        self.keep_history = keep_history
        self.residual = Residual(layout.cfg, layout.norms)
        # the 2 × n_layer phases in order: (kind, layer, fragments); an MoE FFN phase has no fixed
        # fragments (the router picks them per token) and ends any run
        self.phases: list[tuple[str, int, list[str]]] = []
        for il in range(self.cfg.n_layer):
            self.phases.append(("attention", il, layout.attention[il]))
            self.phases.append(("ffn", il, [] if self.cfg.is_moe else layout.ffn[il]))
        # chainable_until[i]: the end of the stretch of phases with fixed fragments that starts at i
        self.chainable_until = [0] * len(self.phases)
        end = len(self.phases)
        for i in reversed(range(len(self.phases))):
            if not self.phases[i][2]:
                end = i
            self.chainable_until[i] = end

    # --- sessions -------------------------------------------------------
    async def open_session(self, session_id: str | None = None) -> Session:
        s = Session(session_id or uuid.uuid4().hex, attn_inputs=[[] for _ in range(self.cfg.n_layer)])
        await self.backend.open_session(s.id)
        return s

    async def close_session(self, session: Session) -> None:
        if not session.closed:
            session.closed = True
            await self.backend.close_session(session.id)

    # --- one forward pass -----------------------------------------------
    async def forward(self, session: Session, tokens: Sequence[int], *, all_logits: bool = False,
                      top_k: int = 0) -> np.ndarray:
        """Feed `tokens` after the session's history; returns logits (n, n_vocab) if `all_logits`,
        else (1, n_vocab) for the last token. Long inputs run in chunks of `prompt_chunk`.

        With ``top_k`` > 0 each vocabulary shard sends only its top_k best logits per row; the
        others are -inf in the returned rows (exact for greedy and for top-k sampling with
        k <= top_k, and the bytes on the wire drop from 4 x n_vocab to ~8 x top_k per shard)."""
        if session.closed:
            raise SessionError(f"session {session.id} is closed")
        if not len(tokens):
            raise ModelError("forward needs at least one token")
        if session.n_past + len(tokens) > self.cfg.context_length:
            raise ModelError(f"context limit of {self.cfg.context_length} tokens exceeded")
        outs = []
        for i in range(0, len(tokens), self.prompt_chunk):
            chunk = [int(t) for t in tokens[i:i + self.prompt_chunk]]
            last = i + self.prompt_chunk >= len(tokens)
            out = await self._forward_chunk(session, chunk, all_logits or last, all_logits, top_k)
            if out is not None:
                outs.append(out)
        return np.concatenate(outs)

    async def _forward_chunk(self, s: Session, ids: list[int], want: bool, all_rows: bool,
                             top_k: int = 0) -> np.ndarray | None:
        cfg, lay = self.cfg, self.layout
        n = len(ids)
        pos = np.arange(s.n_past, s.n_past + n, dtype=np.int32)

        # 1. embedding rows from the vocabulary shards: h (n, n_embd)
        h = await self._embed(s, np.asarray(ids, np.int32), pos)
        if cfg.embed_scale != 1.0:
            h = h * F32(cfg.embed_scale)

        # 2. per layer, an attention phase then an FFN phase (runs of them where one holder has them all)
        h = await self._layers(s, pos, h)

        s.tokens.extend(ids)
        if not want:
            return None
        # 4. final norm and logits from the vocabulary shards: (n or 1, n_vocab)
        rows = h if all_rows else h[-1:]
        x = rms_norm(rows, lay.norm("output_norm.weight"), cfg.eps)
        rpos = pos if all_rows else pos[-1:]
        rows_too = (top_k > 0 and len(rows) == 1
                    and len(lay.logits) * top_k * cfg.n_embd * 2 <= PREFETCH_EMBEDDINGS_MAX_BYTES)
        calls = [ShardCall(f, "logits", None, rpos, x, top_k=top_k, embeddings=rows_too) for _, _, f in lay.logits]
        res = await self.backend.call(s.id, calls)
        s.candidate_rows = {}
        if all(r.ids is None for r in res):
            return np.concatenate([r.y for r in res], axis=1)
        out = np.full((len(rows), cfg.n_vocab), -np.inf, np.float32)
        for (r0, r1, _), r in zip(lay.logits, res):
            if r.ids is None:          # a shard that sent all its logits (an older worker)
                out[:, r0:r1] = r.y
            elif r.ids.shape != r.y.shape or r.ids.size and (r.ids.min() < r0 or r.ids.max() >= r1):
                raise ModelError(f"vocabulary shard {r1 - r0} rows at {r0}: candidate ids outside its rows")
            else:
                np.put_along_axis(out, r.ids.astype(np.int64), r.y, axis=1)
        for r in res if rows_too else ():   # ids checked above
            if r.ids is None or r.embeddings is None:
                continue               # a shard without embedding rows: that token is embedded as usual
            if r.embeddings.shape != (r.ids.size, cfg.n_embd):
                raise ModelError(f"candidate embedding rows of shape {list(r.embeddings.shape)} for "
                                 f"{r.ids.size} ids of width {cfg.n_embd}")
            s.candidate_rows.update(zip(r.ids.ravel().tolist(), r.embeddings))
        return out

    async def _layers(self, s: Session, pos: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Every layer's two phases over the residual stream h (n, n_embd); returns the final h.

        Phase by phase (model.residual):  x = norm(h) → shards → Σ partials → [post-norm] → h += out.
        Where the backend says one holder serves several consecutive dense phases, they go as one run
        (the holder does the same arithmetic), and the attention inputs it returns join the history."""
        phases, res = self.phases, self.residual
        i, replans = 0, 0
        while i < len(phases):
            k = self._span(s, i, len(pos))
            if k > 1:
                after = await self._run(s, phases[i:i + k], pos, h)
                if after is None:                # its holder failed and was replaced: plan again
                    replans += 1
                    if replans > RUN_REPLANS:
                        raise SessionError(f"session {s.id}: runs kept failing over ({replans} times in one step)")
                    continue
                h, i = after, i + k
                continue
            kind, il, frags = phases[i]
            x = res.phase_input(kind, il, h)                                             # (n, n_embd)
            if kind == "attention" and self.keep_history:
                s.attn_inputs[il].append(x)
            if frags:
                out = await self._phase(s, kind, il, frags, pos, x)                      # (n, n_embd)
            else:                                                                        # MoE FFN phase
                out = await self._moe(s, il, pos, x)
            h = res.add(kind, il, h, out)
            i += 1
        return h

    def _span(self, s: Session, i: int, rows: int) -> int:
        """How many phases from phases[i] on go in one run (1: phase i alone)."""
        span = getattr(self.backend, "span", None)
        until = self.chainable_until[i]
        if span is None or rows > RUN_MAX_ROWS or until - i < 2:
            return 1
        return max(1, min(span(s.id, [frags for _, _, frags in self.phases[i:until]]), until - i))

    async def _run(self, s: Session, phases: list[tuple[str, int, list[str]]], pos: np.ndarray,
                   h: np.ndarray) -> np.ndarray | None:
        """One run; h after it (None: re-plan). Its attention inputs are appended to the history."""
        call = RunCall([RunPhase(kind, il, list(frags)) for kind, il, frags in phases], pos, h, self.keep_history)
        out = await self.backend.run(s.id, call)
        if out is None:
            return None
        layers = [il for kind, il, _ in phases if kind == "attention"]
        if out.h.shape != h.shape or (self.keep_history and len(out.attention_inputs) != len(layers)):
            raise ModelError(f"a run of {len(phases)} phases returned h {list(out.h.shape)} for {list(h.shape)} "
                             f"and {len(out.attention_inputs)} attention inputs for {len(layers)}")
        for il, x in zip(layers, out.attention_inputs if self.keep_history else ()):
            s.attn_inputs[il].append(x)
        return out.h

    async def _phase(self, s: Session, kind: str, layer: int, frags: list[str], pos: np.ndarray,
                     x: np.ndarray) -> np.ndarray:
        """One fan-out: the same input to every fragment, partial outputs summed in fragment order."""
        res = await self.backend.call(s.id, [ShardCall(f, kind, layer, pos, x) for f in frags])
        return sum_partials([r.y for r in res])

    async def _moe(self, s: Session, layer: int, pos: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Router at the client (softmax → top-k → renormalize); each chosen expert gets the rows routed
        to it in one phase; outputs weighted by the gate and summed. Shared experts see every row."""
        cfg, lay = self.cfg, self.layout
        idx, w = route(x @ lay.routers[layer].T, cfg.n_expert_used)                    # (n, k), (n, k)
        calls, targets = [], []
        for e in np.unique(idx):
            rows = np.nonzero((idx == e).any(-1))[0]
            gate = w[rows][idx[rows] == e]                                              # (rows,)
            for f in lay.experts[layer][int(e)]:
                calls.append(ShardCall(f, "ffn", layer, pos[rows], np.ascontiguousarray(x[rows])))
                targets.append((rows, gate))
        for f in lay.shared[layer]:
            calls.append(ShardCall(f, "ffn", layer, pos, x))
            targets.append((np.arange(len(pos)), None))
        res = await self.backend.call(s.id, calls)
        out = np.zeros_like(x)
        for r, (rows, gate) in zip(res, targets):
            out[rows] += r.y if gate is None else r.y * gate[:, None]
        return out

    async def _embed(self, s: Session, ids: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Ask each vocabulary shard for the rows of the ids it holds; scatter back in order.
        Rows that came back with the last logits call are used as they are (no phase at all)."""
        h = np.empty((len(ids), self.cfg.n_embd), F32)
        known = np.array([int(t) in s.candidate_rows for t in ids], bool)
        for i in np.nonzero(known)[0]:
            h[i] = s.candidate_rows[int(ids[i])]
        s.candidate_rows = {}
        calls, where = [], []
        for r0, r1, f in self.layout.embed:
            sel = np.nonzero((ids >= r0) & (ids < r1) & ~known)[0]
            if sel.size:
                calls.append(ShardCall(f, "embed", None, pos[sel], ids[sel]))
                where.append(sel)
        if sum(len(w) for w in where) + int(known.sum()) != len(ids):
            raise ModelError(f"token id out of range [0, {self.cfg.n_vocab})")
        if calls:
            res = await self.backend.call(s.id, calls)
            for sel, r in zip(where, res):
                h[sel] = r.y
        return h
