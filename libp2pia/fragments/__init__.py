"""libp2pia.fragments: cut a GGUF into compute-unit fragments, plan, read, verify, reassemble.

Public API:

| call | what |
|---|---|
| ``plan(path, max_fragment_bytes, replication)`` | manifest-shaped plan + ``summary`` from the header alone |
| ``fragment(src, out_dir, max_fragment_bytes)`` | write fragment files + manifest.json; returns the manifest |
| ``open_fragment(path) -> Fragment`` | a fragment file's slices as uint8 (rows, row_bytes) arrays + metadata |
| ``GGUFFragments(path)`` | the same Fragment objects straight from a plain GGUF (in-memory plan) |
| ``load_manifest(path)`` / ``verify(manifest)`` | manifest validation / every fragment's hash and metadata |
| ``reassemble(manifest, out)`` | bit-perfect rebuild of the source (sha256 checked) |
"""

from .cut import fragment
from .manifest import load_manifest, summary
from .plan import plan, plan_specs
from .reader import Fragment, FragmentSlice, GGUFFragments, open_fragment
from .reassemble import file_sha256, reassemble, verify

__all__ = ["Fragment", "FragmentSlice", "GGUFFragments", "file_sha256", "fragment", "load_manifest",
           "open_fragment", "plan", "plan_specs", "reassemble", "summary", "verify"]
