"""The Python API: connect to a libp2pia network, pick a model, generate.

Async (trio), tokens as they arrive:

    import libp2pia, trio

    async def main():
        async with libp2pia.connect(bootstrap=["/ip4/…/tcp/…/p2p/…"], model=MODEL_ID) as client:
            async for token in client.generate("The capital of France is", max_new_tokens=16):
                print(token, end="", flush=True)

    trio.run(main)

Blocking, for plain scripts (same sampling options as ``libp2pia generate``):

    text = libp2pia.generate("The capital of France is", bootstrap=[...], model=MODEL_ID, max_new_tokens=16)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from .model.sampling import SamplingParams
from .node.client import ClientConfig, NetworkClient, Token, parse_addrs

__all__ = ["Client", "Token", "connect", "generate"]


class Client:
    """A client joined to a network (from :func:`connect`)."""

    def __init__(self, net_client: NetworkClient) -> None:
        self._c = net_client

    @property
    def model_id(self) -> str:
        return self._c.model_id

    @property
    def peers(self) -> list[str]:
        """Peer ids that hold fragments of the model."""
        return self._c.backend.peers()

    @property
    def last_peers(self) -> list[str]:
        """Peers used by the last generation."""
        return list(self._c.last.peers)

    def encode(self, text: str, *, chat: bool = False, system: str | None = None) -> list[int]:
        return self._c.encode(text, chat=chat, system=system)

    def decode(self, ids: Sequence[int]) -> str:
        return self._c.tokenizer.decode(ids)

    async def generate(self, prompt: str | Sequence[int], max_new_tokens: int = 64, *, temperature: float = 0.0,
                       top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0, repetition_penalty: float = 1.0,
                       seed: int | None = None, chat: bool = False, system: str | None = None,
                       stop: Sequence[str] = ()) -> AsyncIterator[Token]:
        """Yield tokens (``.id``, ``.text``; ``str(token)`` is its text) as they are generated."""
        ids = self.encode(prompt, chat=chat, system=system) if isinstance(prompt, str) else list(prompt)
        params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                                repetition_penalty=repetition_penalty, seed=seed)
        async for tok in self._c.stream(ids, max_new_tokens, params, stop_strings=stop):
            yield tok


@contextlib.asynccontextmanager
async def connect(bootstrap: Sequence[str], model: str, *, data_dir: str | Path | None = None,
                  wire_dtype: str = "float16") -> AsyncIterator[Client]:
    """Join the network through ``bootstrap`` (multiaddrs with /p2p/<id>) and load ``model`` (its id)."""
    from .node.run import silence_libp2p

    silence_libp2p()
    cfg = ClientConfig(parse_addrs(list(bootstrap)), model, data_dir=Path(data_dir) if data_dir else None,
                       wire_dtype=wire_dtype)
    async with NetworkClient.connect(cfg) as c:
        yield Client(c)


def generate(prompt: str | Sequence[int], *, bootstrap: Sequence[str], model: str, max_new_tokens: int = 64,
             on_token: Callable[[Token], Any] | None = None, data_dir: str | Path | None = None,
             **sampling: Any) -> str:
    """Blocking: connect, generate, disconnect; returns the text (``on_token`` sees each token)."""
    import trio

    async def run() -> str:
        parts: list[str] = []
        async with connect(bootstrap, model, data_dir=data_dir) as client:
            async for tok in client.generate(prompt, max_new_tokens, **sampling):
                parts.append(tok.text)
                if on_token is not None:
                    on_token(tok)
        return "".join(parts)

    return trio.run(run)
