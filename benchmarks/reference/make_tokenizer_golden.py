"""Write tests/golden/tokenizer.json: llama.cpp's token ids for a fixed corpus.

Needs llama-cpp-python (``pip install libp2pia[reference]``). Vocabularies:

| name             | what                                                              |
|------------------|-------------------------------------------------------------------|
| `gemma`          | the real Gemma 3 270M GGUF (SPM, add_space_prefix=false, user-defined whitespace runs) |
| `spm`            | a synthetic SentencePiece vocab written here (byte fallback, add_space_prefix=true) |
| `bpe-<pre>`      | a synthetic byte-level BPE vocab (merges learned here on the corpus) under the pre-tokenizers `tekken`, `llama-bpe`, `gpt-2`, `qwen2`, `default` |

The synthetic vocabularies' metadata is stored in the fixture itself, so tests
rebuild the same tokenizer without this script or llama.cpp. For each corpus
text and each (add_special, parse_special) mode the fixture holds llama.cpp's
ids and its detokenization of them; plus chat renderings from llama.cpp's
built-in Gemma template.

    python benchmarks/reference/make_tokenizer_golden.py [--out tests/golden/tokenizer.json]
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CORPUS = [
    "",
    "Hello world",
    "The capital of France is",
    " leading space",
    "trailing space ",
    "   three leading spaces",
    "double  space and   triple",
    "Le cœur a ses raisons que la raison ne connaît point. À bientôt, Hélène !",
    "Straße, Größe, Übermäßig: „Anführungszeichen“ und Ärger über Öl.",
    "我爱自然语言处理。今天天气很好！",
    "日本語のテキストとカタカナ、한국어 텍스트도 있어요.",
    "Привет, мир! Ελληνικά γράμματα. مرحبا بالعالم",
    "Emoji: 🙂😀🎉 family 👨\u200d👩\u200d👧 flag 🇫🇷 skin 👍🏽",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) {\n\tprintf(\"%d\\n\", i);\n}",
    "x = {'a': [1, 2, 3], \"b\": None}  # comment",
    "line1\nline2\n\nline4\n\n\nline7\n\n\n\n\n\nend",
    "tabs\tand\t\ttabs\t\t\tand spaces    \t  mixed",
    "\n\n\n",
    "    ",
    "\r\nwindows\r\nline endings\r\n",
    "Numbers 1234567890 and 3.14159, 1,000,000 and 2024-01-15",
    "I'm sure you're right, they've said it's what we'd do. DON'T SHOUT, I'LL Go",
    "HTTPServer camelCase snake_case kebab-case SCREAMING_CASE McDonald's iPhone",
    "Punctuation!!! Really??? Wait... (yes) [no] {maybe} <tag> — dash – en",
    "URL: https://example.com/path?query=1&b=2#frag and mail@example.org",
    "Combining: e\u0301 a\u0300 n\u0303; NBSP:\u00a0here; ideographic\u3000space; zw\u200bsp",
    "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
    "<bos>text after a bos<eos>",
    "<s>[INST] Bonjour [/INST] Salut</s>",
    "literal <0x41> byte token text and \u2581 lower block",
    "<table><tr><td>cell</td></tr></table>",
    "Ünïcödé ÀÉÎÕÜ àéîõü ÇçÑñ",
    "a" * 40 + " " + "ab" * 20,
    "!!!???...,,,;;;:::",
    "mixed 混合 text with 中文 and English 和 emoji 🚀 together",
]

MODES = [(True, False), (False, False), (True, True), (False, True)]

CHATS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are terse. "},
     {"role": "user", "content": " What is the capital of France?\n"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can I help?"},
     {"role": "user", "content": "Écris un haïku 🌸"}],
]

# Extra training text for the synthetic vocabularies (more merges than the corpus alone).
TRAIN_EXTRA = (
    "the of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when if "
    "the quick brown fox jumps over the lazy dog. The Quick Brown Fox! return self.value "
    "import numpy as np\nclass Foo:\n    def __init__(self):\n        pass\n"
    "la le les des une est dans pour que qui pas sur avec der die das und ist nicht mit "
)


# --- synthetic vocabularies -----------------------------------------------------------
def spm_vocab() -> dict:
    """A SentencePiece vocab: specials, user-defined, 256 byte tokens, pieces with scores."""
    from gguf import TokenType

    toks, scores, types = [], [], []

    def add(t: str, s: float, ty: int) -> None:
        if t not in toks:
            toks.append(t), scores.append(s), types.append(int(ty))

    add("<unk>", 0.0, TokenType.UNKNOWN)
    add("<s>", 0.0, TokenType.CONTROL)
    add("</s>", 0.0, TokenType.CONTROL)
    add("<start_of_turn>", 0.0, TokenType.CONTROL)
    add("<end_of_turn>", 0.0, TokenType.CONTROL)
    add("\n\n", 0.0, TokenType.USER_DEFINED)
    add("<tag>", 0.0, TokenType.USER_DEFINED)
    for b in range(256):
        add(f"<0x{b:02X}>", 0.0, TokenType.BYTE)
    chars = ["\u2581"] + [chr(c) for c in range(33, 127)] + list("éèàçüöäßœÀÉ你好我爱中文")
    for i, c in enumerate(chars):
        add(c, -1000.0 - i, TokenType.NORMAL)
    # frequent words and all their prefixes (SPM can only reach a piece through its prefixes)
    words = collections.Counter(("\u2581" + w) for w in (TRAIN_EXTRA + " ".join(CORPUS)).split())
    k = 0
    for w, cnt in words.most_common(400):
        for n in range(2, min(len(w), 8) + 1):
            add(w[:n], -float(k) / 7.0 - 10.0 / cnt, TokenType.NORMAL)
            k += 1
    return {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": toks,
            "tokenizer.ggml.scores": scores, "tokenizer.ggml.token_type": types,
            "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
            "tokenizer.ggml.unknown_token_id": 0, "tokenizer.ggml.add_bos_token": True,
            "tokenizer.ggml.add_eos_token": False}


def bpe_vocab(n_merges: int = 800) -> dict:
    """A byte-level BPE vocab with merges learned on the corpus (tekken-style specials first)."""
    from gguf import TokenType

    from libp2pia.model.tok_pretok import TEKKEN, split_words
    from libp2pia.model.tok_unicode import BYTE_TO_UNICODE, byte_encode

    specials = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"]
    toks = list(specials) + [BYTE_TO_UNICODE[b] for b in range(256)]
    types = [int(TokenType.UNKNOWN)] + [int(TokenType.CONTROL)] * (len(specials) - 1)
    types += [int(TokenType.NORMAL)] * 256
    text = TRAIN_EXTRA + "\n".join(CORPUS) * 2
    words = collections.Counter(byte_encode(w) for w in split_words(text, (TEKKEN,)))
    seqs = {w: list(w) for w in words}
    merges: list[str] = []
    for _ in range(n_merges):
        pairs: collections.Counter = collections.Counter()
        for w, cnt in words.items():
            s = seqs[w]
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += cnt
        if not pairs:
            break
        (a, b), cnt = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        if cnt < 2:
            break
        merges.append(f"{a} {b}")
        if a + b not in toks:
            toks.append(a + b)
            types.append(int(TokenType.NORMAL))
        for w in words:
            s, out, i = seqs[w], [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    return {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "tekken",
            "tokenizer.ggml.tokens": toks, "tokenizer.ggml.token_type": types,
            "tokenizer.ggml.merges": merges, "tokenizer.ggml.bos_token_id": 1,
            "tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.unknown_token_id": 0}


def write_vocab_gguf(meta: dict, path: str) -> None:
    """A vocab-only GGUF (llama hyper-parameters, no tensors) that llama.cpp can load."""
    import gguf

    w = gguf.GGUFWriter(path, "llama")
    for k, v in ((w.add_context_length, 512), (w.add_embedding_length, 64), (w.add_block_count, 1),
                 (w.add_feed_forward_length, 128), (w.add_head_count, 4),
                 (w.add_head_count_kv, 4), (w.add_rope_dimension_count, 16)):
        k(v)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(meta["tokenizer.ggml.tokens"]))
    w.add_tokenizer_model(meta["tokenizer.ggml.model"])
    if "tokenizer.ggml.pre" in meta:
        w.add_tokenizer_pre(meta["tokenizer.ggml.pre"])
    w.add_token_list(meta["tokenizer.ggml.tokens"])
    if "tokenizer.ggml.scores" in meta:
        w.add_token_scores(meta["tokenizer.ggml.scores"])
    w.add_token_types(meta["tokenizer.ggml.token_type"])
    if "tokenizer.ggml.merges" in meta:
        w.add_token_merges(meta["tokenizer.ggml.merges"])
    w.add_bos_token_id(meta["tokenizer.ggml.bos_token_id"])
    w.add_eos_token_id(meta["tokenizer.ggml.eos_token_id"])
    w.add_unk_token_id(meta["tokenizer.ggml.unknown_token_id"])
    for key, fn in (("tokenizer.ggml.add_bos_token", w.add_add_bos_token),
                    ("tokenizer.ggml.add_eos_token", w.add_add_eos_token),
                    ("tokenizer.ggml.add_space_prefix", w.add_add_space_prefix)):
        if key in meta:
            fn(meta[key])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# --- llama.cpp side -------------------------------------------------------------------
class LlamaVocab:
    """llama.cpp's tokenizer of one GGUF (vocab_only)."""

    def __init__(self, path: str) -> None:
        import llama_cpp
        from llama_cpp import Llama

        self.lc = llama_cpp
        self.llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
        self.vocab = llama_cpp.llama_model_get_vocab(self.llm.model)

    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=parse_special)

    def detokenize(self, ids: list[int], remove_special: bool, unparse_special: bool) -> bytes:
        n = max(64, 8 * len(ids) + 64)
        buf = ctypes.create_string_buffer(n)
        arr = (self.lc.llama_token * max(1, len(ids)))(*ids)
        got = self.lc.llama_detokenize(self.vocab, arr, len(ids), buf, n, remove_special,
                                       unparse_special)
        if got < 0:   # too small: llama.cpp says how much it needs
            n = -got
            buf = ctypes.create_string_buffer(n)
            got = self.lc.llama_detokenize(self.vocab, arr, len(ids), buf, n, remove_special,
                                           unparse_special)
        return buf.raw[:got]

    def eog(self, n_vocab: int) -> list[int]:
        return [i for i in range(n_vocab) if self.lc.llama_vocab_is_eog(self.vocab, i)]


