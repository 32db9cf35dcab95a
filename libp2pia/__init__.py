"""libp2pia: peer-to-peer LLM inference on CPUs.

A GGUF model is cut into small content-addressed fragments (compute units);
volunteer peers hold a few each and compute partial matrix products; a client
drives generation token by token over py-libp2p.
"""

from __future__ import annotations

from .default_model import default_model_path
from .errors import Libp2piaError

__version__ = "0.1.0"
__all__ = ["Libp2piaError", "__version__", "connect", "default_model_path", "generate"]


def __getattr__(name: str):  # noqa: ANN202 - lazy: `import libp2pia.gguf` must not load libp2p/numba
    if name in ("connect", "generate", "Client"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'libp2pia' has no attribute {name!r}")
