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
#: Smallest fragment size limit accepted: below this the fixed GGUF/metadata overhead of a
#: fragment file (~1 KiB) dominates and tokenizer-sized headers explode into thousands of parts.
MIN_FRAGMENT_BYTES = 4096
#: Largest fragment size limit accepted: above the size of any model (the biggest GGUFs are
#: ~0.5 TiB), so a larger value is a typo, not a request.
MAX_FRAGMENT_LIMIT_BYTES = 1 << 40
#: Replication factors ``plan`` reports when none are given.
DEFAULT_PLAN_REPLICATION = (3, 5)
#: Read/hash chunk of the fragmenter and reassembler (large enough to amortise syscalls,
#: small enough that peak memory stays ~ one fragment).
IO_CHUNK_BYTES = 4 * MiB
#: Most fragments hashed and written at once by ``fragment`` (one per core up to this): past a
#: few cores the copy into the page cache, not sha256, is the bound.
MAX_FRAGMENT_THREADS = 8
#: Above this many fragments manifest.json is written on one line: Python's JSON encoder is
#: ~20x slower with indentation, which dominates for models with 10^4-10^5 fragments.
MANIFEST_INDENT_MAX_FRAGMENTS = 2000
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

#: Consecutive phases run by one holder in one request (layer chaining) only for batches of at most
#: this many rows: a decode step (1 row) through every layer is one request, while a prompt chunk
#: (up to 512 rows) goes phase by phase so that no single request's compute nears the request
#: timeout on a slow volunteer (a run of n rows costs n × the phases' weights on one CPU).
RUN_MAX_ROWS = 8
#: How many times one step's runs may fail over before the engine gives up (each failure marks a
#: holder down and re-pins its fragments, so this is more holders lost than replicas usually exist).
RUN_REPLANS = 8
#: Most phases in one run request: every phase of the deepest target model (Mistral Large 3: 61
#: layers, 122 phases) with room to spare; more is a malformed or hostile request.
MAX_RUN_PHASES = 512

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

# --- wire format -------------------------------------------------------------
#: Most dimensions a tensor on the wire may have: activations are [n, d], token
#: ids [n]; anything beyond a handful is a malformed message.
MAX_TENSOR_DIMS = 4
#: Most shard calls in one compute request: every shard of one phase held by a
#: single peer (a laptop may hold hundreds of fragments; a layer has at most a
#: few hundred experts).
MAX_CALLS_PER_REQUEST = 1024
#: Most logits candidates a vocabulary shard returns per row when asked for its best ones (the
#: client asks for 1 when greedy, top_k when sampling with top-k; otherwise every logit).
MAX_LOGITS_TOP_K = 256
#: A top-k logits call also brings back its candidates' embedding rows (so the next token skips
#: the embed phase: one network round trip less per token) while all shards' rows together stay
#: under this many bytes per token at 2 bytes a value (Gemma greedy: 18 x 1 x 640 x 2 = 23 KiB).
PREFETCH_EMBEDDINGS_MAX_BYTES = 256 * 1024
#: Longest session id (we send 32 hex characters; leave room for others).
MAX_SESSION_ID_CHARS = 128
#: Longest fragment id: a sha256 in hex.
FRAGMENT_ID_CHARS = 64
#: Bytes of a varint length prefix we accept before declaring the frame
#: malformed (4 bytes already encode 256 MiB > MAX_MESSAGE_BYTES).
MAX_VARINT_PREFIX_BYTES = 5
#: Most addresses and fragment ids in one announcement (keeps it under
#: MAX_ANNOUNCE_BYTES with room to spare).
MAX_ANNOUNCED_ADDRS = 32
MAX_ANNOUNCED_FRAGMENTS = 900
#: Largest model manifest record stored in the DHT: py-libp2p refuses DHT records
#: over 1 MiB (kad_dht.common.MAX_RECORD_SIZE); Gemma 3 270M's manifest is ~0.1 MiB.
#: A bigger manifest would have to travel as a fragment.
MAX_MANIFEST_RECORD_BYTES = 1000 * 1024

