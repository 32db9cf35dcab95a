"""Load a model for the engine: from a plain GGUF (fragmented in memory) or a manifest directory.

Both paths go through libp2pia.fragments' reader and yield the same fragment dicts (the
manifest's shape) and, per fragment, its sub-tensors as `TensorData`:

| source          | fragments                                   | sub-tensor bytes                          |
|-----------------|---------------------------------------------|-------------------------------------------|
| plain .gguf     | GGUFFragments (in-memory plan)              | views of the memory-mapped source         |
| manifest dir    | manifest.json (validated)                   | fragment files, each hash-checked vs id   |

Result: the client's ModelLayout plus every compute shard keyed by fragment id,
ready for the in-process backend (a worker builds only the shards it holds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FragmentError, GGUFError, ManifestError
from ..fragments import Fragment, GGUFFragments, file_sha256, load_manifest, open_fragment
from ..fragments.plan import HEADER_SLICE
from ..fragments.slices import ByteSlice
from ..gguf.reader import GGUFHeader, parse_header
from ..limits import DEFAULT_CONTEXT_LENGTH, DEFAULT_MAX_FRAGMENT_BYTES
from ..model.build import COMPUTE_ROLES, Shard, TensorData, build_shard
from ..model.config import ModelConfig
from ..model.layout import ModelLayout, fragment_key


@dataclass
class LoadedModel:
    cfg: ModelConfig
    layout: ModelLayout
    shards: dict[str, Shard]
    metadata: dict[str, Any]          # source GGUF key/values (tokenizer included)
    fragments: list[dict[str, Any]]   # plan or manifest entries


def tensor_data(frag: Fragment) -> dict[str, TensorData]:
    """A fragment's sub-tensors by source name: quantized bytes (rows, row_bytes) or float rows."""
    return {s.tensor: TensorData(s.values(), s.qtype, s.shape[0])
            for s in frag.slices if not isinstance(s.spec, ByteSlice)}


class GGUFSource:
    """A plain GGUF, fragmented in memory by the planner."""

    def __init__(self, path: Path, max_fragment_bytes: int = DEFAULT_MAX_FRAGMENT_BYTES) -> None:
        self.frags = GGUFFragments(path, max_fragment_bytes)
        self.fragments: list[dict[str, Any]] = self.frags.manifest["fragments"]
        self.metadata = self.frags.header.kv

    def tensors(self, index: int) -> dict[str, TensorData]:
        return tensor_data(self.frags.fragment(index))

    def close(self) -> None:
        """Close the file; the memory map lives on while shards hold views of it."""
        self.frags.close()


class ManifestSource:
    """A directory with manifest.json and <sha256>.gguf fragment files."""

    def __init__(self, root: Path, verify: bool = True) -> None:
        self.root = root
        self.fragments: list[dict[str, Any]] = load_manifest(root / "manifest.json")["fragments"]
        self.verify = verify
        self.metadata = self._source_header().kv

    def _open(self, index: int) -> Fragment:
        entry = self.fragments[index]
        path = self.root / entry["file"]
        if self.verify and file_sha256(path) != entry["id"]:
            raise FragmentError(f"fragment file {path} does not match its id (corrupt or swapped)")
        return open_fragment(path)

    def _source_header(self) -> GGUFHeader:
        """The source GGUF header (hyper-parameters, tokenizer), reassembled from the core fragments."""
        parts: list[tuple[int, bytes]] = []
        for i, entry in enumerate(self.fragments):
            if entry["role"] == "core":
                parts += [(s.spec.start, s.data.tobytes()) for s in self._open(i).slices if s.tensor == HEADER_SLICE]
        if not parts:
            raise ManifestError(f"{self.root}: no core fragment carries the source header")
        return parse_header(b"".join(p for _, p in sorted(parts)), None, f"{self.root} (source header)")

    def tensors(self, index: int) -> dict[str, TensorData]:
        return tensor_data(self._open(index))

    def close(self) -> None:
        pass


def open_source(path: str | Path, max_fragment_bytes: int = DEFAULT_MAX_FRAGMENT_BYTES) -> GGUFSource | ManifestSource:
    """A manifest directory (or its manifest.json), else a GGUF planned in memory with `max_fragment_bytes`."""
    p = Path(path)
    if p.is_dir():
        return ManifestSource(p)
    if p.name == "manifest.json":
        return ManifestSource(p.parent)
    if not p.exists():
        raise FileNotFoundError(2, "no such model file or manifest directory", str(p))
    return GGUFSource(p, max_fragment_bytes)


def load_model(path: str | Path, *, context_limit: int = DEFAULT_CONTEXT_LENGTH,
               max_fragment_bytes: int = DEFAULT_MAX_FRAGMENT_BYTES) -> LoadedModel:
    """`path` is a .gguf file (cut in memory into fragments of at most `max_fragment_bytes`) or a
    directory holding manifest.json and fragment files."""
    src = open_source(path, max_fragment_bytes)
    try:
        return _load(src, path, context_limit)
    finally:
        src.close()


def client_data(src: GGUFSource | ManifestSource, context_limit: int = DEFAULT_CONTEXT_LENGTH
                ) -> tuple[ModelConfig, dict[str, np.ndarray], dict[int, np.ndarray]]:
    """What a client (or a worker building shards) needs besides the compute fragments: the config,
    the 1-D norms (core fragments) and the MoE routers (router fragments). Reads only those fragments,
    so a directory holding the manifest plus its core/router files is enough."""
    meta, fragments = src.metadata, src.fragments
    has_output = any(s["tensor"] == "output.weight" for f in fragments for s in f["slices"])
    cfg = ModelConfig.from_metadata(meta, context_length=context_limit, has_output=has_output)
    norms: dict[str, np.ndarray] = {}
    routers: dict[int, np.ndarray] = {}
    for i, frag in enumerate(fragments):
        if frag["role"] in ("core", "router"):
            for name, t in src.tensors(i).items():
                arr = np.asarray(t.raw, np.float32)
                if name.endswith("ffn_gate_inp.weight"):
                    routers[int(name.split(".")[1])] = arr.reshape(-1, cfg.n_embd)
                else:
                    norms[name] = arr.reshape(-1)
    return cfg, norms, routers


def _load(src: GGUFSource | ManifestSource, path: str | Path, context_limit: int) -> LoadedModel:
    meta, fragments = src.metadata, src.fragments
    cfg, norms, routers = client_data(src, context_limit)

    # compute shards, keyed by fragment id (plan entries get stable stand-in ids)
    shards: dict[str, Shard] = {}
    for i, frag in enumerate(fragments):
        if frag["role"] in COMPUTE_ROLES:
            shards[fragment_key(frag, i)] = build_shard(cfg, frag, src.tensors(i), norms, context_limit)
    layout = ModelLayout.from_fragments(cfg, fragments, norms, routers)
    if not layout.embed:
        raise GGUFError(f"{path}: no token_embd rows found")
    return LoadedModel(cfg, layout, shards, dict(meta), fragments)


def shard_from_file(manifest: dict[str, Any], entry: dict[str, Any], path: str | Path,
                    context_limit: int = DEFAULT_CONTEXT_LENGTH) -> Shard:
    """A worker's view: the shard of one fragment file (hash-checked against its manifest entry)."""
    if file_sha256(path) != entry["id"]:
        raise FragmentError(f"fragment file {path} does not match its id (corrupt or swapped)")
    cfg = ModelConfig.from_manifest(manifest, context_length=context_limit)
    return build_shard(cfg, entry, tensor_data(open_fragment(path)), {}, context_limit)
