"""One object for "generate text with this model in this process": loader + tokenizer + engine.

    runner = LocalRunner.open("model.gguf")            # or a manifest directory
    ids = runner.encode("Hello", chat=False)
    result = await runner.generate(ids, 32, SamplingParams(), on_text=print)

A network client builds the same Engine over its network backend; only the backend differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..limits import DEFAULT_CONTEXT_LENGTH
from ..model.build import COMPUTE_ROLES
from ..model.residual import Residual
from ..quant import warmup
from ..model.sampling import SamplingParams
from ..model.tokenizer import Tokenizer
from .client import Engine
from .generation import Generation, GenerationResult
from .inprocess import InProcessBackend
from .loader import LoadedModel, load_model


@dataclass
class LocalRunner:
    model: LoadedModel
    tokenizer: Tokenizer
    engine: Engine

    @classmethod
    def open(cls, path: str | Path, *, context_limit: int = DEFAULT_CONTEXT_LENGTH) -> "LocalRunner":
        model = load_model(path, context_limit=context_limit)
        # compile (or load from numba's cache) the kernels now, so the first prompt's timing is the prompt's
        warmup(sorted({s["type"] for f in model.fragments if f["role"] in COMPUTE_ROLES for s in f["slices"]}))
        backend = InProcessBackend(model.shards, Residual(model.cfg, model.layout.norms))   # decode steps as runs
        return cls(model, Tokenizer.from_metadata(model.metadata), Engine(model.layout, backend))

    def encode(self, text: str, *, chat: bool = False, system: str | None = None) -> list[int]:
        """Prompt ids: plain text (BOS per the model's flags) or a one-turn chat through the template."""
        if not chat:
            return self.tokenizer.encode(text)
        messages: list[Mapping[str, Any]] = ([{"role": "system", "content": system}] if system else [])
        return self.tokenizer.encode_chat([*messages, {"role": "user", "content": text}])

    async def generate(self, prompt: Sequence[int], max_new_tokens: int, params: SamplingParams | None = None, *,
                       stop_strings: Sequence[str] = (), on_text: Callable[[str], None] | None = None,
                       keep_logits: bool = False) -> GenerationResult:
        """Generate in a fresh session; `on_text` receives text pieces as tokens arrive (never half a character)."""
        session = await self.engine.open_session()
        try:
            gen = Generation(self.engine, session, prompt, max_new_tokens, params, eog=self.tokenizer.eos_ids,
                             stop_strings=stop_strings, decode=self.tokenizer.decode, keep_logits=keep_logits)
            stream = self.tokenizer.stream()
            async for step in gen.stream():
                if on_text is not None and not self.tokenizer.is_eog(step.id):
                    on_text(stream.feed(step.id))
            if on_text is not None:
                on_text(stream.flush())
            return gen.result()
        finally:
            await self.engine.close_session(session)
