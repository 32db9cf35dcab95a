"""A worker's fragment store: a directory with manifest.json and some of its fragment files.

What the worker serves, in order, until the storage budget is used up:

| order | fragments                    | why                                                   |
|-------|------------------------------|-------------------------------------------------------|
| 1     | core (always, even over budget) | config, norms and tokenizer: shards cannot be built without them |
| 2     | the rest, in manifest order  | present on disk and whose sha256 matches the id        |

Files that are missing or corrupt are skipped with a warning (never served).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FragmentError
from ..fragments import file_sha256, load_manifest

log = logging.getLogger(__name__)


@dataclass
class FragmentStore:
    root: Path
    manifest: dict[str, Any]
    held: dict[str, dict[str, Any]] = field(default_factory=dict)   # id -> manifest entry
    skipped: list[str] = field(default_factory=list)                # ids present but over budget

    @property
    def model_id(self) -> str:
        return str(self.manifest["model_id"])

    @property
    def bytes_held(self) -> int:
        return sum(int(e["bytes"]) for e in self.held.values())

    def path(self, fragment_id: str) -> Path | None:
        """The verified file of a fragment this store serves (None otherwise)."""
        entry = self.held.get(fragment_id)
        return self.root / entry["file"] if entry is not None else None

    @classmethod
    def open(cls, root: Path, budget: int, *, verify: bool = True) -> "FragmentStore":
        manifest = load_manifest(root / "manifest.json")
        store = cls(root, manifest)
        entries = manifest["fragments"]
        core = [e for e in entries if e["role"] == "core"]
        rest = [e for e in entries if e["role"] != "core"]
        used = 0
        for entry in core + rest:
            path = root / entry["file"]
            if not path.exists():
                if entry["role"] == "core":
                    raise FragmentError(f"{root}: core fragment {entry['id'][:12]} is missing (needed for the config)")
                continue
            if entry["role"] != "core" and used + int(entry["bytes"]) > budget:
                store.skipped.append(entry["id"])
                continue
            if verify and file_sha256(path) != entry["id"]:
                log.warning("fragment file %s does not match its id: not served", path)
                continue
            store.held[entry["id"]] = entry
            used += int(entry["bytes"])
        if store.skipped:
            log.warning("storage budget of %d bytes reached: %d fragment(s) in %s not served",
                        budget, len(store.skipped), root)
        return store
