"""Load a model for the engine: from a plain GGUF (fragmented in memory) or a manifest directory.

Both paths yield the same fragment dicts (the manifest's shape) and, per fragment,
its sub-tensors as `TensorData`:

| source          | fragments                                  | sub-tensor bytes                                |
|-----------------|--------------------------------------------|-------------------------------------------------|
| plain .gguf     | libp2pia.fragments.plan_specs (in memory)  | cut from the memory-mapped source tensor        |
| manifest dir    | manifest.json (validated)                  | the fragment file's tensor of the same name     |

Result: the client's ModelLayout plus every compute shard keyed by fragment id,
ready for the in-process backend (a worker builds only the shards it holds).
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType

from ..errors import FragmentError, GGUFError, ManifestError
from ..fragments.manifest import fragment_json, load_manifest
from ..fragments.plan import HEADER_SLICE, plan_specs
from ..gguf.format import block_info
from ..gguf.reader import GGUFHeader, TensorInfo, check_data_bounds, parse_header
from ..limits import DEFAULT_CONTEXT_LENGTH, DEFAULT_MAX_FRAGMENT_BYTES
from ..model.build import COMPUTE_ROLES, Shard, TensorData, build_shard
from ..model.config import ModelConfig
from ..model.layout import ModelLayout, fragment_key

FLOAT_TYPES = {GGMLQuantizationType.F32: np.float32, GGMLQuantizationType.F16: np.float16}


@dataclass
class LoadedModel:
    cfg: ModelConfig
    layout: ModelLayout
    shards: dict[str, Shard]
    metadata: dict[str, Any]          # source GGUF key/values (tokenizer included)
    fragments: list[dict[str, Any]]   # plan or manifest entries


def _map(path: Path) -> mmap.mmap:
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _tensor_array(buf: Any, info: TensorInfo) -> np.ndarray:
    """A tensor's bytes as (planes, rows, row_bytes) uint8, or float (planes, rows, cols) for F32/F16."""
    raw = np.frombuffer(buf, np.uint8, info.n_bytes, info.abs_offset)
    if info.qtype in FLOAT_TYPES:
        return raw.view(FLOAT_TYPES[info.qtype]).reshape(info.n_planes, info.n_rows, info.shape[0])
    return raw.reshape(info.n_planes, info.n_rows, info.row_bytes)


