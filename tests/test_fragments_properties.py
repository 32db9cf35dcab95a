"""Property tests over shapes, head counts, quant types and size limits: every fragment within the
limit (or marked oversize), every source byte owned exactly once, bit-perfect round trips."""

from __future__ import annotations

import hashlib
from pathlib import Path
import tempfile

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V
from hypothesis import given, settings
from hypothesis import strategies as st

from libp2pia.fragments import fragment, plan_specs, reassemble
from libp2pia.fragments.fileformat import fragment_header
from libp2pia.gguf import KV, StreamWriter, TensorSpec, encode_header, parse_header
from libp2pia.gguf.format import align_up, block_info
from tests.frag_utils import coverage

TYPES = [Q.F32, Q.F16, Q.Q8_0, Q.Q5_0, Q.Q4_0, Q.Q4_K, Q.Q6_K, Q.Q5_K]


@st.composite
def models(draw: st.DrawFn) -> tuple[list[KV], list[TensorSpec]]:
    kind = draw(st.sampled_from(["dense", "moe", "legacy", "mla", "gemma"]))
    n_embd = 256 * draw(st.integers(1, 2))
    n_layer = draw(st.integers(1, 2))
    n_head = draw(st.sampled_from([1, 2, 4, 8]))
    n_kv = 1 if kind == "gemma" else draw(st.sampled_from([d for d in (1, 2, 4, 8) if n_head % d == 0]))
    head_dim = draw(st.sampled_from([32, 64, 128, 256]))
    n_ff = 256 * draw(st.integers(1, 2))
    n_exp = draw(st.integers(2, 4))
    n_vocab = draw(st.integers(1, 700))
    tensors: list[TensorSpec] = []

    def add(name: str, *shape: int) -> None:
        if len(shape) == 1:
            tensors.append(TensorSpec(name, shape, Q.F32))
            return
        valid = [t for t in TYPES if shape[0] % block_info(t)[0] == 0]
        tensors.append(TensorSpec(name, shape, draw(st.sampled_from(valid))))

    add("token_embd.weight", n_embd, n_vocab)
    for i in range(n_layer):
        p = f"blk.{i}."
        add(p + "attn_norm.weight", n_embd)
        if kind == "mla":
            add(p + "attn_q_a.weight", n_embd, 64)
            add(p + "attn_q_a_norm.weight", 64)
            add(p + "attn_q_b.weight", 64, n_head * 48)
            add(p + "attn_kv_a_mqa.weight", n_embd, 96)
            add(p + "attn_kv_a_norm.weight", 64)
            add(p + "attn_k_b.weight", 32, 64, n_head)
            add(p + "attn_v_b.weight", 64, head_dim, n_head)
            add(p + "attn_output.weight", n_head * head_dim, n_embd)
        else:
            add(p + "attn_q.weight", n_embd, n_head * head_dim)
            add(p + "attn_k.weight", n_embd, n_kv * head_dim)
            add(p + "attn_v.weight", n_embd, n_kv * head_dim)
            if kind == "gemma":
                add(p + "attn_q_norm.weight", head_dim)
                add(p + "attn_k_norm.weight", head_dim)
            add(p + "attn_output.weight", n_head * head_dim, n_embd)
        add(p + "ffn_norm.weight", n_embd)
        if kind in ("dense", "gemma") or (kind == "mla" and i == 0):
            add(p + "ffn_gate.weight", n_embd, n_ff)
            add(p + "ffn_up.weight", n_embd, n_ff)
            add(p + "ffn_down.weight", n_ff, n_embd)
        elif kind == "legacy":
            add(p + "ffn_gate_inp.weight", n_embd, n_exp)
            for e in range(n_exp):
                for part, shape in (("gate", (n_embd, n_ff)), ("down", (n_ff, n_embd)), ("up", (n_embd, n_ff))):
                    add(f"{p}ffn_{part}.{e}.weight", *shape)
        else:
            add(p + "ffn_gate_inp.weight", n_embd, n_exp)
            add(p + "ffn_gate_exps.weight", n_embd, n_ff, n_exp)
            add(p + "ffn_up_exps.weight", n_embd, n_ff, n_exp)
            add(p + "ffn_down_exps.weight", n_ff, n_embd, n_exp)
            if kind == "mla":
                add(p + "ffn_gate_shexp.weight", n_embd, n_ff)
                add(p + "ffn_up_shexp.weight", n_embd, n_ff)
                add(p + "ffn_down_shexp.weight", n_ff, n_embd)
    if draw(st.booleans()):
        add("blk.0.mystery.weight", 32, 7)      # unknown tensor -> opaque bytes
        add("blk.0.mystery_scale", 12)          # unknown 1-D -> core
    add("output_norm.weight", n_embd)
    if kind != "gemma":
        add("output.weight", n_embd, n_vocab)
    arch = {"mla": "deepseek2", "gemma": "gemma3"}.get(kind, "llama")
    kvs = [KV("general.architecture", V.STRING, arch), KV(f"{arch}.embedding_length", V.UINT32, n_embd),
           KV(f"{arch}.block_count", V.UINT32, n_layer), KV(f"{arch}.attention.head_count", V.UINT32, n_head),
           KV(f"{arch}.attention.head_count_kv", V.UINT32, 1 if kind == "mla" else n_kv),
           KV("tokenizer.ggml.tokens", V.ARRAY, [f"t{i}" for i in range(draw(st.integers(0, 400)))], V.STRING)]
    if kind != "dense":
        kvs.append(KV(f"{arch}.expert_used_count", V.UINT32, 2))
    return kvs, tensors