def chat_builtin(name: bytes, messages: list[dict], add_ass: bool = True) -> str:
    import llama_cpp

    arr = (llama_cpp.llama_chat_message * len(messages))()
    keep = []
    for i, m in enumerate(messages):
        role, content = m["role"].encode(), m["content"].encode()
        keep += [role, content]
        arr[i].role, arr[i].content = role, content
    buf = ctypes.create_string_buffer(1 << 16)
    n = llama_cpp.llama_chat_apply_template(name, arr, len(messages), add_ass, buf, 1 << 16)
    return buf.raw[:n].decode("utf-8")


def _jsonable(b: bytes) -> str | dict:
    """Bytes as text when they are valid UTF-8, else as hex."""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": b.hex()}


def golden_for(path: str, n_vocab: int) -> dict:
    ref = LlamaVocab(path)
    cases = []
    for text in CORPUS:
        for add_special, parse_special in MODES:
            ids = ref.tokenize(text, add_special, parse_special)
            case = {"text": text, "add_special": add_special, "parse_special": parse_special,
                    "ids": ids}
            # llama_detokenize(remove_special, unparse_special); variants only where they differ
            plain = ref.detokenize(ids, False, False)
            case["detok"] = _jsonable(plain)
            for key, flags in (("detok_special", (False, True)), ("detok_remove", (True, False))):
                other = ref.detokenize(ids, *flags)
                if other != plain:
                    case[key] = _jsonable(other)
            cases.append(case)
    return {"eog": ref.eog(n_vocab), "cases": cases}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "tests" / "golden" / "tokenizer.json"))
    ap.add_argument("--gemma", default=None, help="Gemma GGUF (default: libp2pia.default_model_path())")
    args = ap.parse_args()
    import llama_cpp

    from libp2pia import default_model_path

    gemma = args.gemma or str(default_model_path())
    out: dict = {"llama_cpp_python": llama_cpp.__version__, "corpus": CORPUS, "vocabs": {}}
    out["vocabs"]["gemma"] = {"source": "gemma_path", **golden_for(gemma, 262144)}
    out["chat_gemma"] = [{"messages": m, "llama_cpp": chat_builtin(b"gemma", m)} for m in CHATS]
    # synthetic vocabularies: metadata stored once, each vocab = base + overrides
    out["metadata"] = {"spm": spm_vocab(), "bpe": bpe_vocab()}
    synthetic = {"spm": ("spm", {})}
    for pre in ("tekken", "llama-bpe", "gpt-2", "qwen2", "default"):
        synthetic[f"bpe-{pre}"] = ("bpe", {"tokenizer.ggml.pre": pre})
    with tempfile.TemporaryDirectory() as tmp:
        for name, (base, overrides) in synthetic.items():
            meta = {**out["metadata"][base], **overrides}
            path = os.path.join(tmp, f"{name}.gguf")
            write_vocab_gguf(meta, path)
            out["vocabs"][name] = {"metadata": base, "overrides": overrides,
                                   **golden_for(path, len(meta["tokenizer.ggml.tokens"]))}
            print(f"{name}: {len(meta['tokenizer.ggml.tokens'])} tokens", file=sys.stderr)
    tmp_out = args.out + ".tmp"
    with open(tmp_out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
    os.replace(tmp_out, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
