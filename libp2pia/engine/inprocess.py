"""In-process backend: every shard object lives in this process; calls run synchronously."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..errors import MissingFragment, SessionError
from ..model.build import Shard
from ..model.residual import Residual
from .interface import RunCall, RunResult, ShardCall, ShardResult
from .local import close_session, execute_all, execute_run


class InProcessBackend:
    """Implements the Backend protocol over a dict fragment id -> shard.

    With ``residual`` (the model's norms) it also runs consecutive phases in one call (``span`` /
    ``run``): every shard is here, so a whole decode step's layers are one run, computed by the same
    code a worker runs for the phases it holds."""

    def __init__(self, shards: Mapping[str, Shard], residual: Residual | None = None) -> None:
        self.shards = dict(shards)
        self.residual = residual
        self.sessions: set[str] = set()
        self.calls = 0                     # how many shard calls ran (for tests and profiles)

    async def open_session(self, session_id: str) -> None:
        self.sessions.add(session_id)

    def _check(self, session_id: str, fragment_ids: Sequence[str]) -> None:
        if session_id not in self.sessions:
            raise SessionError(f"unknown session {session_id}")
        for fid in fragment_ids:
            if fid not in self.shards:
                raise MissingFragment(fid, "not loaded in this process")

    async def call(self, session_id: str, calls: list[ShardCall]) -> list[ShardResult]:
        self._check(session_id, [c.fragment_id for c in calls])
        out = execute_all(self.shards.__getitem__, session_id, calls)
        self.calls += len(calls)
        return out

    def span(self, session_id: str, phases: Sequence[Sequence[str]]) -> int:
        if self.residual is None:
            return 1
        n = 0
        while n < len(phases) and all(f in self.shards for f in phases[n]):
            n += 1
        return max(n, 1)

    async def run(self, session_id: str, run: RunCall) -> RunResult | None:
        if self.residual is None:
            raise SessionError("this in-process backend runs phases one at a time (no residual given)")
        self._check(session_id, [f for ph in run.phases for f in ph.fragment_ids])
        self.calls += sum(len(ph.fragment_ids) for ph in run.phases)
        return execute_run(self.shards.__getitem__, session_id, self.residual, run)

    async def close_session(self, session_id: str) -> None:
        self.sessions.discard(session_id)
        for shard in self.shards.values():
            close_session(shard, session_id)
