"""Tokenizer built from GGUF metadata, token-for-token identical to llama.cpp.

Supported ``tokenizer.ggml.model`` values:

| model   | algorithm                                   | module         |
|---------|---------------------------------------------|----------------|
| `llama` | SentencePiece score merges + byte fallback  | `tok_spm.py`   |
| `gpt2`  | byte-level BPE, merges by rank, regex pre-tokenizer per `tokenizer.ggml.pre` (incl. `tekken`) | `tok_bpe.py`, `tok_pretok.py` |

Decoding helpers and the streaming detokenizer live in `tok_decode.py`, chat
templates in `chat.py`, Unicode tables in `tok_unicode.py`.

The flow follows ``llama_vocab::impl::tokenize``: special/user-defined tokens
are cut out of the text first (``tokenizer_st_partition``), every remaining
fragment goes through the model's algorithm, BOS/EOS are added per the
``add_*`` flags. Decoding follows ``llama_vocab::impl::detokenize``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from os import PathLike
from typing import Any

from libp2pia.errors import TokenizerError, UnsupportedError

from .tok_bpe import bpe_tokenize, load_merges
from .tok_decode import StreamDecoder, bpe_decode_text, clean_spaces
from .tok_pretok import pre_tokenizer
from .tok_spm import spm_tokenize

# --- token attributes (llama.h llama_token_attr) ------------------------------------
ATTR_UNDEFINED = 0
ATTR_UNKNOWN = 1 << 0
ATTR_UNUSED = 1 << 1
ATTR_NORMAL = 1 << 2
ATTR_CONTROL = 1 << 3
ATTR_USER_DEFINED = 1 << 4
ATTR_BYTE = 1 << 5

#: GGUF ``tokenizer.ggml.token_type`` -> attribute
_TYPE_ATTR = {1: ATTR_NORMAL, 2: ATTR_UNKNOWN, 3: ATTR_CONTROL, 4: ATTR_USER_DEFINED,
              5: ATTR_UNUSED, 6: ATTR_BYTE}

_SPECIAL = ATTR_UNKNOWN | ATTR_CONTROL   # hidden by decode() unless special=True
_SPACE = "\u2581"                        # SentencePiece's escaped space

# Texts llama.cpp recognises as end-of-turn / end-of-generation (llama-vocab.cpp).
_EOT_TEXTS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
              "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>",
              "<end_of_utterance>")
_EOG_TEXTS = frozenset(("<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
                        "<|flush|>", "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>",
                        "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
                        "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
                        "<｜end▁of▁sentence｜>", "[e~["))
_KEY = "tokenizer.ggml."


def _as_str(x: Any) -> str:
    return x.decode("utf-8") if isinstance(x, (bytes, bytearray)) else str(x)


class Tokenizer:
    """Encode/decode text exactly like llama.cpp for one GGUF vocabulary."""

    def __init__(self, meta: Mapping[str, Any]) -> None:
        model = meta.get(_KEY + "model")
        if model is None:
            raise TokenizerError("metadata has no tokenizer.ggml.model")
        self.model = _as_str(model)
        if self.model not in ("llama", "gpt2"):
            raise UnsupportedError(f"tokenizer model {self.model!r} (supported: llama, gpt2)")
        if _KEY + "tokens" not in meta:
            raise TokenizerError("metadata has no tokenizer.ggml.tokens")
        self.tokens: list[str] = [_as_str(t) for t in meta[_KEY + "tokens"]]
        n = len(self.tokens)
        self.token_id: dict[str, int] = {}
        for i, t in enumerate(self.tokens):
            if not t:     # llama.cpp renames empty tokens
                t = self.tokens[i] = f"[EMPTY_{i}]"
            if self.token_id.setdefault(t, i) != i:
                raise TokenizerError(f"duplicate token {t!r} at ids {self.token_id[t]} and {i}")
        scores = meta.get(_KEY + "scores")
        self.scores: list[float] = [float(s) for s in scores] if scores is not None else [0.0] * n
        types = meta.get(_KEY + "token_type")
        self.attrs: list[int] = ([_TYPE_ATTR.get(int(t), ATTR_UNDEFINED) for t in types]
                                 if types is not None else [ATTR_NORMAL] * n)
        if len(self.scores) < n or len(self.attrs) < n:
            raise TokenizerError(f"scores/token_type shorter than the {n} tokens")
        template = meta.get("tokenizer.chat_template")
        self.chat_template: str | None = _as_str(template) if template else None

        # defaults per model (llama_vocab::impl::load), then the GGUF flags
        pre = meta.get(_KEY + "pre")
        self.pre: str | None = _as_str(pre) if pre else None
        if self.model == "llama":
            self.merges: dict[tuple[str, str], int] = {}
            self.pretok = None
            self.add_space_prefix, self.clean_spaces, self.add_bos, self.add_eos = True, False, True, False
            self.ignore_merges = False
            ids = {"bos": 1, "eos": 2, "unk": 0}
        else:
            if _KEY + "merges" not in meta:
                raise TokenizerError("BPE vocabulary without tokenizer.ggml.merges")
            self.merges = load_merges(_as_str(m) for m in meta[_KEY + "merges"])
            self.pretok = pre_tokenizer(self.pre)
            self.add_space_prefix, self.clean_spaces = False, self.pretok.clean_spaces
            self.add_bos, self.add_eos = self.pretok.add_bos, False
            self.ignore_merges = self.pretok.ignore_merges
            ids = {"bos": 11, "eos": 11}
        self.add_space_prefix = bool(meta.get(_KEY + "add_space_prefix", self.add_space_prefix))
        self.add_bos = bool(meta.get(_KEY + "add_bos_token", self.add_bos))
        self.add_eos = bool(meta.get(_KEY + "add_eos_token", self.add_eos))
        ids = {k: v for k, v in ids.items() if v < n}
        for name, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("eot", "eot_token_id"),
                          ("eom", "eom_token_id"), ("unk", "unknown_token_id"),
                          ("pad", "padding_token_id"), ("fim_pad", "fim_pad_token_id"),
                          ("fim_rep", "fim_rep_token_id"), ("fim_sep", "fim_sep_token_id")):
            if _KEY + key in meta and 0 <= int(meta[_KEY + key]) < n:
                ids[name] = int(meta[_KEY + key])
        for flag, name in ((self.add_bos, "bos"), (self.add_eos, "eos")):
            if flag and name not in ids:
                raise TokenizerError(f"add_{name}_token is set but the vocabulary has no {name} id")
        self._special_ids = ids
        self._detect_end_of_generation()

        # special tokens cut out of the text first, longest first (ties: by id)
        self._special_cache = sorted(
            (i for i in range(n) if self.attrs[i] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN)),
            key=lambda i: -len(self.tokens[i].encode("utf-8")))
        self._pieces: list[bytes] = [self._piece(i) for i in range(n)]

    # --- construction ---------------------------------------------------------------
    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> Tokenizer:
        """From a ``{key: value}`` dict of GGUF metadata (a file's or a core fragment's)."""
        return cls(meta)

    @classmethod
    def from_gguf(cls, path: str | PathLike[str]) -> Tokenizer:
        """From a GGUF file's header (libp2pia's own header reader)."""
        return cls(read_tokenizer_metadata(path))

    def _detect_end_of_generation(self) -> None:
        """EOT and the end-of-generation set, found by token text like llama.cpp."""
        ids = self._special_ids
        if "eot" not in ids:
            for i, t in enumerate(self.tokens):
                if t in _EOT_TEXTS:
                    ids["eot"] = i
                    self.attrs[i] |= ATTR_CONTROL
                    break
        for i, t in enumerate(self.tokens):
            if self.attrs[i] & ATTR_CONTROL and "unused" in t:
                self.attrs[i] |= ATTR_UNUSED
        eog = {ids[k] for k in ("fim_pad", "fim_rep", "fim_sep") if k in ids}
        for i, t in enumerate(self.tokens):
            if t in _EOG_TEXTS:
                eog.add(i)
                self.attrs[i] |= ATTR_CONTROL
            elif t in ("<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"):
                self.attrs[i] = ATTR_USER_DEFINED   # gpt-oss: always rendered
        eog.update(ids[k] for k in ("eos", "eot", "eom") if k in ids)
        texts = {self.tokens[i]: i for i in eog}
        # o200k_harmony / solar-open: "<|end|>" ends a message, not the generation
        if "<|end|>" in texts and (("<|return|>" in texts and "<|call|>" in texts)
                                   or ("<|calls|>" in texts and "<|flush|>" in texts)):
            eog.discard(texts["<|end|>"])
            self.attrs[texts["<|end|>"]] = ATTR_USER_DEFINED
        self.eog_ids: frozenset[int] = frozenset(eog)

    # --- special ids ------------------------------------------------------------------
    @property
    def n_vocab(self) -> int:
        return len(self.tokens)

    @property
    def bos_id(self) -> int | None:
        return self._special_ids.get("bos")

    @property
    def eos_id(self) -> int | None:
        return self._special_ids.get("eos")

    @property
    def eot_id(self) -> int | None:
        return self._special_ids.get("eot")

    @property
    def unk_id(self) -> int | None:
        return self._special_ids.get("unk")

    @property
    def eos_ids(self) -> frozenset[int]:
        """Every token that ends generation (eos, eot, eom, ``<end_of_turn>``, ...)."""
        return self.eog_ids

    def is_eog(self, token: int) -> bool:
        return token in self.eog_ids

    def is_control(self, token: int) -> bool:
        return bool(self.attrs[token] & ATTR_CONTROL)

    # --- encode -------------------------------------------------------------------------
    def encode(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Token ids of ``text``, like ``llama_tokenize(add_special, parse_special)``.

        ``parse_special`` turns control-token text (``<start_of_turn>``) into those
        tokens; user-defined tokens (Gemma's runs of newlines) are always matched.
        """
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise TokenizerError(f"text is not encodable as UTF-8: {exc}") from exc
        fragments = self._partition(text, parse_special) if text else []
        out: list[int] = []
        if add_special and self.add_bos:
            out.append(self._special_ids["bos"])
        if self.model == "llama":
            prev_special = True
            for frag in fragments:
                if isinstance(frag, int):
                    out.append(frag)
                    prev_special = True
                    continue
                if self.add_space_prefix and prev_special:
                    frag = " " + frag
                out.extend(spm_tokenize(frag.replace(" ", _SPACE), self.token_id, self.scores,
                                        self._byte_token))
                prev_special = False
        else:
            for frag in fragments:
                if isinstance(frag, int):
                    out.append(frag)
                else:
                    out.extend(bpe_tokenize(frag, self.pretok.regexes, self.token_id, self.merges,
                                            self.ignore_merges))
        if add_special and self.add_eos:
            out.append(self._special_ids["eos"])
        return out

    def _partition(self, text: str, parse_special: bool) -> list[str | int]:
        """tokenizer_st_partition: cut special tokens out, longest first, left to right."""
        frags: list[str | int] = [text]
        for tid in self._special_cache:
            if not parse_special and self.attrs[tid] & (ATTR_CONTROL | ATTR_UNKNOWN):
                continue
            needle = self.tokens[tid]
            if not any(isinstance(f, str) and needle in f for f in frags):
                continue
            new: list[str | int] = []
            for f in frags:
                if isinstance(f, int) or needle not in f:
                    new.append(f)
                    continue
                parts = f.split(needle)
                for k, p in enumerate(parts):
                    if k:
                        new.append(tid)
                    if p:
                        new.append(p)
            frags = new
        return frags

    def _byte_token(self, b: int) -> int:
        """SPM byte fallback: ``<0xXX>``, else the byte itself as a token."""
        tid = self.token_id.get(f"<0x{b:02X}>")
        if tid is None:
            tid = self.token_id.get(chr(b)) if b < 0x80 else None
        if tid is None:
            raise TokenizerError(f"vocabulary has no byte token for 0x{b:02X}")
        return tid

    # --- decode -------------------------------------------------------------------------
    def _piece(self, tid: int) -> bytes:
        """token_to_piece(special=True): the bytes one token stands for."""
        attr, text = self.attrs[tid], self.tokens[tid]
        if attr & (_SPECIAL | ATTR_USER_DEFINED):
            return text.encode("utf-8")
        if attr & ATTR_NORMAL:
            if self.model == "llama":
                return text.replace(_SPACE, " ").encode("utf-8")
            return bpe_decode_text(text)
        if attr & ATTR_BYTE:
            return bytes([int(text[3:5], 16)])
        return b""

    def token_to_piece(self, token: int, special: bool = False) -> bytes:
        """Bytes of one token; control/unknown tokens are empty unless ``special``."""
        if not 0 <= token < len(self.tokens):
            raise TokenizerError(f"token id {token} outside the vocabulary of {len(self.tokens)}")
        if not special and self.attrs[token] & _SPECIAL:
            return b""
        return self._pieces[token]

    def decode_bytes(self, ids: Iterable[int], special: bool = False,
                     remove_special: bool = False) -> bytes:
        """llama_detokenize(remove_special, unparse_special=special), as bytes."""
        ids = list(ids)
        remove_space = self.add_space_prefix
        if remove_special and self.add_bos and ids and ids[0] == self.bos_id:
            remove_space = False
            ids = ids[1:]
        if remove_special and self.add_eos and ids and ids[-1] == self.eos_id:
            ids = ids[:-1]
        parts = []
        for tid in ids:
            piece = self.token_to_piece(tid, special)
            if remove_space and piece.startswith(b" "):
                piece = piece[1:]
            remove_space = False
            parts.append(piece)
        out = b"".join(parts)
        return clean_spaces(out) if self.clean_spaces else out

    def decode(self, ids: Iterable[int], special: bool = False, remove_special: bool = False) -> str:
        """Text of ``ids`` (invalid UTF-8 from split byte tokens becomes U+FFFD)."""
        return self.decode_bytes(ids, special, remove_special).decode("utf-8", errors="replace")

    def stream(self, special: bool = False) -> StreamDecoder:
        """An incremental detokenizer for generated tokens."""
        return StreamDecoder(self, special)

    # --- chat ---------------------------------------------------------------------------
    def apply_chat_template(self, messages: list[Mapping[str, Any]],
                            add_generation_prompt: bool = True, **kwargs: Any) -> str:
        """Prompt text of a conversation (see :mod:`libp2pia.model.chat`)."""
        from .chat import render_chat
        return render_chat(self, messages, add_generation_prompt, **kwargs)

    def encode_chat(self, messages: list[Mapping[str, Any]],
                    add_generation_prompt: bool = True, **kwargs: Any) -> list[int]:
        """Token ids of a conversation: template text, special tokens parsed, one BOS."""
        text = self.apply_chat_template(messages, add_generation_prompt, **kwargs)
        bos = self.tokens[self.bos_id] if self.bos_id is not None else None
        add_special = not (bos and text.startswith(bos))
        return self.encode(text, add_special=add_special, parse_special=True)


def read_tokenizer_metadata(path: str | PathLike[str]) -> dict[str, Any]:
    """The ``tokenizer.*`` and ``general.*`` keys of a GGUF file (header only)."""
    from libp2pia.gguf import read_header

    kv = read_header(path, require_data=False).kv
    return {k: v for k, v in kv.items() if k.startswith(("tokenizer.", "general."))}
