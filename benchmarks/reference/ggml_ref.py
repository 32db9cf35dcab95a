"""llama.cpp's own ggml, called through ctypes from the libraries llama-cpp-python ships.

Reference only (tests marked `llama`, golden-fixture script, benchmarks); the library never imports it.

    quantize(name, x2d)      float32 (rows, cols) -> GGUF bytes (rows, row_bytes)   ggml_quantize_chunk
    vec_dot_rows(name, raw, x)  y[r] = ggml's CPU vec_dot(row r, x quantized to vec_dot_type)
    Gemv(name, raw, cols, n, threads)  ggml_mul_mat in a ggml graph on a persistent threadpool (timing)
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

TYPE_ID = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, "Q8_1": 9, "Q2_K": 10,
           "Q3_K": 11, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "Q8_K": 15, "IQ4_NL": 20, "IQ4_XS": 23, "BF16": 30}

VEC_DOT = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t, ctypes.c_void_p,
                           ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
FROM_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


class _TraitsCPU(ctypes.Structure):  # struct ggml_type_traits_cpu (ggml-cpu.h)
    _fields_ = [("from_float", FROM_FLOAT), ("vec_dot", VEC_DOT), ("vec_dot_type", ctypes.c_int),
                ("nrows", ctypes.c_int64)]


class _InitParams(ctypes.Structure):  # struct ggml_init_params
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


_LIBS: tuple[ctypes.CDLL, ctypes.CDLL] | None = None


def libs() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    """(libggml-base, libggml-cpu) of the installed llama-cpp-python; ImportError if absent."""
    global _LIBS
    if _LIBS is None:
        import llama_cpp  # noqa: F401  (ImportError when llama-cpp-python is not installed)

        d = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
        base = ctypes.CDLL(os.path.join(d, "libggml-base.so"))
        cpu = ctypes.CDLL(os.path.join(d, "libggml-cpu.so"))
        cpu.ggml_cpu_init()
        cpu.ggml_get_type_traits_cpu.restype = ctypes.POINTER(_TraitsCPU)
        cpu.ggml_get_type_traits_cpu.argtypes = [ctypes.c_int]
        base.ggml_quantize_chunk.restype = ctypes.c_size_t
        base.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                             ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
        base.ggml_row_size.restype = ctypes.c_size_t
        base.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
        base.ggml_init.restype = ctypes.c_void_p
        base.ggml_init.argtypes = [_InitParams]
        base.ggml_free.argtypes = [ctypes.c_void_p]
        base.ggml_new_tensor_2d.restype = ctypes.c_void_p
        base.ggml_new_tensor_2d.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        base.ggml_get_data.restype = ctypes.c_void_p
        base.ggml_get_data.argtypes = [ctypes.c_void_p]
        base.ggml_mul_mat.restype = ctypes.c_void_p
        base.ggml_mul_mat.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        base.ggml_new_graph.restype = ctypes.c_void_p
        base.ggml_new_graph.argtypes = [ctypes.c_void_p]
        base.ggml_build_forward_expand.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        base.ggml_threadpool_params_init.argtypes = [ctypes.c_void_p, ctypes.c_int]
        cpu.ggml_threadpool_new.restype = ctypes.c_void_p
        cpu.ggml_threadpool_new.argtypes = [ctypes.c_void_p]
        cpu.ggml_threadpool_free.argtypes = [ctypes.c_void_p]
        cpu.ggml_graph_plan.restype = _CPlan
        cpu.ggml_graph_plan.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        cpu.ggml_graph_compute.restype = ctypes.c_int
        cpu.ggml_graph_compute.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        _LIBS = (base, cpu)
    return _LIBS


def _p(a: np.ndarray) -> ctypes.c_void_p:
    return a.ctypes.data_as(ctypes.c_void_p)


def quantize(name: str, x2d: np.ndarray) -> np.ndarray:
    """float32 (rows, cols) -> uint8 (rows, row_bytes) by ggml_quantize_chunk (no importance matrix)."""
    base, _ = libs()
    x2d = np.ascontiguousarray(x2d, np.float32)
    rows, cols = x2d.shape
    out = np.empty((rows, base.ggml_row_size(TYPE_ID[name], cols)), np.uint8)
    n = base.ggml_quantize_chunk(TYPE_ID[name], _p(x2d), _p(out), 0, rows, cols, None)
    if n != out.nbytes:
        raise RuntimeError(f"ggml_quantize_chunk wrote {n} bytes, expected {out.nbytes}")
    return out


def vec_dot_rows(name: str, raw: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y[r] exactly as ggml-cpu computes one row: x -> vec_dot_type by from_float, then vec_dot."""
    _, cpu = libs()
    tr = cpu.ggml_get_type_traits_cpu(TYPE_ID[name]).contents
    vdt = tr.vec_dot_type
    x = np.ascontiguousarray(x, np.float32)
    n = x.shape[0]
    if vdt == TYPE_ID["F32"]:
        qx = x
    else:
        base, _ = libs()
        qx = np.zeros(base.ggml_row_size(vdt, n), np.uint8)
        cpu.ggml_get_type_traits_cpu(vdt).contents.from_float(_p(x), _p(qx), n)
    raw = np.ascontiguousarray(raw).view(np.uint8).reshape(raw.shape[0], -1)
    y = np.empty(raw.shape[0], np.float32)
    s = ctypes.c_float()
    for r in range(raw.shape[0]):
        tr.vec_dot(n, ctypes.byref(s), 0, raw.ctypes.data + r * raw.shape[1], 0, qx.ctypes.data, 0, 1)
        y[r] = s.value
    return y