limits_ = st.sampled_from([4096, 8192, 20_000, 65536, 300_000, 1 << 20])


@settings(max_examples=80, deadline=None)
@given(model=models(), limit=limits_)
def test_plan_within_limit_and_covers_every_byte_once(model: tuple, limit: int) -> None:
    kvs, tensors = model
    head = encode_header(kvs, tensors)
    size = len(head) + sum(align_up(t.n_bytes, 32) for t in tensors)
    header = parse_header(head, size)
    _, specs = plan_specs(header, limit)
    for s in specs:
        assert s.size == len(fragment_header(s, header.architecture)) + sum(align_up(x.n_bytes, 32) for x in s.slices)
        assert s.size <= limit or s.oversize
        names = [x.name for x in s.slices]
        assert len(names) == len(set(names))
    cov = coverage(header, specs)
    assert (cov == 1).all() or (cov[: header.data_start] == 1).all() and set(np.unique(cov)) <= {0, 1}
    for t in header.tensors:
        assert (cov[t.abs_offset:t.end] == 1).all(), t.name


@settings(max_examples=12, deadline=None)
@given(model=models(), limit=st.sampled_from([8192, 30_000, 200_000]), seed=st.integers(0, 2**32 - 1),
       trailing=st.integers(0, 100), dirty_padding=st.booleans())
def test_round_trip_random_content(model: tuple, limit: int, seed: int, trailing: int, dirty_padding: bool) -> None:
    kvs, tensors = model
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src.gguf"
        with open(src, "wb") as f:
            w = StreamWriter(f, kvs, tensors)
            for t in tensors:
                w.write(rng.integers(0, 256, t.n_bytes, dtype=np.uint8))
            w.close()
            f.write(rng.integers(1, 256, trailing, dtype=np.uint8).tobytes())
        raw = bytearray(src.read_bytes())
        if dirty_padding:
            header = parse_header(bytes(raw), len(raw))
            for t in header.tensors:
                if align_up(t.end, 32) > t.end:
                    raw[t.end] = 0xAB      # non-zero alignment padding must survive (opaque fragment)
            src.write_bytes(raw)
        manifest = fragment(src, Path(tmp) / "frags", limit)
        for f in manifest["fragments"]:
            assert (Path(tmp) / "frags" / f["file"]).stat().st_size == f["bytes"]
            assert f["bytes"] <= limit or f["oversize"]
        digest = reassemble(Path(tmp) / "frags" / "manifest.json", Path(tmp) / "out.gguf")
        assert digest == hashlib.sha256(raw).hexdigest()
