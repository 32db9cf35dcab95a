"""SentencePiece-style merges (``tokenizer.ggml.model = llama``), as llama.cpp's ``llm_tokenizer_spm``.

The text (spaces already escaped to U+2581) starts as one symbol per code
point. Every adjacent pair whose concatenation is a vocabulary entry is a
candidate; the candidate with the highest score is merged first (ties: the
leftmost), then its new neighbours become candidates, until none is left.
Symbols that are not tokens fall back to their UTF-8 bytes (``<0xXX>``).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable


def spm_tokenize(text: str, token_id: dict[str, int], scores: list[float],
                 byte_token: Callable[[int], int]) -> list[int]:
    """Token ids of one already-escaped text fragment."""
    n = len(text)
    if n == 0:
        return []
    # symbol i covers text[start[i] : start[i] + size[i]]; a linked list by prev/next
    start = list(range(n))
    size = [1] * n
    prev = list(range(-1, n - 1))
    nxt = [*range(1, n), -1]
    heap: list[tuple[float, int, int, int]] = []   # (-score, left, right, length)

    def try_add(left: int, right: int) -> None:
        if left == -1 or right == -1:
            return
        length = size[left] + size[right]
        tid = token_id.get(text[start[left]:start[left] + length])
        if tid is None:
            return
        heapq.heappush(heap, (-scores[tid], left, right, length))

    for i in range(1, n):
        try_add(i - 1, i)

    while heap:
        _, left, right, length = heapq.heappop(heap)
        # stale: one side was merged away or grew since this pair was queued
        if size[left] == 0 or size[right] == 0 or size[left] + size[right] != length:
            continue
        size[left] = length
        size[right] = 0
        nxt[left] = nxt[right]
        if nxt[right] >= 0:
            prev[nxt[right]] = left
        try_add(prev[left], left)
        try_add(left, nxt[left])

    out: list[int] = []
    i = 0
    while i != -1:
        piece = text[start[i]:start[i] + size[i]]
        tid = token_id.get(piece)
        if tid is not None:
            out.append(tid)
        else:
            # only single code points can miss (merged pieces are tokens by construction)
            out.extend(byte_token(b) for b in piece.encode("utf-8"))
        i = nxt[i]
    return out