class _CPlan(ctypes.Structure):  # struct ggml_cplan (ggml-cpu.h); trailing padding guards newer fields
    _fields_ = [("work_size", ctypes.c_size_t), ("work_data", ctypes.c_void_p), ("n_threads", ctypes.c_int),
                ("threadpool", ctypes.c_void_p), ("abort_callback", ctypes.c_void_p),
                ("abort_callback_data", ctypes.c_void_p), ("use_ref", ctypes.c_bool),
                ("_pad", ctypes.c_uint8 * 64)]


class _TPParams(ctypes.Structure):  # struct ggml_threadpool_params (ggml.h), GGML_MAX_N_THREADS = 512
    _fields_ = [("cpumask", ctypes.c_bool * 512), ("n_threads", ctypes.c_int), ("prio", ctypes.c_int),
                ("poll", ctypes.c_uint32), ("strict_cpu", ctypes.c_bool), ("paused", ctypes.c_bool),
                ("_pad", ctypes.c_uint8 * 64)]


class Gemv:
    """Y = X W^T through ggml_mul_mat in a CPU graph (ggml's real decode path), for timing.

    Like llama.cpp, a persistent ggml threadpool runs the graph; use as a context manager so the pool
    (whose idle threads poll) is gone before anything else is timed.
    """

    def __init__(self, name: str, raw: np.ndarray, cols: int, n: int = 1, threads: int = 1) -> None:
        base, cpu = libs()
        rows = raw.shape[0]
        mem = raw.nbytes + 8 * cols * n + 4 * rows * n + 4 * 1024 * 1024
        self.ctx = base.ggml_init(_InitParams(mem, None, False))
        if not self.ctx:
            raise RuntimeError("ggml_init failed")
        self.w = base.ggml_new_tensor_2d(self.ctx, TYPE_ID[name], cols, rows)
        self.x = base.ggml_new_tensor_2d(self.ctx, TYPE_ID["F32"], cols, n)
        self.y = base.ggml_mul_mat(self.ctx, self.w, self.x)
        self.graph = base.ggml_new_graph(self.ctx)
        base.ggml_build_forward_expand(self.graph, self.y)
        ctypes.memmove(base.ggml_get_data(self.w), raw.ctypes.data, raw.nbytes)
        self.rows, self.cols, self.n = rows, cols, n
        params = _TPParams()
        base.ggml_threadpool_params_init(ctypes.byref(params), threads)
        self.pool = cpu.ggml_threadpool_new(ctypes.byref(params))
        self.plan = cpu.ggml_graph_plan(self.graph, threads, self.pool)
        self.work = np.zeros(max(int(self.plan.work_size), 1), np.uint8)
        self.plan.work_data = self.work.ctypes.data

    def __call__(self, x: np.ndarray) -> np.ndarray:
        base, cpu = libs()
        x = np.ascontiguousarray(x, np.float32).reshape(self.n, self.cols)
        ctypes.memmove(base.ggml_get_data(self.x), x.ctypes.data, x.nbytes)
        if cpu.ggml_graph_compute(self.graph, ctypes.byref(self.plan)) != 0:
            raise RuntimeError("ggml_graph_compute failed")
        out = np.empty((self.n, self.rows), np.float32)
        ctypes.memmove(out.ctypes.data, base.ggml_get_data(self.y), out.nbytes)
        return out

    def close(self) -> None:
        base, cpu = libs()
        if self.pool:
            cpu.ggml_threadpool_free(self.pool)
            self.pool = None
        if self.ctx:
            base.ggml_free(self.ctx)
            self.ctx = None

    def __enter__(self) -> "Gemv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
