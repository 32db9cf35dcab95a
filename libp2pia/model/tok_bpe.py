"""Byte-level BPE (``tokenizer.ggml.model = gpt2``), as llama.cpp's ``llm_tokenizer_bpe_session``.

Each pre-tokenized word is spelled in the GPT-2 byte alphabet, starts as one
symbol per character, and the adjacent pair with the lowest merge rank is
merged first (ties: the leftmost) until no pair has a rank.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from .tok_pretok import split_words
from .tok_unicode import byte_encode


def load_merges(merges: Iterable[str]) -> dict[tuple[str, str], int]:
    """``"a b"`` strings -> {(a, b): rank}; split at the first space after position 0."""
    ranks: dict[tuple[str, str], int] = {}
    for rank, m in enumerate(merges):
        pos = m.find(" ", 1)
        pair = (m[:pos], m[pos + 1:]) if pos > 0 else ("", "")   # llama.cpp keeps a dud
        ranks.setdefault(pair, rank)
    return ranks


def bpe_tokenize(text: str, regexes: tuple[str, ...], token_id: dict[str, int],
                 ranks: dict[tuple[str, str], int], ignore_merges: bool) -> list[int]:
    """Token ids of one text fragment (no special tokens in it)."""
    out: list[int] = []
    for word in split_words(text, regexes):
        word = byte_encode(word)
        if ignore_merges and word in token_id:
            out.append(token_id[word])
            continue
        for piece in _merge(word, ranks):
            tid = token_id.get(piece)
            if tid is not None:
                out.append(tid)
                continue
            # llama.cpp looks each byte of the piece up alone; only ASCII can match
            for b in piece.encode("utf-8"):
                if b < 0x80 and chr(b) in token_id:
                    out.append(token_id[chr(b)])
    return out


def _merge(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """The pieces of one byte-encoded word after all merges."""
    syms = list(word)
    n = len(syms)
    if n < 2:
        return syms
    prev = list(range(-1, n - 1))
    nxt = [*range(1, n), -1]
    heap: list[tuple[int, int, int, str]] = []   # (rank, left, right, merged text)

    def try_add(left: int, right: int) -> None:
        if left == -1 or right == -1:
            return
        rank = ranks.get((syms[left], syms[right]))
        if rank is not None:
            heapq.heappush(heap, (rank, left, right, syms[left] + syms[right]))

    for i in range(1, n):
        try_add(i - 1, i)
    while heap:
        _, left, right, text = heapq.heappop(heap)
        if not syms[left] or not syms[right] or syms[left] + syms[right] != text:
            continue   # outdated pair
        syms[left] = text
        syms[right] = ""
        nxt[left] = nxt[right]
        if nxt[right] >= 0:
            prev[nxt[right]] = left
        try_add(prev[left], left)
        try_add(left, nxt[left])
    return [s for s in syms if s]
