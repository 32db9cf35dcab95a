"""Generation on top of Engine.forward: prompt as one batch, then one token per step.

`stream()` is an async iterator of tokens as they come; `generate()` collects
them with timings. Stops at end-of-generation ids, at stop strings (checked on
the decoded text, which is then cut before the stop string) or after N tokens.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..limits import MAX_LOGITS_TOP_K
from ..model.sampling import Sampler, SamplingParams, candidates_needed
from .client import Engine, Session


@dataclass
class StepToken:
    id: int
    logits: np.ndarray | None = None     # the logits it was sampled from (kept only when asked)


@dataclass
class GenerationResult:
    prompt_tokens: list[int]
    tokens: list[int]
    text: str | None
    stop_reason: str                     # "length" | "eog" | "stop_string"
    prompt_seconds: float
    decode_seconds: float
    logits: list[np.ndarray] = field(default_factory=list)

    @property
    def prompt_tps(self) -> float:
        return len(self.prompt_tokens) / self.prompt_seconds if self.prompt_seconds > 0 else 0.0

    @property
    def decode_tps(self) -> float:
        # the first generated token comes from the prompt pass; decode steps = tokens - 1
        steps = max(len(self.tokens) - 1, 0)
        return steps / self.decode_seconds if self.decode_seconds > 0 else 0.0

    def to_json(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "tokens": self.tokens, "text": self.text,
                "stop_reason": self.stop_reason,
                "timing": {"prompt_seconds": round(self.prompt_seconds, 4),
                           "decode_seconds": round(self.decode_seconds, 4),
                           "prompt_tokens_per_s": round(self.prompt_tps, 2),
                           "decode_tokens_per_s": round(self.decode_tps, 2)}}


class Generation:
    """One generation request. Iterate `stream()` once; `result()` afterwards."""

    def __init__(self, engine: Engine, session: Session, prompt: Sequence[int], max_new_tokens: int,
                 params: SamplingParams | None = None, *, eog: Iterable[int] = (),
                 stop_strings: Sequence[str] = (), decode: Callable[[list[int]], str] | None = None,
                 keep_logits: bool = False) -> None:
        self.engine, self.session = engine, session
        self.prompt = [int(t) for t in prompt]
        self.max_new = int(max_new_tokens)
        self.sampler = Sampler(params or SamplingParams())
        # vocabulary shards send only the candidates the sampler can pick (all when logits are kept)
        self.top_k = 0 if keep_logits else candidates_needed(self.sampler.params, MAX_LOGITS_TOP_K)
        self.eog = set(int(t) for t in eog)
        self.stop_strings = [s for s in stop_strings if s]
        self.decode = decode
        self.keep_logits = keep_logits
        self.tokens: list[int] = []
        self.logits: list[np.ndarray] = []
        self.stop_reason = "length"
        self.prompt_seconds = self.decode_seconds = 0.0

    async def stream(self) -> AsyncIterator[StepToken]:
        if self.max_new <= 0:
            return
        t0 = time.perf_counter()
        logits = (await self.engine.forward(self.session, self.prompt, top_k=self.top_k))[-1]   # (n_vocab,)
        self.prompt_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        while True:
            tok = self.sampler(logits, self.session.tokens)
            self.tokens.append(tok)
            if self.keep_logits:
                self.logits.append(logits)
            yield StepToken(tok, logits if self.keep_logits else None)
            if tok in self.eog:
                self.stop_reason = "eog"
                break
            if self.stop_strings and self.decode and any(s in self.decode(self.tokens) for s in self.stop_strings):
                self.stop_reason = "stop_string"
                break
            if len(self.tokens) >= self.max_new:
                break
            logits = (await self.engine.forward(self.session, [tok], top_k=self.top_k))[-1]
        self.decode_seconds = time.perf_counter() - t1

    def text(self) -> str | None:
        if self.decode is None:
            return None
        ids = [t for t in self.tokens if t not in self.eog]
        text = self.decode(ids)
        for s in self.stop_strings:
            cut = text.find(s)
            if cut >= 0:
                text = text[:cut]
        return text

    def result(self) -> GenerationResult:
        return GenerationResult(self.prompt, self.tokens, self.text(), self.stop_reason, self.prompt_seconds,
                                self.decode_seconds, self.logits)


async def generate(engine: Engine, prompt: Sequence[int], max_new_tokens: int,
                   params: SamplingParams | None = None, *, on_token: Callable[[int], None] | None = None,
                   **kwargs: object) -> GenerationResult:
    """Open a session, generate, close it; `on_token` is called with each id as it comes."""
    session = await engine.open_session()
    try:
        gen = Generation(engine, session, prompt, max_new_tokens, params, **kwargs)  # type: ignore[arg-type]
        async for step in gen.stream():
            if on_token is not None:
                on_token(step.id)
        return gen.result()
    finally:
        await engine.close_session(session)