# --- network services --------------------------------------------------------
#: Bound on reading one stream chunk while a frame is incomplete.
STREAM_READ_CHUNK_BYTES = 256 * 1024
#: Opening a stream or negotiating a protocol on an existing connection.
DEFAULT_STREAM_OPEN_TIMEOUT_S = 5.0
#: How long a server waits for the next request on an idle reused stream before
#: closing it (a session's client sends one per layer phase per token).
STREAM_IDLE_TIMEOUT_S = 300.0
#: After answering broken framing with an error, a server waits at most this long for the peer to
#: read it and close before it resets the stream (a reset sent at once can overtake the answer).
BAD_FRAME_LINGER_S = 1.0
#: A DHT lookup (get_value, find_providers, provide, put_value).
DHT_QUERY_TIMEOUT_S = 10.0
#: Routing table refresh: how long one refresh may take, and how often it runs.
DHT_REFRESH_TIMEOUT_S = 20.0
DHT_REFRESH_PERIOD_S = 60.0
#: Gossipsub heartbeat (mesh maintenance); 120 s upstream default is far too slow.
GOSSIP_HEARTBEAT_INTERVAL_S = 1.0
#: Gossipsub spam limit per peer per topic: announcements are ~1 per period per
#: peer, but a burst at start-up must not be dropped.
GOSSIP_MAX_MESSAGES_PER_TOPIC_PER_S = 200
#: How long closing a host may take before we give up on a clean close.
HOST_CLOSE_TIMEOUT_S = 5.0

# --- relay (circuit relay v2) ------------------------------------------------
#: A relayed circuit lives as long as a long chat session; py-libp2p's default is 1 h too.
RELAY_CIRCUIT_DURATION_S = 3600
#: Bytes one circuit may carry: a 50-token Gemma 3 270M answer moves ~5 MB of
#: activations; big models and long chats need more. Heavy traffic should go
#: over DCUtR's direct link anyway (a relay does ~6 MB/s).
RELAY_CIRCUIT_BYTES = 1024 * MiB
#: Concurrent circuits and reservations one relay accepts.
RELAY_MAX_CIRCUITS = 256
RELAY_MAX_RESERVATIONS = 128
#: How long a reservation stays valid before the client's refresher renews it.
RELAY_RESERVATION_TTL_S = 3600
#: Reserving a slot or dialing through a relay (two hops plus a handshake).
RELAY_DIAL_TIMEOUT_S = 10.0
#: AutoNAT: one dial-back query.
AUTONAT_QUERY_TIMEOUT_S = 10.0
#: Bound on one fragment transfer (10 MiB at loopback speed takes ~0.2 s; over a
#: relay at ~6 MB/s about 2 s; leave room for slow volunteers).
FRAGMENT_TRANSFER_TIMEOUT_S = 120.0

# --- node processes ------------------------------------------------------------
#: A worker computes a request of at most this many activation rows (a decode step: 1 row per
#: call) on its event loop thread instead of handing it to a worker thread: the kernels take
#: 0.1-1 ms there, and the hand-off and wake-up of trio.to_thread cost ~0.5 ms per request
#: (measured: Gemma swarm, 1 worker, 117 -> 98 ms/token). Prompt chunks still go to a thread.
INLINE_COMPUTE_MAX_ROWS = 4
#: How long `libp2pia swarm` waits for one process's readiness line (a worker loads,
#: verifies and warms its fragments first; 2 cores shared by many processes).
PROCESS_READY_TIMEOUT_S = 180.0
#: How long a terminated process may take to exit before it is killed.
PROCESS_STOP_TIMEOUT_S = 10.0
#: Largest fragment we download when the manifest's size is not at hand: an
#: "oversize" fragment (one tensor row block that cannot be cut) may exceed the
#: 10 MiB budget; this only bounds what a lying provider can make us write.
MAX_FRAGMENT_FETCH_BYTES = 1024 * MiB

#: When every known holder of a fragment is down, the client looks the fragment up again before it gives
#: up (its first lookup stopped at the first holder found); this bounds that second look.
REDISCOVER_TIMEOUT_S = 5.0
#: A worker provides its fragments on the DHT at most this many at once (28 parallel provides from a
#: NATed worker timed out on 2 cores), and retries the ones that timed out this many rounds in all.
PROVIDE_PARALLEL = 8
PROVIDE_ATTEMPTS = 3