def _cut(arr: np.ndarray, info: TensorInfo, s: Mapping[str, Any]) -> TensorData:
    """The box a slice names (expert plane, rows, block-aligned columns) out of a full source tensor."""
    plane = int(s["expert"]) if s.get("expert") is not None else 0
    r0, r1 = s["rows"]
    c0, c1 = s["cols"]
    if arr.dtype == np.uint8:
        blk, size = block_info(info.qtype)
        sub = arr[plane, r0:r1, c0 // blk * size:c1 // blk * size]
    else:
        sub = arr[plane, r0:r1, c0:c1]
    return TensorData(sub, info.qtype, c1 - c0)


class GGUFSource:
    """A plain GGUF, fragmented in memory by the planner; slices are views into the mapped file."""

    def __init__(self, path: Path, max_fragment_bytes: int = DEFAULT_MAX_FRAGMENT_BYTES) -> None:
        self.path = path
        self.buf = _map(path)
        self.header = parse_header(self.buf, len(self.buf), str(path), path)
        check_data_bounds(self.header)
        _, specs = plan_specs(self.header, max_fragment_bytes)
        self.fragments = [fragment_json(s) for s in specs]
        self.metadata = self.header.kv

    def tensors(self, frag: Mapping[str, Any]) -> dict[str, TensorData]:
        out = {}
        for s in frag["slices"]:
            if s["type"] == "bytes":
                continue
            info = self.header.by_name[s["tensor"]]
            out[s["tensor"]] = _cut(_tensor_array(self.buf, info), info, s)
        return out


class ManifestSource:
    """A directory with manifest.json and <sha256>.gguf fragment files (each checked against its id)."""

    def __init__(self, root: Path, verify: bool = True) -> None:
        self.root = root
        self.manifest = load_manifest(root / "manifest.json")
        self.fragments = self.manifest["fragments"]
        self.verify = verify
        self.metadata = self._source_header().kv

    def _open(self, frag: Mapping[str, Any]) -> tuple[Any, GGUFHeader]:
        path = self.root / frag["file"]
        try:
            buf = _map(path)
        except (OSError, ValueError) as exc:
            raise FragmentError(f"fragment {frag['id']} ({path}) cannot be read: {exc}") from exc
        if self.verify and hashlib.sha256(buf).hexdigest() != frag["id"]:
            raise FragmentError(f"fragment file {path} does not match its id (corrupt or swapped)")
        return buf, parse_header(buf, len(buf), str(path), path)

    def _source_header(self) -> GGUFHeader:
        """Reassemble the source GGUF header from the core fragments' byte slices."""
        parts: list[tuple[int, bytes]] = []
        for frag in self.fragments:
            if frag["role"] != "core":
                continue
            buf, head = self._open(frag)
            for s in frag["slices"]:
                if s["tensor"] == HEADER_SLICE:
                    info = head.by_name[HEADER_SLICE]
                    parts.append((s["bytes"][0], bytes(buf[info.abs_offset:info.abs_offset + info.n_bytes])))
        if not parts:
            raise ManifestError(f"{self.root}: no core fragment carries the source header")
        blob = b"".join(p for _, p in sorted(parts))
        src = self.manifest["source"]
        return parse_header(blob, src.get("bytes"), f"{self.root} (source header)")

    def tensors(self, frag: Mapping[str, Any]) -> dict[str, TensorData]:
        buf, head = self._open(frag)
        out = {}
        for s in frag["slices"]:
            if s["type"] == "bytes":
                continue
            info = head.by_name.get(s["tensor"])
            if info is None:
                raise FragmentError(f"fragment {frag['id']} lacks tensor {s['tensor']}")
            arr = _tensor_array(buf, info)
            out[s["tensor"]] = TensorData(arr.reshape(-1, arr.shape[-1]), info.qtype, info.shape[0])
        return out


def open_source(path: str | Path) -> GGUFSource | ManifestSource:
    p = Path(path)
    if p.is_dir():
        return ManifestSource(p)
    if p.name == "manifest.json":
        return ManifestSource(p.parent)
    if not p.exists():
        raise FileNotFoundError(2, "no such model file or manifest directory", str(p))
    return GGUFSource(p)


def load_model(path: str | Path, *, context_limit: int = DEFAULT_CONTEXT_LENGTH) -> LoadedModel:
    """`path` is a .gguf file or a directory holding manifest.json and fragment files."""
    src = open_source(path)
    meta, fragments = src.metadata, src.fragments
    has_output = any(s["tensor"] == "output.weight" for f in fragments for s in f["slices"])
    cfg = ModelConfig.from_metadata(meta, context_length=context_limit, has_output=has_output)

    # client data: 1-D norms (core) and MoE routers (router fragments)
    norms: dict[str, np.ndarray] = {}
    routers: dict[int, np.ndarray] = {}
    for frag in fragments:
        if frag["role"] in ("core", "router"):
            for name, t in src.tensors(frag).items():
                arr = np.asarray(t.raw, np.float32)
                if name.endswith("ffn_gate_inp.weight"):
                    routers[int(name.split(".")[1])] = arr.reshape(-1, cfg.n_embd)
                else:
                    norms[name] = arr.reshape(-1)

    # compute shards, keyed by fragment id (plan entries get stable stand-in ids)
    shards: dict[str, Shard] = {}
    for i, frag in enumerate(fragments):
        if frag["role"] in COMPUTE_ROLES:
            shards[fragment_key(frag, i)] = build_shard(cfg, frag, src.tensors(frag), norms, context_limit)
    layout = ModelLayout.from_fragments(cfg, fragments, norms, routers)
    if not layout.embed:
        raise GGUFError(f"{path}: no token_embd rows found")
    return LoadedModel(cfg, layout, shards, dict(meta), fragments)
