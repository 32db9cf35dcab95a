"""Fragment -> reassemble on synthetic models: bit-perfect, within the limit, every byte owned once,
and every sub-tensor dequantizes (gguf.quants) to the matching slice of the original."""

from __future__ import annotations

import hashlib
import mmap
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader

from libp2pia.fragments import GGUFFragments, fragment, open_fragment, plan_specs, reassemble
from libp2pia.gguf import read_header
from libp2pia.gguf.synth import SynthConfig, write_synthetic

from tests.frag_utils import Source, check_fragment_dequantizes, coverage

CASES = {
    "dense-gqa-f32": SynthConfig(kind="dense", n_head=8, n_head_kv=2, head_dim=32),
    "moe-stacked-q8_0": SynthConfig(kind="moe", qtype="Q8_0"),
    "moe-legacy-f16": SynthConfig(kind="moe", layout="legacy", qtype="F16"),
    "deepseek-mla-f32": SynthConfig(kind="deepseek", n_layer=3),
    "dense-q5_0": SynthConfig(kind="dense", qtype="Q5_0", n_head_kv=1),
}
LIMIT = 48 * 1024


@pytest.fixture(scope="module", params=list(CASES))
def cut(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    d = tmp_path_factory.mktemp(request.param)
    src = write_synthetic(d / "src.gguf", CASES[request.param])
    manifest = fragment(src, d / "frags", LIMIT, hash_source=True)
    return src, d / "frags", manifest


def test_round_trip_bit_perfect(cut: tuple, tmp_path: Path) -> None:
    src, frags, manifest = cut
    digest = reassemble(frags / "manifest.json", tmp_path / "out.gguf")
    assert digest == hashlib.sha256(src.read_bytes()).hexdigest() == manifest["source"]["sha256"]
    assert (tmp_path / "out.gguf").read_bytes() == src.read_bytes()


def test_fragments_within_limit_and_named_by_hash(cut: tuple) -> None:
    _, frags, manifest = cut
    files = sorted(p.name for p in frags.glob("*.gguf"))
    assert files == sorted({f["file"] for f in manifest["fragments"]})
    for f in manifest["fragments"]:
        data = (frags / f["file"]).read_bytes()
        assert len(data) == f["bytes"]
        assert hashlib.sha256(data).hexdigest() == f["id"]
        assert f["bytes"] <= LIMIT or f["oversize"]
    assert not [p for p in frags.parent.iterdir() if ".tmp" in p.name]


def test_every_byte_owned_exactly_once(cut: tuple) -> None:
    src, _, _ = cut
    header = read_header(src)
    with open(src, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        _, specs = plan_specs(header, LIMIT, mm)
        raw = np.frombuffer(mm, np.uint8).copy()
    cov = coverage(header, specs)
    assert cov.max() == 1
    assert not raw[cov == 0].any()  # what no fragment owns is zero padding


def test_sub_tensors_dequantize_to_source_slices(cut: tuple) -> None:
    src, frags, manifest = cut
    source = Source(src)
    checked = sum(check_fragment_dequantizes(source, frags / f["file"]) for f in manifest["fragments"])
    assert checked >= len(source.header.tensors)


def test_fragment_files_are_valid_gguf_with_metadata(cut: tuple) -> None:
    _, frags, manifest = cut
    for f in manifest["fragments"][:40]:
        ref = GGUFReader(frags / f["file"])
        assert [t.name for t in ref.tensors] == [s["tensor"] for s in f["slices"]]
        assert ref.fields["libp2pia.fragment.role"].contents() == f["role"]
        with open_fragment(frags / f["file"]) as frag:
            assert frag.describe() == {k: v for k, v in f.items() if k not in ("id", "file", "bytes", "oversize")}
            for s in frag.slices:
                if s.spec.__class__.__name__ == "Slice" and len(s.shape) == 2:
                    assert s.data.shape[0] == s.shape[1]   # (rows, row_bytes)


def test_reading_straight_from_gguf_equals_fragment_files(cut: tuple) -> None:
    src, frags, manifest = cut
    with GGUFFragments(src, LIMIT) as gf:
        assert len(gf) == len(manifest["fragments"])
        for i, f in enumerate(manifest["fragments"]):
            a = gf.fragment(i)
            with open_fragment(frags / f["file"]) as b:
                assert a.describe() == b.describe()
                for x, y in zip(a.slices, b.slices):
                    np.testing.assert_array_equal(x.data.reshape(-1), y.data.reshape(-1))


def test_units_per_role(cut: tuple) -> None:
    _, _, manifest = cut
    roles = {f["role"] for f in manifest["fragments"]}
    assert {"core", "vocab", "attention"} <= roles
    for f in manifest["fragments"]:
        assert f["class"] == ("conditional" if f["role"] == "expert" else "always")
        if f["role"] == "expert":
            assert f["expert"] is not None and all(s["expert"] == f["expert"] or s["expert"] is None
                                                   for s in f["slices"])
        if f["role"] in ("ffn", "expert", "shared_expert"):
            down = [s for s in f["slices"] if "down" in s["tensor"]]
            gate_up = [s for s in f["slices"] if "down" not in s["tensor"]]
            assert len(down) == 1 and all(s["rows"] == down[0]["cols"] for s in gate_up)
