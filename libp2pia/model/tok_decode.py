"""Decoding helpers: byte-level BPE pieces, llama.cpp's space clean-up, streaming."""

from __future__ import annotations

import codecs
from typing import Protocol

from . import tok_unicode as U


class _HasPieces(Protocol):
    def token_to_piece(self, token: int, special: bool = False) -> bytes: ...


class StreamDecoder:
    """Text of generated tokens as they come, never half a UTF-8 character.

    Byte tokens of one multi-byte character are held back until the character is
    complete. (llama.cpp's ``clean_spaces`` post-pass, used by GPT-2-era BPE
    vocabularies only, is not applied to streamed text.)
    """

    def __init__(self, tokenizer: _HasPieces, special: bool = False) -> None:
        self._tok = tokenizer
        self._special = special
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token: int) -> str:
        """New text made complete by ``token`` (possibly empty)."""
        return self._utf8.decode(self._tok.token_to_piece(token, self._special))

    def flush(self) -> str:
        """Whatever is left (an incomplete character becomes U+FFFD)."""
        return self._utf8.decode(b"", final=True)


def bpe_decode_text(text: str) -> bytes:
    """Byte-level BPE token text -> bytes (llama_decode_text)."""
    out = bytearray()
    for ch in text:
        b = U.UNICODE_TO_BYTE.get(ch)
        if b is None:
            utf8 = ch.encode("utf-8")
            out += b"[UNK_BYTE_0x" + utf8.hex().encode() + text.encode("utf-8") + b"]"
        else:
            out.append(b)
    return bytes(out)


def clean_spaces(text: bytes) -> bytes:
    """llama.cpp's detokenizer clean-up: " ?" -> "?", " ' " -> "'", " 's" -> "'s", ..."""
    t = bytearray(text)
    # pass 1: drop the space before ?!.,
    out = bytearray(t[:1])
    for i in range(1, len(t)):
        if t[i - 1] == 0x20 and t[i] in b"?!.,":
            out.pop()
        out.append(t[i])
    t = out
    # pass 2: " ' " -> "'"
    out = bytearray(t[:1])
    i = 1
    while i < len(t):
        x = t[i]
        if x == 0x27 and i + 1 < len(t) and t[i - 1] == 0x20 and t[i + 1] == 0x20:
            out.pop()
            out.append(x)
            t[i + 1] = 0   # llama.cpp overwrites the next space with NUL and skips it
            i += 2
            continue
        out.append(x)
        i += 1
    t = out
    # pass 3: " 's", " 'm", " 're", " 've" lose their space
    out = bytearray(t[:1])
    for i in range(1, len(t)):
        x = t[i]
        if t[i - 1] == 0x20 and x == 0x27 and i + 1 < len(t):
            x1 = t[i + 1]
            if x1 in b"sm" or (i + 2 < len(t) and bytes(t[i + 1:i + 3]) in (b"re", b"ve")):
                out.pop()
        out.append(x)
    return bytes(out)
