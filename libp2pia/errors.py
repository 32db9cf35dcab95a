"""The one exception tree of libp2pia.

Every error the library raises on purpose derives from :class:`Libp2piaError`.
Third-party errors (OSError, struct.error, protobuf DecodeError, libp2p
exceptions, ...) are translated at the boundary with ``raise ... from exc`` so
callers only ever need to catch these.

    Libp2piaError
    ├── FormatError            a file is not what it claims to be
    │   ├── GGUFError          not a GGUF, truncated, unsupported version, bad tensor info
    │   └── ManifestError      manifest missing, malformed or edited
    ├── FragmentError          a fragment is missing, corrupt (hash mismatch) or swapped
    ├── UnsupportedError       unknown architecture, tensor, quant type
    ├── QuantError             bad input to a kernel (length, alignment, type)
    ├── ModelError             model math/config errors (e.g. context overflow)
    ├── TokenizerError
    ├── SessionError           unknown/closed session on a shard
    ├── NetworkError           anything crossing the network
    │   ├── ProtocolError      a peer sent something malformed or oversized
    │   ├── PeerUnavailable    dial failed, stream reset, timeout
    │   └── RemoteError        the peer answered with a typed error
    └── MissingFragment        no live replica holds a fragment that is needed
"""

from __future__ import annotations


class Libp2piaError(Exception):
    """Base class of every error libp2pia raises on purpose."""


class FormatError(Libp2piaError):
    """A file is not what it claims to be."""


class GGUFError(FormatError):
    """A GGUF file is malformed, truncated or unsupported."""


class ManifestError(FormatError):
    """A fragment manifest is missing, malformed or was edited."""


class FragmentError(Libp2piaError):
    """A fragment file is missing, corrupt or not the one the manifest names."""


class UnsupportedError(Libp2piaError):
    """Something valid but not supported: an architecture, a tensor, a quant type."""


class QuantError(Libp2piaError):
    """Bad input to a quantized kernel (wrong byte length, misaligned columns, unknown type)."""


class ModelError(Libp2piaError):
    """The model cannot compute what was asked (bad config, context overflow, ...)."""


class TokenizerError(Libp2piaError):
    """The tokenizer metadata is missing or inconsistent."""


class SessionError(Libp2piaError):
    """A session is unknown, closed or out of room."""


class NetworkError(Libp2piaError):
    """Something went wrong while talking to another peer."""


class ProtocolError(NetworkError):
    """A peer sent a malformed, truncated or oversized message."""


class PeerUnavailable(NetworkError):
    """A peer could not be reached, reset the stream, or timed out."""


class RemoteError(NetworkError):
    """A peer answered a request with a typed error."""

    def __init__(self, code: str, message: str, peer: str | None = None) -> None:
        self.code = code
        self.peer = peer
        where = f" from {peer}" if peer else ""
        super().__init__(f"{code}{where}: {message}")


class MissingFragment(Libp2piaError):
    """No live replica holds a fragment that generation needs."""

    def __init__(self, fragment: str, detail: str = "") -> None:
        self.fragment = fragment
        msg = f"no live replica of fragment {fragment}"
        super().__init__(f"{msg} ({detail})" if detail else msg)
