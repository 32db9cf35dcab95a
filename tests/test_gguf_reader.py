"""Our GGUF header parser against gguf-py's reader, and every malformed header we must reject."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libp2pia import limits
from libp2pia.errors import GGUFError, UnsupportedError
from libp2pia.gguf import KV, StreamWriter, TensorSpec, hparams, parse_header, read_header, tensor_role
from libp2pia.gguf.synth import SynthConfig, write_synthetic


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("rd") / "dense.gguf", SynthConfig(n_vocab=320))


@pytest.fixture(scope="module")
def gemma_ref(gemma_path: Path) -> GGUFReader:
    return GGUFReader(gemma_path)   # slow (~10-30 s: 262k tokens), so once per module


def test_gemma_header_matches_gguf_py(gemma_path: Path, gemma_ref: GGUFReader) -> None:
    ours = read_header(gemma_path)
    ref = gemma_ref
    assert ours.version == 3 and ours.architecture == "gemma3"
    assert ours.data_start == ref.data_offset
    assert [t.name for t in ours.tensors] == [t.name for t in ref.tensors]
    for a, b in zip(ours.tensors, ref.tensors):
        assert list(a.shape) == [int(x) for x in b.shape]
        assert a.qtype == b.tensor_type
        assert a.abs_offset == b.data_offset
        assert a.n_bytes == b.n_bytes
    tokens = ref.fields["tokenizer.ggml.tokens"]
    assert ours.kv["tokenizer.ggml.tokens"][:50] == [bytes(tokens.parts[i]).decode() for i in tokens.data[:50]]
    assert len(ours.kv["tokenizer.ggml.tokens"]) == len(tokens.data)


def test_gemma_hparams_and_roles(gemma_path: Path, gemma_ref: GGUFReader) -> None:
    header = read_header(gemma_path)
    hp = hparams(header)
    ref = gemma_ref
    val = lambda k: ref.fields[k].parts[ref.fields[k].data[0]].tolist()[0]  # noqa: E731
    assert hp["n_embd"] == val("gemma3.embedding_length")
    assert hp["n_layer"] == val("gemma3.block_count")
    assert hp["n_head"] == val("gemma3.attention.head_count")
    assert hp["n_head_kv"] == val("gemma3.attention.head_count_kv")
    assert hp["head_dim_k"] == val("gemma3.attention.key_length")
    assert hp["vocab_size"] == len(ref.fields["tokenizer.ggml.tokens"].data)
    roles = {t.name: tensor_role(t) for t in header.tensors}
    assert not [n for n, r in roles.items() if r.role == "unknown"]
    assert roles["blk.3.attn_q_norm.weight"].role == "attention"
    assert roles["blk.3.post_ffw_norm.weight"].role == "norm"
    assert roles["token_embd.weight"].role == "vocab"


def test_role_table_expert_layouts() -> None:
    from libp2pia.gguf import TensorInfo

    def role(name: str, shape: tuple[int, ...]) -> tuple:
        r = tensor_role(TensorInfo(name, shape, GGMLQuantizationType.F32, 0, 0))
        return r.role, r.part, r.layer, r.expert, r.stacked

    assert role("blk.7.ffn_down_exps.weight", (64, 32, 8)) == ("expert", "down", 7, None, True)
    assert role("blk.7.ffn_gate.5.weight", (32, 64)) == ("expert", "gate", 7, 5, False)
    assert role("blk.2.ffn_up_shexp.weight", (32, 64)) == ("shared_expert", "up", 2, None, False)
    assert role("blk.2.attn_k_b.weight", (128, 512, 128)) == ("attention", "k_b", 2, None, False)
    assert role("blk.2.attn_kv_a_mqa.weight", (32, 64)) == ("attn_shared", "kv_a", 2, None, False)
    assert role("blk.2.ffn_gate_inp.weight", (32, 8)) == ("router", "gate_inp", 2, None, False)
    assert role("blk.2.something_new.weight", (32, 8))[0] == "unknown"


def test_unsupported_architecture(tmp_path: Path) -> None:
    p = tmp_path / "x.gguf"
    p.write_bytes(_header_bytes([KV("general.architecture", GGUFValueType.STRING, "bert")], []))
    with pytest.raises(UnsupportedError, match="unsupported architecture 'bert'"):
        hparams(read_header(p))


def test_writer_output_is_read_by_gguf_py(tmp_path: Path) -> None:
    kvs = [KV("general.architecture", GGUFValueType.STRING, "llama"), KV("a.u32", GGUFValueType.UINT32, 7),
           KV("a.arr", GGUFValueType.ARRAY, [1, 2, 3], GGUFValueType.INT64),
           KV("a.strs", GGUFValueType.ARRAY, ["x", "yz"], GGUFValueType.STRING), KV("a.f", GGUFValueType.FLOAT32, 0.5)]
    tensors = [TensorSpec("t0", (32, 3), GGMLQuantizationType.Q8_0), TensorSpec("t1", (5,), GGMLQuantizationType.F32)]
    data = [np.arange(3 * 34, dtype=np.uint8), np.arange(5, dtype=np.float32)]
    p = tmp_path / "w.gguf"
    with open(p, "wb") as f:
        w = StreamWriter(f, kvs, tensors)
        for d in data:
            w.write(d)
        w.close()
    ref = GGUFReader(p)
    assert [t.name for t in ref.tensors] == ["t0", "t1"]
    assert bytes(ref.tensors[0].data) == data[0].tobytes()
    np.testing.assert_array_equal(ref.tensors[1].data, data[1])
    ours = read_header(p)
    assert ours.kv["a.arr"] == [1, 2, 3] and ours.kv["a.strs"] == ["x", "yz"] and ours.kv["a.u32"] == 7


# --- malformed headers ------------------------------------------------------------------------


def _header_bytes(kvs: list[KV], tensors: list[TensorSpec]) -> bytes:
    from libp2pia.gguf import encode_header

    return encode_header(kvs, tensors)


def test_not_a_gguf(tmp_path: Path) -> None:
    p = tmp_path / "x.gguf"
    p.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_header(p)
    p.write_bytes(b"")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_header(p)


def test_unsupported_version(small: Path, tmp_path: Path) -> None:
    raw = bytearray(small.read_bytes())
    raw[4:8] = struct.pack("<I", 7)
    p = tmp_path / "v7.gguf"
    p.write_bytes(raw)
    with pytest.raises(GGUFError, match="unsupported GGUF version 7"):
        read_header(p)


def test_truncated_header(small: Path, tmp_path: Path) -> None:
    header = read_header(small)
    raw = small.read_bytes()
    for cut in (6, 20, 100, header.header_end // 2, header.header_end - 3):
        p = tmp_path / f"t{cut}.gguf"
        p.write_bytes(raw[:cut])
        with pytest.raises(GGUFError, match="truncated"):
            read_header(p)


def test_data_out_of_bounds(small: Path, tmp_path: Path) -> None:
    raw = small.read_bytes()
    p = tmp_path / "short.gguf"
    p.write_bytes(raw[:-1000])
    with pytest.raises(GGUFError, match=r"tensor output\.weight data .* out of bounds"):
        read_header(p)
    assert not read_header(p, require_data=False).data_present


def _tensor_info_pos(raw: bytes, name: str) -> int:
    """Byte position right after the tensor name in the tensor-info record."""
    pos = raw.index(struct.pack("<Q", len(name)) + name.encode())
    return pos + 8 + len(name)


def test_unknown_quant_type_names_the_tensor(small: Path, tmp_path: Path) -> None:
    raw = bytearray(small.read_bytes())
    pos = _tensor_info_pos(raw, "blk.1.attn_k.weight")
    n_dims = struct.unpack_from("<I", raw, pos)[0]
    struct.pack_into("<I", raw, pos + 4 + 8 * n_dims, 250)
    p = tmp_path / "q.gguf"
    p.write_bytes(raw)
    with pytest.raises(GGUFError, match=r"tensor blk\.1\.attn_k\.weight has unknown quant type 250"):
        read_header(p)


def test_absurd_lengths(small: Path, tmp_path: Path) -> None:
    raw = bytearray(small.read_bytes())
    bad = bytearray(raw)
    struct.pack_into("<Q", bad, 8, limits.MAX_GGUF_TENSORS + 1)
    p = tmp_path / "n.gguf"
    p.write_bytes(bad)
    with pytest.raises(GGUFError, match="absurd tensor count"):
        read_header(p)
    bad = bytearray(raw)
    struct.pack_into("<Q", bad, 24, 1 << 60)  # length of the first key string
    p.write_bytes(bad)
    with pytest.raises(GGUFError, match="absurd string length"):
        read_header(p)


def test_overlapping_tensors(small: Path, tmp_path: Path) -> None:
    raw = bytearray(small.read_bytes())
    header = read_header(small)
    second = header.tensors[1]
    pos = _tensor_info_pos(raw, second.name) + 4 + 8 * len(second.shape) + 4
    struct.pack_into("<Q", raw, pos, 0)  # second tensor now starts where the first one does
    p = tmp_path / "o.gguf"
    p.write_bytes(raw)
    with pytest.raises(GGUFError, match="overlaps"):
        read_header(p)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_corruption_only_raises_gguf_error(small: Path, data: st.DataObject) -> None:
    raw = bytearray(small.read_bytes()[:20000])
    header_end = read_header(small).header_end
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, min(header_end, len(raw)) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        parse_header(bytes(raw[:cut]), where="fuzz")
    except GGUFError:
        pass


def test_every_mapper_refuses_an_empty_file_the_same_way(tmp_path) -> None:  # noqa: ANN001
    """read_header, fragment, open_fragment and GGUFFragments share one mapping helper."""
    import pytest

    from libp2pia.errors import GGUFError
    from libp2pia.fragments import GGUFFragments, fragment, open_fragment
    from libp2pia.gguf.reader import read_header

    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    for call in (read_header, open_fragment, GGUFFragments, lambda p: fragment(p, tmp_path / "out")):
        with pytest.raises(GGUFError, match=f"^{empty}: not a GGUF file \\(empty\\)$"):
            call(empty)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.gguf"]


@pytest.mark.parametrize("length,message", [(2**63 - 1, "absurd string length"),   # overflows ssize_t
                                            (limits.MAX_GGUF_STRING_BYTES + 1, "absurd string length"),
                                            (10, "truncated")])
def test_bad_length_in_a_string_array(length: int, message: str) -> None:
    """The tokenizer-string walk skips per-item checks; a bad length still gets the checked error."""
    key = b"tokenizer.ggml.tokens"
    body = (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
            + struct.pack("<IIQ", GGUFValueType.ARRAY, GGUFValueType.STRING, 3)
            + struct.pack("<Q", 1) + b"a" + struct.pack("<Q", length) + b"bc")
    with pytest.raises(GGUFError, match=message):
        parse_header(body, len(body), "t.gguf")
