"""Tokenizer agreement with llama.cpp (golden fixture + live), round trips, chat templates.

The fixture tests/golden/tokenizer.json is written by
benchmarks/reference/make_tokenizer_golden.py with llama-cpp-python.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from libp2pia.errors import TokenizerError, UnsupportedError
from libp2pia.model.chat import GEMMA_TEMPLATE
from libp2pia.model.tokenizer import ATTR_USER_DEFINED, Tokenizer, read_tokenizer_metadata

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = json.loads((ROOT / "tests" / "golden" / "tokenizer.json").read_text(encoding="utf-8"))
VOCABS = list(GOLDEN["vocabs"])
SYNTHETIC = [v for v in VOCABS if v != "gemma"]


def _golden_script():
    spec = importlib.util.spec_from_file_location(
        "make_tokenizer_golden", ROOT / "benchmarks" / "reference" / "make_tokenizer_golden.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def synthetic_metadata(name: str) -> dict:
    v = GOLDEN["vocabs"][name]
    return {**GOLDEN["metadata"][v["metadata"]], **v["overrides"]}


@pytest.fixture(scope="session")
def gemma_tokenizer(gemma_path) -> Tokenizer:
    return Tokenizer.from_gguf(gemma_path)


@pytest.fixture(scope="module")
def tokenizers(request) -> dict:
    """Built lazily: the Gemma one costs a header read."""
    cache: dict[str, Tokenizer] = {}

    def get(name: str) -> Tokenizer:
        if name not in cache:
            cache[name] = (request.getfixturevalue("gemma_tokenizer") if name == "gemma"
                           else Tokenizer.from_metadata(synthetic_metadata(name)))
        return cache[name]
    return get


def _bytes(x) -> bytes:
    return bytes.fromhex(x["hex"]) if isinstance(x, dict) else x.encode("utf-8")


# --- agreement with the fixture -------------------------------------------------------------
@pytest.mark.parametrize("name", VOCABS)
def test_encode_matches_llama_cpp(tokenizers, name):
    tok = tokenizers(name)
    cases = GOLDEN["vocabs"][name]["cases"]
    bad = [(c["text"], c["add_special"], c["parse_special"])
           for c in cases if tok.encode(c["text"], c["add_special"], c["parse_special"]) != c["ids"]]
    assert not bad, f"{len(bad)}/{len(cases)} differ from llama.cpp, first: {bad[:3]}"


@pytest.mark.parametrize("name", VOCABS)
def test_decode_matches_llama_cpp(tokenizers, name):
    tok = tokenizers(name)
    for c in GOLDEN["vocabs"][name]["cases"]:
        plain = _bytes(c["detok"])
        assert tok.decode_bytes(c["ids"]) == plain, c["text"]
        assert tok.decode_bytes(c["ids"], special=True) == _bytes(c.get("detok_special", c["detok"]))
        assert tok.decode_bytes(c["ids"], remove_special=True) == _bytes(c.get("detok_remove", c["detok"]))


@pytest.mark.parametrize("name", VOCABS)
def test_end_of_generation_set_matches_llama_cpp(tokenizers, name):
    assert sorted(tokenizers(name).eos_ids) == GOLDEN["vocabs"][name]["eog"]


def test_gemma_special_ids(gemma_tokenizer):
    tok = gemma_tokenizer
    assert tok.tokens[tok.bos_id] == "<bos>" and tok.tokens[tok.eos_id] == "<eos>"
    assert tok.tokens[tok.eot_id] == "<end_of_turn>" and tok.is_eog(tok.eot_id)
    assert not tok.add_space_prefix and tok.add_bos


# --- chat -----------------------------------------------------------------------------------
@pytest.mark.parametrize("i", range(len(GOLDEN["chat_gemma"])))
def test_gemma_chat_matches_llama_cpp_builtin(gemma_tokenizer, i):
    case = GOLDEN["chat_gemma"][i]
    text = gemma_tokenizer.apply_chat_template(case["messages"])
    assert text == "<bos>" + case["llama_cpp"]    # llama.cpp adds the BOS when tokenizing
    ids = gemma_tokenizer.encode_chat(case["messages"])
    assert ids == gemma_tokenizer.encode(case["llama_cpp"], add_special=True, parse_special=True)
    assert ids.count(gemma_tokenizer.bos_id) == 1
    assert ids[-3:] == gemma_tokenizer.encode("<start_of_turn>model\n", False, True)


def _spm_with_template(template: str) -> Tokenizer:
    return Tokenizer.from_metadata({**synthetic_metadata("spm"), "tokenizer.chat_template": template})


def test_chat_template_from_metadata_renders_with_hf_settings():
    tmpl = ("{{ bos_token }}{% for m in messages %}\n  {% if m.role == 'user' %}"
            "[U]{{ m.content }}{% else %}[A]{{ m.content }}{% endif %}\n{% endfor %}"
            "{% if add_generation_prompt %}[A]{% endif %}")
    tok = _spm_with_template(tmpl)
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    # trim_blocks + lstrip_blocks: the newlines/indent around the tags vanish
    assert tok.apply_chat_template(msgs) == "<s>[U]hi[A]yo[A]"
    assert tok.apply_chat_template(msgs, add_generation_prompt=False) == "<s>[U]hi[A]yo"
    assert tok.encode_chat(msgs).count(tok.bos_id) == 1


def test_chat_template_helpers_and_errors():
    tok = _spm_with_template("{{ raise_exception('no ' + messages[0].role) }}")
    with pytest.raises(TokenizerError, match="no system"):
        tok.apply_chat_template([{"role": "system", "content": "x"}])
    tok = _spm_with_template("{{ strftime_now('%Y') | length }}|{{ messages | tojson }}")
    assert tok.apply_chat_template([{"role": "user", "content": "é"}]) == \
        '4|[{"role": "user", "content": "é"}]'
    with pytest.raises(TokenizerError):      # the sandbox refuses attribute games
        _spm_with_template("{{ messages.__class__.__mro__ }}").apply_chat_template(
            [{"role": "user", "content": "x"}])
    with pytest.raises(TokenizerError, match="role"):
        tok.apply_chat_template([{"content": "x"}])


def test_builtin_gemma_template_only_without_metadata_template():
    meta = synthetic_metadata("spm")
    assert Tokenizer.from_metadata(meta).chat_template is None
    assert "<start_of_turn>" in GEMMA_TEMPLATE


# --- round trips and streaming --------------------------------------------------------------
_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\u2581"),
                max_size=40)


@pytest.mark.parametrize("name", ["spm", "bpe-tekken", "bpe-qwen2"])  # no clean_spaces
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_TEXT)
def test_round_trip(tokenizers, name, text):
    tok = tokenizers(name)
    # llama.cpp splits user-defined pieces (the SPM vocab's "\n\n") out before SPM and gives the
    # text after one a fresh space prefix, so "\n\n0" comes back as "\n\n 0": lossy in llama.cpp too.
    # That behaviour is pinned elsewhere, not skipped: test_encode/decode_matches_llama_cpp check
    # llama.cpp's ids and text for "line2\n\nline4" -> "line2\n\n line4" (golden corpus, in CI) and
    # test_live_llama_cpp_agreement fuzzes "\n\n" against llama.cpp itself. The lossless property is
    # claimed only for texts without a user-defined piece.
    assume(not any(a & ATTR_USER_DEFINED and t in text for t, a in zip(tok.tokens, tok.attrs)))
    assert tok.decode(tok.encode(text, add_special=False)) == text
    with_special = tok.encode(text)
    if tok.add_bos:
        assert with_special[0] == tok.bos_id
    # a BOS keeps the SPM prefix space in the text (llama.cpp strips it only at the very start)
    prefix = " " if tok.add_space_prefix and tok.add_bos and text else ""
    assert tok.decode(with_special, remove_special=True) == prefix + text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_TEXT)
def test_round_trip_gemma(gemma_tokenizer, text):
    assert gemma_tokenizer.decode(gemma_tokenizer.encode(text, add_special=False)) == text


@pytest.mark.parametrize("name", ["spm", "bpe-tekken"])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_TEXT)
def test_stream_decoder_never_splits_a_character(tokenizers, name, text):
    tok = tokenizers(name)
    ids = tok.encode(text, add_special=False)
    dec = tok.stream()
    chunks = [dec.feed(t) for t in ids] + [dec.flush()]
    # a stream continues a prompt, so no SPM prefix space is stripped: as if after a BOS
    assert "".join(chunks) == tok.decode([tok.bos_id, *ids])
    assert all("\ufffd" not in c for c in chunks) or "\ufffd" in text


def test_stream_decoder_holds_back_byte_tokens():
    tok = Tokenizer.from_metadata(synthetic_metadata("spm"))
    ids = tok.encode("🦀", add_special=False)     # no such piece: ▁ + four <0xXX> tokens
    assert len(ids) == 5
    dec = tok.stream()
    assert [dec.feed(t) for t in ids] == [" ", "", "", "", "🦀"]


# --- malformed metadata -----------------------------------------------------------------------
def test_bad_metadata_is_refused():
    meta = synthetic_metadata("spm")
    with pytest.raises(TokenizerError):
        Tokenizer.from_metadata({k: v for k, v in meta.items() if k != "tokenizer.ggml.model"})
    with pytest.raises(UnsupportedError):
        Tokenizer.from_metadata({**meta, "tokenizer.ggml.model": "t5"})
    with pytest.raises(UnsupportedError, match="pre-tokenizer"):
        Tokenizer.from_metadata({**synthetic_metadata("bpe-tekken"), "tokenizer.ggml.pre": "nope"})
    with pytest.raises(TokenizerError, match="duplicate"):
        toks = meta["tokenizer.ggml.tokens"]
        Tokenizer.from_metadata({**meta, "tokenizer.ggml.tokens": toks[:-1] + [toks[5]]})
    with pytest.raises(TokenizerError, match="merges"):
        Tokenizer.from_metadata({k: v for k, v in synthetic_metadata("bpe-tekken").items()
                                 if k != "tokenizer.ggml.merges"})
    with pytest.raises(TokenizerError):
        Tokenizer.from_metadata(meta).decode([10**9])


def test_metadata_from_a_gguf_file(tmp_path):
    path = tmp_path / "v.gguf"
    _golden_script().write_vocab_gguf(synthetic_metadata("bpe-tekken"), str(path))
    tok = Tokenizer.from_gguf(path)
    case = GOLDEN["vocabs"]["bpe-tekken"]["cases"][7]
    assert tok.encode(case["text"], case["add_special"], case["parse_special"]) == case["ids"]
    assert read_tokenizer_metadata(path)["tokenizer.ggml.pre"] == "tekken"


# --- live comparison with llama.cpp ----------------------------------------------------------
_LIVE_TEXT = st.lists(st.one_of(
    # Cn: unassigned in Python 3.11's Unicode 14 but letters in llama.cpp's newer tables (e.g. CJK
    # Extension H, U+31350..): the one known disagreement, docs/tokenizer.md
    st.characters(blacklist_categories=("Cs", "Cn")),
    st.sampled_from(["<start_of_turn>", "<end_of_turn>", "<bos>", "<s>", "</s>", "[INST]", "\n\n",
                     "  ", "\t\t", "<tag>", "'s", "'LL", "<0x41>", "<unused3>", "<table>", " a",
                     "The", "ing", "é", "你好", "\r\n"])),
    max_size=20).map("".join)


@pytest.fixture(scope="module")
def live(tmp_path_factory, gemma_path):
    pytest.importorskip("llama_cpp", reason="live comparison needs llama-cpp-python")
    script = _golden_script()
    refs = {"gemma": script.LlamaVocab(str(gemma_path))}
    for name in SYNTHETIC:
        path = tmp_path_factory.mktemp("vocab") / f"{name}.gguf"
        script.write_vocab_gguf(synthetic_metadata(name), str(path))
        refs[name] = script.LlamaVocab(str(path))
    return refs


@pytest.mark.llama
@pytest.mark.parametrize("name", VOCABS)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_LIVE_TEXT, add_special=st.booleans(), parse_special=st.booleans())
def test_live_llama_cpp_agreement(live, tokenizers, name, text, add_special, parse_special):
    tok, ref = tokenizers(name), live[name]
    ids = ref.tokenize(text, add_special, parse_special)
    assert tok.encode(text, add_special, parse_special) == ids
    assert tok.decode_bytes(ids, special=parse_special) == ref.detokenize(ids, False, parse_special)
