"""Every bad input gives one line saying what and where, exit code 1, no traceback, and leaves
nothing behind (no output, no temp files) and overwrites nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from libp2pia.cli import main
from libp2pia.fragments import fragment
from libp2pia.fragments.manifest import with_model_id
from libp2pia.gguf.synth import SynthConfig, write_synthetic

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("bad") / "m.gguf", SynthConfig(kind="moe", n_vocab=320))


@pytest.fixture()
def frags(model: Path, tmp_path: Path) -> Path:
    fragment(model, tmp_path / "frags", LIMIT, hash_source=True)
    return tmp_path / "frags"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("libp2pia: error: "), err
    assert "Traceback" not in err
    return lines[0]


def nothing_left(parent: Path, *allowed: str) -> None:
    assert sorted(p.name for p in parent.iterdir()) == sorted(allowed)


def _mutated(model: Path, tmp_path: Path, how: str) -> Path:
    raw = bytearray(model.read_bytes())
    if how == "not-gguf":
        raw = bytearray(b"\x7fELF" + bytes(100))
    elif how == "truncated":
        raw = raw[:5000]
    elif how == "version":
        raw[4:8] = struct.pack("<I", 9)
    elif how == "qtype":
        name = b"blk.0.attn_v.weight"
        pos = raw.index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
        struct.pack_into("<I", raw, pos + 4 + 8 * 2, 99)
    elif how == "bounds":
        raw = raw[:-4096]
    p = tmp_path / "in" / f"{how}.gguf"
    p.parent.mkdir()
    p.write_bytes(raw)
    return p


@pytest.mark.parametrize("how,message", [
    ("not-gguf", r"not a GGUF file \(bad magic b'\\x7fELF'\)"),
    ("truncated", "truncated GGUF header while reading"),
    ("version", "unsupported GGUF version 9"),
    ("qtype", r"tensor blk\.0\.attn_v\.weight has unknown quant type 99"),
    ("bounds", r"tensor output\.weight data \[\d+, \d+\) is out of bounds"),
])
def test_bad_gguf_to_fragment(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              how: str, message: str) -> None:
    src = _mutated(model, tmp_path, how)
    out_parent = tmp_path / "out"
    out_parent.mkdir()
    line = run_cli(capsys, "fragment", str(src), "-o", str(out_parent / "frags"))
    assert str(src) in line
    assert re.search(message, line), line
    nothing_left(out_parent)
    if how != "bounds":  # plan reads the header only, so it sees the same header errors
        run_cli(capsys, "plan", str(src))
    else:  # inspect reads headers only too, but must not call a cut-off file "header only"
        assert main(["inspect", str(src)]) == 0
        first = capsys.readouterr().out.splitlines()[0]
        assert "(TRUNCATED: 1 tensors extend past the end of the file, first output.weight)" in first, first


def test_fragment_refuses_non_empty_output(model: Path, frags: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.name for p in frags.iterdir())
    line = run_cli(capsys, "fragment", str(model), "-o", str(frags))
    assert "already exists" in line
    assert sorted(p.name for p in frags.iterdir()) == before


def test_missing_fragment(frags: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = json.loads((frags / "manifest.json").read_text())
    victim = manifest["fragments"][3]
    (frags / victim["file"]).unlink()
    line = run_cli(capsys, "reassemble", str(frags / "manifest.json"), "-o", str(tmp_path / "out.gguf"))
    assert f"missing fragment #3 {victim['file']}" in line
    assert not (tmp_path / "out.gguf").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_corrupted_fragment_never_overwrites(frags: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = json.loads((frags / "manifest.json").read_text())
    victim = frags / manifest["fragments"][5]["file"]
    raw = bytearray(victim.read_bytes())
    raw[-7] ^= 0xFF
    victim.write_bytes(raw)
    out = tmp_path / "out.gguf"
    out.write_bytes(b"precious")
    line = run_cli(capsys, "reassemble", str(frags / "manifest.json"), "-o", str(out), "--force")
    assert f"corrupted fragment #5 {victim.name}" in line
    assert out.read_bytes() == b"precious"
    nothing_left(tmp_path, "frags", "out.gguf")


def test_swapped_fragment_files(frags: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = json.loads((frags / "manifest.json").read_text())
    a, b = (frags / manifest["fragments"][i]["file"] for i in (1, 2))
    tmp = frags / "swap"
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    line = run_cli(capsys, "reassemble", str(frags / "manifest.json"), "-o", str(tmp_path / "out.gguf"))
    assert "corrupted fragment #1" in line
    assert not (tmp_path / "out.gguf").exists()


def test_swapped_entries_with_recomputed_model_id(frags: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Even a consistent-looking manifest (ids swapped, model id recomputed) is caught by the
    fragment's own metadata."""
    manifest = json.loads((frags / "manifest.json").read_text())
    fr = manifest["fragments"]
    fr[1]["id"], fr[2]["id"] = fr[2]["id"], fr[1]["id"]
    fr[1]["file"], fr[2]["file"] = fr[2]["file"], fr[1]["file"]
    del manifest["model_id"]
    (frags / "manifest.json").write_text(json.dumps(with_model_id(manifest)))
    line = run_cli(capsys, "reassemble", str(frags / "manifest.json"), "-o", str(tmp_path / "out.gguf"))
    assert "does not match its manifest entry (swapped or foreign fragment)" in line
    assert not (tmp_path / "out.gguf").exists()


