"""The real Gemma 3 270M Q4_K_M file: bit-perfect round trip (done once for the module), compute
units, limits, and dequantized sub-tensors equal to the original's slices for K-quants too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from libp2pia import limits
from libp2pia.fragments import GGUFFragments, file_sha256, fragment, open_fragment, reassemble
from libp2pia.gguf import hparams, read_header
from tests.frag_utils import Source, check_fragment_dequantizes


@pytest.fixture(scope="module")
def gemma_cut(gemma_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gemma") / "frags"
    return out, fragment(gemma_path, out)


@pytest.fixture(scope="module")
def gemma_source(gemma_path: Path) -> Source:
    return Source(gemma_path)


def test_gemma_round_trip_sha256(gemma_path: Path, gemma_cut: tuple, tmp_path: Path) -> None:
    frags, manifest = gemma_cut
    want = file_sha256(gemma_path)
    assert manifest["source"]["sha256"] is None     # fragment() hashes the source only when asked
    assert manifest["source"]["bytes"] == gemma_path.stat().st_size
    assert reassemble(frags / "manifest.json", tmp_path / "gemma.gguf") == want
    assert file_sha256(tmp_path / "gemma.gguf") == want


def test_gemma_fragments_are_compute_units(gemma_path: Path, gemma_cut: tuple) -> None:
    frags, manifest = gemma_cut
    header = read_header(gemma_path)
    hp = hparams(header)
    fr = manifest["fragments"]
    assert all(f["bytes"] <= limits.DEFAULT_MAX_FRAGMENT_BYTES and not f["oversize"] for f in fr)
    assert sum((frags / f["file"]).stat().st_size for f in fr) == sum(f["bytes"] for f in fr)
    # attention: one KV head, and a whole layer's attention fits, so it stays whole (no replication)
    attn = [f for f in fr if f["role"] == "attention"]
    assert sorted(f["layer"] for f in attn) == list(range(hp["n_layer"]))
    assert all(f["units"] == {"kind": "kv_groups", "start": 0, "stop": 1} for f in attn)
    assert {s["tensor"].split(".")[2] for s in attn[0]["slices"]} == {"attn_q", "attn_k", "attn_v", "attn_output",
                                                                      "attn_q_norm", "attn_k_norm"}
    # FFN slabs tile the intermediate dimension on the down tensor's block size
    for layer in range(hp["n_layer"]):
        slabs = sorted((f["units"]["start"], f["units"]["stop"]) for f in fr if f["role"] == "ffn" and f["layer"] == layer)
        assert slabs[0][0] == 0 and slabs[-1][1] == hp["n_ff"]
        assert all(a[1] == b[0] for a, b in zip(slabs, slabs[1:]))
        assert all(a % 256 == 0 for a, _ in slabs)
    # vocab rows tile token_embd (tied: no output.weight)
    rows = sorted(tuple(f["slices"][0]["rows"]) for f in fr if f["role"] == "vocab")
    assert rows[0][0] == 0 and rows[-1][1] == header.by_name["token_embd.weight"].n_rows
    assert all(a[1] == b[0] for a, b in zip(rows, rows[1:]))
    # core: the source header bytes + every 1-D norm that is not a per-head attention norm
    core = [f for f in fr if f["role"] == "core"]
    core_tensors = {s["tensor"] for f in core for s in f["slices"]}
    norms = {t.name for t in header.tensors if len(t.shape) == 1 and "attn_q_norm" not in t.name
             and "attn_k_norm" not in t.name}
    assert core_tensors == norms | {"libp2pia.source_header"}
    assert sum(s["bytes"][1] - s["bytes"][0] for f in core for s in f["slices"] if s["type"] == "bytes") \
        == header.data_start


def test_gemma_sub_tensors_dequantize_to_original(gemma_cut: tuple, gemma_source: Source) -> None:
    frags, manifest = gemma_cut
    chosen = [f for f in manifest["fragments"] if f["layer"] in (0, 2) or f["role"] == "core"]
    vocab = [f for f in manifest["fragments"] if f["role"] == "vocab"]
    chosen += [vocab[0], vocab[-1]]
    types = {s["type"] for f in chosen for s in f["slices"]}
    assert {"Q4_K", "Q6_K", "Q5_0", "Q8_0", "F32"} <= types
    for f in chosen:
        assert check_fragment_dequantizes(gemma_source, frags / f["file"]) > 0


def test_gemma_straight_from_gguf(gemma_path: Path, gemma_cut: tuple) -> None:
    frags, manifest = gemma_cut
    with GGUFFragments(gemma_path) as gf:
        assert [f.get("bytes") for f in gf.manifest["fragments"]] == [f["bytes"] for f in manifest["fragments"]]
        for i in (1, 2, 3, len(gf) - 1):
            a = gf.fragment(i)
            with open_fragment(frags / manifest["fragments"][i]["file"]) as b:
                assert a.describe() == b.describe()
                for x, y in zip(a.slices, b.slices):
                    assert x.data.shape == y.data.shape and x.qtype == y.qtype
                    np.testing.assert_array_equal(x.data, y.data)
        attn = next(gf.fragment(i) for i, f in enumerate(gf.manifest["fragments"]) if f["role"] == "attention")
        q = attn.get(f"blk.{attn.layer}.attn_q.weight")
        assert q.qtype.name == "Q5_0" and q.data.dtype == np.uint8 and q.data.shape == (1024, 440)
        assert attn.get(f"blk.{attn.layer}.attn_q_norm.weight").values().shape == (256,)


def test_gemma_header_split_into_core_parts(gemma_path: Path) -> None:
    """A 6.2 MiB header with a 1 MiB limit: several core parts tiling [0, data_start), each within the limit."""
    from libp2pia.fragments import plan

    p = plan(gemma_path, 1024 * 1024)
    core = [f for f in p["fragments"] if f["role"] == "core"]
    spans = sorted(tuple(s["bytes"]) for f in core for s in f["slices"] if s["type"] == "bytes")
    assert len(core) >= 7 and all(f["bytes"] <= 1024 * 1024 for f in core)
    assert spans[0][0] == 0 and spans[-1][1] == p["source"]["header_bytes"]
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert not p["summary"]["oversize"]
