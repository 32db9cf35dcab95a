"""In-process backend: every shard object lives in this process; calls run synchronously."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import MissingFragment, SessionError
from ..model.build import Shard
from .interface import ShardCall, ShardResult
from .local import close_session, execute_all


class InProcessBackend:
    """Implements the Backend protocol over a dict fragment id -> shard."""

    def __init__(self, shards: Mapping[str, Shard]) -> None:
        self.shards = dict(shards)
        self.sessions: set[str] = set()
        self.calls = 0                     # how many shard calls ran (for tests and profiles)

    async def open_session(self, session_id: str) -> None:
        self.sessions.add(session_id)

    async def call(self, session_id: str, calls: list[ShardCall]) -> list[ShardResult]:
        if session_id not in self.sessions:
            raise SessionError(f"unknown session {session_id}")
        for c in calls:
            if c.fragment_id not in self.shards:
                raise MissingFragment(c.fragment_id, "not loaded in this process")
        out = execute_all(self.shards.__getitem__, session_id, calls)
        self.calls += len(calls)
        return out

    async def close_session(self, session_id: str) -> None:
        self.sessions.discard(session_id)
        for shard in self.shards.values():
            close_session(shard, session_id)