def test_source_sha256_mismatch_after_reassembly(frags: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A consistent manifest (model id recomputed) whose source sha256 is wrong: every fragment
    verifies, the rebuilt file does not match, nothing is left at the output path."""
    path = frags / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["source"]["sha256"] = "0" * 64
    path.write_text(json.dumps(with_model_id(manifest)))
    line = run_cli(capsys, "reassemble", str(path), "-o", str(tmp_path / "out.gguf"))
    assert "differs from the source" in line
    assert not list(tmp_path.glob("*out.gguf*"))


@pytest.mark.parametrize("edit", ["layer", "sha", "garbage"])
def test_edited_manifest(frags: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: str) -> None:
    path = frags / "manifest.json"
    manifest = json.loads(path.read_text())
    if edit == "layer":
        manifest["fragments"][4]["layer"] = 99
        path.write_text(json.dumps(manifest))
        expect = "manifest was edited"
    elif edit == "sha":
        manifest["source"]["sha256"] = "0" * 64
        path.write_text(json.dumps(manifest))
        expect = "manifest was edited"
    else:
        path.write_text("{not json")
        expect = "not a JSON manifest"
    line = run_cli(capsys, "reassemble", str(path), "-o", str(tmp_path / "out.gguf"))
    assert expect in line and str(path) in line
    assert not (tmp_path / "out.gguf").exists()


@pytest.mark.parametrize("edit,message", [
    (lambda m: m.update(source={}), "malformed manifest: source.bytes is not a byte count"),
    (lambda m: m.update(source="x"), "malformed manifest: 'source' is not an object"),
    (lambda m: m["source"].update(bytes="abc"), "malformed manifest: source.bytes is not a byte count"),
    (lambda m: m["source"].update(bytes=-1), "malformed manifest: source.bytes is not a byte count"),
    (lambda m: m["source"].update(bytes=10**18), "malformed manifest: source.bytes is not a byte count"),
    (lambda m: m["source"].pop("header_bytes"), "source.header_bytes is not a byte count within source.bytes"),
    (lambda m: m["source"].update(sha256="xyz"), "source.sha256 is not 64 hex digits"),
    (lambda m: m.update(fragments=5), "'fragments' is not a non-empty list"),
    (lambda m: m.update(fragments=[]), "'fragments' is not a non-empty list"),
    (lambda m: m.update(max_fragment_bytes="10MiB"), "'max_fragment_bytes' is not a positive integer"),
    (lambda m: m["fragments"][2].update(bytes="x"), "fragment #2 bytes is not a positive byte count"),
    (lambda m: m["fragments"][2].update(bytes=m["fragments"][2]["bytes"] + 1),
     "the manifest says"),
    (lambda m: m["fragments"][2].pop("role"), "fragment #2 has no valid role/class"),
    (lambda m: m["fragments"][2].update(layer="3"), "fragment #2 layer/expert is neither null"),
    (lambda m: m["fragments"][2].pop("slices"), "fragment #2 has no slices list / units object"),
], ids=["source-empty", "source-str", "bytes-str", "bytes-neg", "bytes-huge", "no-header-bytes", "sha-bad",
        "fragments-int", "fragments-empty", "limit-str", "frag-bytes-str", "frag-bytes-wrong", "no-role",
        "layer-str", "no-slices"])
def test_consistent_but_malformed_manifest(frags: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           edit, message: str) -> None:  # noqa: ANN001
    """A manifest whose model id matches its (malformed) content: one line naming the field,
    never a KeyError/TypeError traceback, nothing written."""
    path = frags / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    del manifest["model_id"]
    path.write_text(json.dumps(with_model_id(manifest)))
    line = run_cli(capsys, "reassemble", str(path), "-o", str(tmp_path / "out.gguf"))
    assert message in line and str(path) in line, line
    nothing_left(tmp_path, "frags")


def test_reassemble_refuses_existing_output(frags: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.gguf"
    out.write_bytes(b"keep me")
    line = run_cli(capsys, "reassemble", str(frags / "manifest.json"), "-o", str(out))
    assert "already exists" in line and out.read_bytes() == b"keep me"


def test_bad_sizes_and_replication(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "not a size" in run_cli(capsys, "plan", str(model), "--max-fragment-size", "ten")
    assert "below the minimum" in run_cli(capsys, "plan", str(model), "--max-fragment-size", "100")
    assert "replication" in run_cli(capsys, "plan", str(model), "--replication", "3,x")


def test_real_process_exit_code_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + struct.pack("<I", 1))
    r = subprocess.run([sys.executable, "-m", "libp2pia", "fragment", str(bad), "-o", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip() == f"libp2pia: error: {bad}: unsupported GGUF version 1 (supported: 2, 3)"
    assert not (tmp_path / "o").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_manifest_cannot_point_outside_its_directory(frags: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    manifest = json.loads((frags / "manifest.json").read_text())
    manifest["fragments"][0]["id"] = "../../escape"
    manifest["fragments"][0]["file"] = "../../escape.gguf"
    del manifest["model_id"]
    (frags / "manifest.json").write_text(json.dumps(with_model_id(manifest)))
    line = run_cli(capsys, "reassemble", str(frags / "manifest.json"), "-o", str(tmp_path / "out.gguf"))
    assert "fragment #0 has no valid id/file" in line


def test_unknown_architecture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gguf import GGUFWriter

    src = tmp_path / "bert.gguf"
    w = GGUFWriter(str(src), "bert")
    w.add_tensor("token_embd.weight", __import__("numpy").zeros((4, 32), "float32"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    line = run_cli(capsys, "fragment", str(src), "-o", str(tmp_path / "out"))
    assert "unsupported architecture 'bert' (supported: llama, mistral3, gemma3, deepseek2)" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("size,message", [
    ("1.5", "not a whole number of bytes: '1.5'"),
    ("0", "size must be positive: '0'"),
    ("-1", "not a size: '-1'"),
    ("1e9", "not a size: '1e9'"),
    ("nan", "not a size: 'nan'"),
    ("2000GiB", "is above the maximum 1099511627776 bytes"),
    ("99999999999999999999999", "is above the maximum"),
])
def test_nonsense_fragment_sizes(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 size: str, message: str) -> None:
    for cmd in (("plan", str(model)), ("fragment", str(model), "-o", str(tmp_path / "o"))):
        assert message in run_cli(capsys, *cmd, "--max-fragment-size", size)
    nothing_left(tmp_path)


def test_failed_fragment_leaves_no_parent_dirs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + struct.pack("<I", 9))
    line = run_cli(capsys, "fragment", str(bad), "-o", str(tmp_path / "a" / "b" / "frags"))
    assert "unsupported GGUF version 9" in line
    nothing_left(tmp_path, "bad.gguf")


@pytest.mark.parametrize("command", ["inspect", "plan"])
def test_header_commands_on_non_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    (tmp_path / "empty.gguf").write_bytes(b"")
    assert run_cli(capsys, command, str(tmp_path)) == f"libp2pia: error: Is a directory: {tmp_path}"
    assert run_cli(capsys, command, str(tmp_path / "nope.gguf")) == \
        f"libp2pia: error: No such file or directory: {tmp_path / 'nope.gguf'}"
    assert run_cli(capsys, command, str(tmp_path / "empty.gguf")) == \
        f"libp2pia: error: {tmp_path / 'empty.gguf'}: not a GGUF file (empty)"
    nothing_left(tmp_path, "empty.gguf")


def test_reassemble_onto_a_directory(frags: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "outdir"
    out.mkdir()
    (out / "keep").write_bytes(b"x")
    line = run_cli(capsys, "reassemble", str(frags / "manifest.json"), "-o", str(out), "--force")
    assert line == f"libp2pia: error: output {out} is a directory"
    assert [p.name for p in out.iterdir()] == ["keep"]
    nothing_left(tmp_path, "frags", "outdir")


def test_reassemble_into_a_missing_directory(frags: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nope" / "out.gguf"
    line = run_cli(capsys, "reassemble", str(frags / "manifest.json"), "-o", str(out))
    assert line == f"libp2pia: error: output directory {out.parent} does not exist"
    nothing_left(tmp_path, "frags")


def test_reassemble_never_clobbers_a_file_that_appears_meanwhile(frags: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --force the final move must not replace a file created after the up-front check."""
    import importlib

    ra = importlib.import_module("libp2pia.fragments.reassemble")  # the package re-exports a function of that name

    out = tmp_path / "out.gguf"
    real = ra.file_sha256

    def hash_then_someone_writes(path: object) -> str:
        digest = real(path)  # type: ignore[arg-type]
        if not out.exists():
            out.write_bytes(b"written meanwhile")
        return digest

    monkeypatch.setattr(ra, "file_sha256", hash_then_someone_writes)
    with pytest.raises(ra.FragmentError, match="already exists"):
        ra.reassemble(frags / "manifest.json", out)
    assert out.read_bytes() == b"written meanwhile"
    nothing_left(tmp_path, "frags", "out.gguf")


def interrupt_when(argv: list[str], ready: Callable[[], bool], poll_s: float) -> None:
    """Run `libp2pia ARGV`, send SIGINT as soon as ``ready()`` holds, and check the interrupted
    exit: code 130 and the one line "libp2pia: interrupted"."""
    proc = subprocess.Popen([sys.executable, "-m", "libp2pia", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(poll_s)
        assert proc.poll() is None, f"{argv[0]} finished before it could be interrupted"
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and err.strip() == "libp2pia: interrupted", err


def test_sigint_during_fragment_leaves_nothing(gemma_path: Path, tmp_path: Path) -> None:
    """Ctrl-C in the middle of `fragment`: exit 130, no output dir, no temporary dir."""
    out = tmp_path / "frags"

    def writing() -> bool:  # at least one finished fragment in the temporary directory
        tmps = [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
        return bool(tmps) and any(f.suffix == ".gguf" for f in tmps[0].iterdir())

    interrupt_when(["fragment", str(gemma_path), "-o", str(out)], writing, 0.01)
    nothing_left(tmp_path)


def test_source_hasher_stops_when_told() -> None:
    """The background source hash ends at the next chunk once stopped, so an interrupted
    `fragment` of a huge model cleans up at once instead of hashing the rest of the file."""
    import threading

    from libp2pia.fragments.cut import _sha256_of

    stop, out = threading.Event(), []
    stop.set()
    _sha256_of(bytes(10), 10, out, stop)
    assert out == []
    _sha256_of(bytes(10), 10, out, threading.Event())
    import hashlib

    assert out == [hashlib.sha256(bytes(10)).hexdigest()]


def test_output_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    """`libp2pia inspect MODEL | head -1`: no "Broken pipe" error line, no traceback. (A header-only
    Mistral Large 3: its table is far larger than a pipe buffer, so the writer does hit the closed pipe.)"""
    from libp2pia.gguf.presets import write_preset

    model = write_preset("mistral-large-3", tmp_path / "ml3.gguf")
    r = subprocess.run(f"{sys.executable} -m libp2pia inspect {model} --json | head -c 100", shell=True,
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.startswith("{")
    assert r.stderr == "", r.stderr


def test_sigint_during_reassemble_leaves_nothing(gemma_path: Path, tmp_path: Path) -> None:
    """Ctrl-C while the output is being written: exit 130, no output, no temporary file."""
    fragment(gemma_path, tmp_path / "frags")
    out = tmp_path / "out" / "gemma.gguf"
    out.parent.mkdir()
    # the temporary output appears once every fragment is verified
    interrupt_when(["reassemble", str(tmp_path / "frags" / "manifest.json"), "-o", str(out)],
                   lambda: bool(list(out.parent.iterdir())), 0.005)
    assert list(out.parent.iterdir()) == []
