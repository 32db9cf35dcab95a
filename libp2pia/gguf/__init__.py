"""libp2pia.gguf: read GGUF headers (our own bounded parser), write GGUF files, tensor roles,
hyper-parameters per architecture, header-only presets of the big target models, synthetic models.

Public API: :func:`read_header`, :class:`GGUFHeader`, :class:`TensorInfo`, :func:`tensor_role`,
:func:`hparams`, :class:`StreamWriter`, :func:`encode_header`, and the modules ``presets`` and
``synth``.
"""

from .hparams import SUPPORTED_ARCHITECTURES, hparams, per_layer
from .reader import GGUFHeader, TensorInfo, check_data_bounds, parse_header, read_header
from .roles import TensorRole, tensor_role
from .writer import KV, StreamWriter, TensorSpec, encode_header

__all__ = ["GGUFHeader", "KV", "SUPPORTED_ARCHITECTURES", "StreamWriter", "TensorInfo", "TensorRole", "TensorSpec",
           "check_data_bounds", "encode_header", "hparams", "parse_header", "per_layer", "read_header", "tensor_role"]
