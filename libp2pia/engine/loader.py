"""Load a model for the engine: from a plain GGUF (fragmented in memory) or a manifest directory.

Result: the client's ModelLayout plus every compute shard, keyed by fragment id,
ready for the in-process backend (a worker builds only the shards it holds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GGUFError
from ..model.build import COMPUTE_ROLES, Shard, TensorData, build_shard
from ..model.config import ModelConfig
from ..model.layout import ModelLayout, fragment_key
from ..limits import DEFAULT_CONTEXT_LENGTH


@dataclass
class LoadedModel:
    cfg: ModelConfig
    layout: ModelLayout
    shards: dict[str, Shard]
    metadata: dict[str, Any]          # GGUF key/values (tokenizer included)
    fragments: list[dict[str, Any]]   # plan or manifest entries


def load_model(path: str | Path, *, context_limit: int = DEFAULT_CONTEXT_LENGTH) -> LoadedModel:
    """`path` is a .gguf file or a directory holding manifest.json and fragment files."""
    from ._stopgap import gguf_source  # replaced by libp2pia.fragments once it lands

    meta, fragments, tensors_of = gguf_source(Path(path))
    has_output = any(s["tensor"] == "output.weight" for f in fragments for s in f["slices"])
    cfg = ModelConfig.from_metadata(meta, context_length=context_limit, has_output=has_output)
    norms: dict[str, np.ndarray] = {}
    routers: dict[int, np.ndarray] = {}
    shards: dict[str, Shard] = {}
    for frag in fragments:
        if frag["role"] in COMPUTE_ROLES:
            continue
        for name, t in tensors_of(frag).items():
            arr = np.asarray(t.raw, np.float32)
            if name.endswith("ffn_gate_inp.weight"):
                routers[int(name.split(".")[1])] = arr.reshape(-1, cfg.n_embd)
            elif arr.ndim == 1 or arr.shape[0] == 1:
                norms[name] = arr.reshape(-1)
    for i, frag in enumerate(fragments):
        if frag["role"] in COMPUTE_ROLES:
            shards[fragment_key(frag, i)] = build_shard(cfg, frag, tensors_of(frag), norms, context_limit)
    layout = ModelLayout.from_fragments(cfg, fragments, norms, routers)
    if not layout.embed:
        raise GGUFError(f"{path}: no token_embd rows found")
    return LoadedModel(cfg, layout, shards, meta, fragments)


def tensor_slice(data: np.ndarray, qtype: Any, slice_: Mapping[str, Any], block: int, type_size: int) -> TensorData:
    """Cut rows/cols (and one expert of a 3-D tensor) out of a full tensor's raw data."""
    if slice_.get("expert") is not None:
        data = data[int(slice_["expert"])]
    r0, r1 = (int(v) for v in slice_["rows"])
    c0, c1 = (int(v) for v in slice_["cols"])
    if data.dtype == np.uint8:
        b0, b1 = c0 // block * type_size, c1 // block * type_size
        return TensorData(np.ascontiguousarray(data[r0:r1, b0:b1]), qtype, c1 - c0)
    return TensorData(np.ascontiguousarray(data.reshape(data.shape[0] if data.ndim > 1 else 1, -1)[r0:r1, c0:c1]),
                      qtype, c1 - c0)
