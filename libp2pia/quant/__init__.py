"""libp2pia.quant — quantized compute kernels (the only package that imports numba).

Public API::

    dequantize(raw, qtype, shape) -> float32 ndarray        # bit-identical to gguf.quants.dequantize
    matvec(weights, qtype, x, mode="ggml") -> y             # weights uint8 (rows, row_bytes) or PreparedMatrix
    matmul(weights, qtype, X, mode="ggml") -> Y             # X (n, cols) -> Y (n, rows)
    prepare(weights, qtype) -> PreparedMatrix               # load-time re-layout, accepted by matvec/matmul
    warmup(qtypes) -> {name: seconds}                       # compile/load every kernel the types need
    set_threads(n) / get_threads()                          # kernel threads for the calling thread

`qtype` is a gguf.GGMLQuantizationType or its name ("Q4_K"). `mode="ggml"` quantizes the activation like
ggml (agrees with llama.cpp's vec_dot); `mode="exact"` multiplies the dequantized weights by float32 x.
Errors are libp2pia.errors.QuantError.
"""

from libp2pia.quant.api import (MODES, PreparedMatrix, dequantize, get_threads, matmul, matvec, prepare,
                               set_threads, warmup)
from libp2pia.quant.qtypes import SUPPORTED, VEC_DOT_TYPE

__all__ = ["MODES", "SUPPORTED", "VEC_DOT_TYPE", "PreparedMatrix", "dequantize", "matmul", "matvec",
           "prepare", "set_threads", "get_threads", "warmup"]
