"""Every limit of the library in one place, each with its reason.

Modules import these names rather than hard-coding numbers, so a reader can
see at a glance what bounds what.
"""

from __future__ import annotations

MiB = 1024 * 1024

# --- fragments -------------------------------------------------------------
#: Default upper bound of one fragment file. The project's premise: a phone-class
#: volunteer can hold and serve one fragment of this size.
DEFAULT_MAX_FRAGMENT_BYTES = 10 * MiB
#: Manifest format version written by this library; readers refuse newer ones.
MANIFEST_FORMAT_VERSION = 1
#: GGUF versions we can read (v1 used 32-bit counts and is obsolete).
SUPPORTED_GGUF_VERSIONS = (2, 3)
#: Bound on one GGUF string or array length while parsing a header, so a
#: corrupt length field fails fast instead of allocating gigabytes.
MAX_GGUF_STRING_BYTES = 64 * MiB
MAX_GGUF_ARRAY_ITEMS = 64 * 1024 * 1024
MAX_GGUF_TENSORS = 1_000_000
MAX_GGUF_KV = 1_000_000

# --- kernels ---------------------------------------------------------------
#: Below this many weight bytes a matvec runs in the calling thread: waking numba's thread pool costs
#: more (tens of microseconds, far more on a loaded machine) than splitting a small matrix saves.
KERNEL_PARALLEL_MIN_BYTES = 256 * 1024

# --- model -----------------------------------------------------------------
#: Default context limit of a generation session (tokens).
DEFAULT_CONTEXT_LENGTH = 8192

# --- network ---------------------------------------------------------------
#: Largest protobuf message accepted on any libp2pia stream. A batch of
#: activations for a 512-token prompt at hidden 7168 in float32 is ~14.7 MB;
#: larger prompts are sent in chunks.
MAX_MESSAGE_BYTES = 32 * MiB
#: Largest gossip announcement (control messages only).
MAX_ANNOUNCE_BYTES = 64 * 1024
#: Default bound on any single network wait (dial, request, read).
DEFAULT_REQUEST_TIMEOUT_S = 10.0
DEFAULT_DIAL_TIMEOUT_S = 5.0
#: Heartbeat period and how many missed beats make a peer dead.
DEFAULT_HEARTBEAT_PERIOD_S = 30.0
DEFAULT_HEARTBEAT_MISSES = 3
#: Chunk size of fragment transfers.
FRAGMENT_CHUNK_BYTES = 1 * MiB
#: Default storage budget of a worker.
DEFAULT_WORKER_STORAGE_BYTES = 10 * MiB
