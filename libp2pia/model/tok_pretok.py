"""BPE pre-tokenizers: split text into words before the merges, as llama.cpp does.

llama.cpp (``unicode_regex_split``) runs a list of regexes one after another,
each splitting the pieces left by the previous one. Two regexes have
hand-written splitters (GPT-2 and Llama-3), which differ from a real regex
engine in corner cases, so we port those splitters as they are. Every other
regex is evaluated on a "collapsed" copy of the text (one character per code
point, non-ASCII ones replaced by a category byte, see
:func:`tok_unicode.collapse`) after rewriting ``\\p{L}`` etc. into classes over
those bytes — that is what llama.cpp hands to ``std::regex``; Python's ``re``
has the same leftmost-first backtracking semantics, so no ``regex`` package is
needed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from libp2pia.errors import UnsupportedError

from . import tok_unicode as U

# --- the regexes (verbatim from llama.cpp's llm_tokenizer_bpe) ----------------------
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
          r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
         r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
TEKKEN = (r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+"
          r"|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*"
          r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT4O = (r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+"
         r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
         r"|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*"
         r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
         r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
DEFAULT = [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"]


@dataclass(frozen=True)
class PreTokenizer:
    """What ``tokenizer.ggml.pre`` selects in llama.cpp (``llama_vocab::impl::load``)."""
    regexes: tuple[str, ...]
    clean_spaces: bool = True     # detokenizer removes " ?", " 's", ... (GPT-2 heritage)
    ignore_merges: bool = False   # a word that is already a token skips the merges
    add_bos: bool = False         # default of add_bos (GGUF add_bos_token overrides)


_LLAMA3 = PreTokenizer((LLAMA3,), ignore_merges=True, add_bos=True)
_GPT2 = PreTokenizer((GPT2,))
_QWEN2 = PreTokenizer((QWEN2,), clean_spaces=False)
_STARCODER = (r"\p{N}", GPT2)

#: pre name -> behaviour. Names llama.cpp knows but we do not are refused.
PRE_TOKENIZERS: dict[str, PreTokenizer] = {
    "default": PreTokenizer(tuple(DEFAULT)),
    **{n: _LLAMA3 for n in ("llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                            "midm-2.0", "lfm2", "jina-v5-nano")},
    "dbrx": PreTokenizer((LLAMA3,)), "smaug-bpe": PreTokenizer((LLAMA3,)),
    **{n: _GPT2 for n in ("gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es",
                          "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "mpt", "olmo", "jais",
                          "exaone4")},
    "trillion": PreTokenizer((GPT2,), clean_spaces=False),
    "granite-docling": PreTokenizer((GPT2,), clean_spaces=False),
    **{n: _QWEN2 for n in ("qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2")},
    "stablelm2": PreTokenizer((QWEN2,)), "megrez": PreTokenizer((QWEN2,)),
    "tekken": PreTokenizer((TEKKEN,), clean_spaces=False, ignore_merges=True, add_bos=True),
    **{n: PreTokenizer(_STARCODER) for n in ("starcoder", "refact", "codeshell", "exaone",
                                              "minerva-7b", "mellum2")},
    **{n: PreTokenizer(_STARCODER, clean_spaces=False) for n in ("command-r", "smollm")},
    **{n: PreTokenizer((GPT4O,), clean_spaces=False) for n in ("gpt-4o", "llama4", "minimax-m2")},
}


def pre_tokenizer(name: str | None) -> PreTokenizer:
    """The pre-tokenizer of ``tokenizer.ggml.pre`` (missing → llama.cpp's 'default')."""
    if not name:
        return PRE_TOKENIZERS["default"]
    try:
        return PRE_TOKENIZERS[name]
    except KeyError:
        raise UnsupportedError(f"BPE pre-tokenizer {name!r} is not supported "
                               f"(known: {', '.join(sorted(PRE_TOKENIZERS))})") from None


# --- splitting -----------------------------------------------------------------------
def split_words(text: str, regexes: tuple[str, ...]) -> list[str]:
    """Words of ``text`` (code points, not yet byte-encoded), llama.cpp's way."""
    lengths = [len(text)]
    collapsed: str | None = None
    for expr in regexes:
        if expr == GPT2:
            lengths = _split_custom(text, lengths, _gpt2_words)
        elif expr == LLAMA3:
            lengths = _split_custom(text, lengths, _llama3_words)
        else:
            if collapsed is None:
                collapsed = U.collapse(text)
            lengths = _split_regex(collapsed, _compile(expr), lengths)
    words, start = [], 0
    for n in lengths:
        words.append(text[start:start + n])
        start += n
    return words


def _split_regex(text: str, pattern: re.Pattern[str], lengths: list[int]) -> list[int]:
    """Matches and the gaps between them, inside each piece (std::regex_iterator)."""
    out: list[int] = []
    start = 0
    for n in lengths:
        piece = text[start:start + n]
        pos = 0
        for m in pattern.finditer(piece):
            if m.start() > pos:
                out.append(m.start() - pos)
            out.append(m.end() - m.start())
            pos = m.end()
        if pos < n:
            out.append(n - pos)
        start += n
    return out


_WS = r"\t\n\x0b\x0c\r "          # std::regex \s in the "C" locale
_UCAT = {  # \p{..} -> collapsed byte + the ASCII members of the class (llama.cpp k_ucat_map)
    "N": r"\xd1" + "0-9", "L": r"\xd2" + "A-Za-z", "Lu": r"\xd2" + "A-Za-z",
    "Ll": r"\xd2" + "A-Za-z", "Lt": r"\xd2" + "A-Za-z", "Lm": r"\xd2" + "A-Za-z",
    "Lo": r"\xd2" + "A-Za-z",
    "P": r"\xd3" + r"!-#%-*,-/:-;?-@\[-\]_\{\}", "M": r"\xd4", "S": r"\xd5" + r"\$\+<->\^`\|",
}


@lru_cache(maxsize=None)
def _compile(expr: str) -> re.Pattern[str]:
    """Rewrite a llama.cpp pre-tokenizer regex for the collapsed text."""
    out: list[str] = []
    inside = False
    i = 0
    while i < len(expr):
        c = expr[i]
        if c == "[" and (i == 0 or expr[i - 1] != "\\"):
            inside = True
            out.append(c)
        elif c == "]" and inside and expr[i - 1] != "\\":
            inside = False
            out.append(c)
        elif c == "\\" and expr.startswith("p{", i + 1):
            close = expr.index("}", i)
            members = _UCAT[expr[i + 3:close]]
            out.append(members if inside else f"[{members}]")
            i = close
        elif c == "\\" and i + 1 < len(expr) and expr[i + 1] in "sSd":
            k = expr[i + 1]
            cls = _WS if k in "sS" else "0-9"
            if inside and k == "S":
                raise UnsupportedError(f"\\S inside a class in pre-tokenizer regex {expr!r}")
            out.append(cls if inside else (f"[^{cls}]" if k == "S" else f"[{cls}]"))
            i += 1
        elif c == "\\" and i + 1 < len(expr):
            out.append(expr[i:i + 2])
            i += 1
        else:
            out.append(c)
        i += 1
    return re.compile("".join(out))


# --- llama.cpp's hand-written splitters -----------------------------------------------
def _split_custom(text: str, lengths: list[int], fn: Callable[[str], list[int]]) -> list[int]:
    out: list[int] = []
    start = 0
    for n in lengths:
        out.extend(fn(text[start:start + n]))
        start += n
    return out


def _flags(s: str, pos: int) -> int:
    """Category flag at ``pos`` (0 past the end, like llama.cpp's empty flags)."""
    return U.category_flag(s[pos]) if 0 <= pos < len(s) else 0


def _ws(s: str, pos: int) -> bool:
    return 0 <= pos < len(s) and ord(s[pos]) in U.WHITESPACE


def _gpt2_words(s: str) -> list[int]:
    """unicode_regex_split_custom_gpt2: 's|'t|... | ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"""
    out: list[int] = []
    end = len(s)
    prev = 0
    pos = 0

    def add(e: int) -> int:
        nonlocal prev
        n = e - prev
        if n > 0:
            out.append(n)
        prev = e
        return n

    while pos < end:
        c = s[pos]
        if c == "'" and pos + 1 < end:
            n1 = s[pos + 1]
            if n1 in "stmd":
                pos += add(pos + 2)
                continue
            if pos + 2 < end and (n1 + s[pos + 2]) in ("re", "ve", "ll"):
                pos += add(pos + 3)
                continue
        q = pos + 1 if c == " " else pos
        f2, w2 = _flags(s, q), _ws(s, q)
        if f2 == U.LETTER:
            pos = q
            while _flags(s, pos) == U.LETTER:
                pos += 1
            add(pos)
            continue
        if f2 == U.NUMBER:
            pos = q
            while _flags(s, pos) == U.NUMBER:
                pos += 1
            add(pos)
            continue
        if not w2 and f2 not in (0, U.LETTER, U.NUMBER):
            pos = q
            while not _ws(s, pos) and _flags(s, pos) not in (0, U.LETTER, U.NUMBER):
                pos += 1
            add(pos)
            continue
        nws = 0
        while _ws(s, pos + nws):
            nws += 1
        if nws > 1 and pos + nws < end:
            pos += nws - 1
            add(pos)
            continue
        if nws > 0:
            pos += nws
            add(pos)
            continue
        pos += 1
        add(pos)
    return out


def _lower(c: str) -> str:
    return c.lower() if len(c.lower()) == 1 else c


def _llama3_words(s: str) -> list[int]:
    """unicode_regex_split_custom_llama3 (the LLAMA3 regex above, hand-written)."""
    out: list[int] = []
    end = len(s)
    prev = 0
    pos = 0

    def add(e: int) -> int:
        nonlocal prev
        n = e - prev
        if n > 0:
            out.append(n)
        prev = e
        return n

    while pos < end:
        c = s[pos]
        f = _flags(s, pos)
        if c == "'" and pos + 1 < end:
            n1 = _lower(s[pos + 1])
            if n1 in "stmd":
                pos += add(pos + 2)
                continue
            if pos + 2 < end and (n1 + _lower(s[pos + 2])) in ("re", "ve", "ll"):
                pos += add(pos + 3)
                continue
        # [^\r\n\p{L}\p{N}]?\p{L}+
        if not (c in "\r\n" or f == U.NUMBER):
            if f == U.LETTER or _flags(s, pos + 1) == U.LETTER:
                pos += 1
                while _flags(s, pos) == U.LETTER:
                    pos += 1
                add(pos)
                continue
        # \p{N}{1,3}
        if f == U.NUMBER:
            ini = pos
            while _flags(s, pos) == U.NUMBER:
                pos += 1
                if pos - ini >= 3:
                    add(pos)
                    ini = pos
            add(pos)
            continue
        # <space>?[^\s\p{L}\p{N}]+[\r\n]*
        q = pos + 1 if c == " " else pos
        f2, w2 = _flags(s, q), _ws(s, q)
        if not w2 and f2 not in (U.LETTER, U.NUMBER) and f != 0:
            pos = q
            while not _ws(s, pos) and _flags(s, pos) not in (0, U.LETTER, U.NUMBER):
                pos += 1
            while pos < end and s[pos] in "\r\n":
                pos += 1
            add(pos)
            continue
        nws = 0
        last_rn = 0
        while _ws(s, pos + nws):
            if s[pos + nws] in "\r\n":
                last_rn = pos + nws + 1
            nws += 1
        if last_rn > 0:
            pos = last_rn
            add(pos)
            continue
        if nws > 1 and pos + nws < end:
            pos += nws - 1
            add(pos)
            continue
        if nws > 0:
            pos += nws
            add(pos)
            continue
        pos += 1
        add(pos)
    return out
