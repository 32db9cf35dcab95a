"""Unicode helpers shared by the tokenizers, mirroring llama.cpp's ``unicode.cpp``.

llama.cpp classifies code points with a table generated from UnicodeData.txt
(``unicode_cpt_flags``); we derive the same flags from :mod:`unicodedata`
(Python 3.11 ships Unicode 14.0, so code points assigned after that are
"undefined" here — the only known source of disagreement, see docs/tokenizer.md).

| flag        | general categories          |
|-------------|-----------------------------|
| number      | Nd Nl No                    |
| letter      | Lu Ll Lt Lm Lo              |
| separator   | Zs Zl Zp                    |
| accent_mark | Mn Mc Me                    |
| punctuation | Pc Pd Ps Pe Pi Pf Po        |
| symbol      | Sc Sk Sm So                 |
| control     | Cc Cf Cs Co                 |
| undefined   | Cn                          |

Whitespace is the Unicode White_Space property (the set below), independent of
the category.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

# --- code point flags ------------------------------------------------------------
UNDEFINED, NUMBER, LETTER, SEPARATOR, ACCENT_MARK, PUNCTUATION, SYMBOL, CONTROL = (
    1, 2, 4, 8, 16, 32, 64, 128)

_CATEGORY_FLAG = {
    "Nd": NUMBER, "Nl": NUMBER, "No": NUMBER,
    "Lu": LETTER, "Ll": LETTER, "Lt": LETTER, "Lm": LETTER, "Lo": LETTER,
    "Zs": SEPARATOR, "Zl": SEPARATOR, "Zp": SEPARATOR,
    "Mn": ACCENT_MARK, "Mc": ACCENT_MARK, "Me": ACCENT_MARK,
    "Pc": PUNCTUATION, "Pd": PUNCTUATION, "Ps": PUNCTUATION, "Pe": PUNCTUATION,
    "Pi": PUNCTUATION, "Pf": PUNCTUATION, "Po": PUNCTUATION,
    "Sc": SYMBOL, "Sk": SYMBOL, "Sm": SYMBOL, "So": SYMBOL,
    "Cc": CONTROL, "Cf": CONTROL, "Cs": CONTROL, "Co": CONTROL,
    "Cn": UNDEFINED,
}

#: Unicode White_Space (llama.cpp's ``unicode_set_whitespace``).
WHITESPACE = frozenset(
    [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
     0x2028, 0x2029, 0x202F, 0x205F, 0x3000])


@lru_cache(maxsize=65536)
def category_flag(ch: str) -> int:
    """The llama.cpp category flag of one character (exactly one bit set)."""
    return _CATEGORY_FLAG[unicodedata.category(ch)]


def is_letter(ch: str) -> bool:
    return category_flag(ch) == LETTER


def is_number(ch: str) -> bool:
    return category_flag(ch) == NUMBER


def is_whitespace(ch: str) -> bool:
    return ord(ch) in WHITESPACE


# --- GPT-2 byte <-> unicode map --------------------------------------------------
def _byte_to_unicode() -> dict[int, str]:
    """Printable bytes map to themselves, the others to U+0100 onwards (GPT-2)."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


BYTE_TO_UNICODE: dict[int, str] = _byte_to_unicode()
UNICODE_TO_BYTE: dict[str, int] = {v: k for k, v in BYTE_TO_UNICODE.items()}


def byte_encode(text: str) -> str:
    """UTF-8 bytes of ``text`` spelled with the GPT-2 byte alphabet."""
    return "".join(BYTE_TO_UNICODE[b] for b in text.encode("utf-8"))


# --- "collapsed" text for regex pre-tokenizers ------------------------------------
#: llama.cpp replaces every non-ASCII code point by one byte standing for its
#: category, so that std::regex (byte based) can evaluate \p{L}, \p{N}, ...
COLLAPSED = {NUMBER: "\xd1", LETTER: "\xd2", PUNCTUATION: "\xd3", ACCENT_MARK: "\xd4",
             SYMBOL: "\xd5"}
COLLAPSED_OTHER = "\xd0"
COLLAPSED_SPACE = "\x0b"  # non-ASCII whitespace becomes a vertical tab


@lru_cache(maxsize=65536)
def _collapse_char(ch: str) -> str:
    if ord(ch) < 128:
        return ch
    if ord(ch) in WHITESPACE:
        return COLLAPSED_SPACE
    return COLLAPSED.get(category_flag(ch), COLLAPSED_OTHER)


def collapse(text: str) -> str:
    """One character per code point of ``text``: ASCII kept, the rest by category."""
    return "".join(map(_collapse_char, text))
