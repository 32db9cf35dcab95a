"""libp2pia.engine — the client token loop over shards reached through a narrow, swappable backend.

| name                          | what                                                                    |
|-------------------------------|-------------------------------------------------------------------------|
| ShardCall, ShardResult        | one call to one fragment's shard / its result (interface.py)            |
| Backend                       | protocol: open_session, call(session, calls) -> results, close_session  |
| InProcessBackend              | every shard in this process                                             |
| execute(shard, session, call) | run one call on a local shard (workers use it too)                      |
| Engine, Session               | per-layer two-phase fan-out, sums, norms, routing; sessions             |
| Generation, generate          | prompt batch + one-token decode, sampling, EOG/stop strings, streaming  |
| load_model, LoadedModel       | a GGUF (fragmented in memory) or a manifest dir -> layout + shards      |
| LocalRunner                   | loader + tokenizer + engine, for `libp2pia generate`                    |
"""

from .client import Engine, Session
from .generation import Generation, GenerationResult, StepToken, generate
from .inprocess import InProcessBackend
from .interface import KINDS, Backend, ShardCall, ShardResult
from .loader import LoadedModel, load_model
from .local import execute
from .runner import LocalRunner

__all__ = ["KINDS", "Backend", "Engine", "Generation", "GenerationResult", "InProcessBackend", "LoadedModel",
           "LocalRunner", "Session", "ShardCall", "ShardResult", "StepToken", "execute", "generate", "load_model"]
