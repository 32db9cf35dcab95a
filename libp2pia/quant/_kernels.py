"""numba kernels. Keep this module stable: numba's on-disk cache is keyed on this file's mtime, so any
edit here recompiles every kernel at the next start (~10 s). Layout decoding lives in layout.py.

Every weight type is first unpacked (layout.py, once per matrix) into one common form, so one dot kernel
serves all of them:

    w[r, j*sub + l] = d[r, sb] * sc[r, j] * q[r, j, l]  -  dmin[r, sb] * mn[r, j]      (sb = j // spb)

q: int8 small integers (float32 for F32/F16/BF16), sc/mn: int8 sub-block scale/min, d/dmin: float32 per
super-block. The activation comes in the matching form (xq integer-valued float32 per element, xd/xmd
float32 per super-block, xs float32 per sub-block), so for one row

    y = sum_sb (xd*d) * sum_j sc_j * (sum_l q*xq)  -  (xmd*dmin) * sum_j mn_j * xs_j

which is ggml's integer block dot: every inner sum is an exact integer in float32 (|partial sums| < 2^24),
only the per-super-block float accumulation is rounded, as in ggml's fp32 SIMD lanes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# reassoc lets LLVM vectorise the reductions (exact here: integer-valued floats below 2^24); no nnan/ninf,
# so NaN and Inf propagate as in IEEE arithmetic.
_FM = {"reassoc", "contract", "nsz", "arcp"}
ROWS_PER_GROUP = 4  # rows computed together: shares every activation load, 4 independent accumulators


@njit(nogil=True, cache=True, fastmath=_FM, error_model="numpy")
def _rows(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, g):  # pragma: no cover - compiled
    """y[n, r] for all rows r (padded to a multiple of 4) and batch items n.

    q (R, nsub, sub) int8|f32; sc, mn (R, nsub) int8; d, dmin (R, nsb) f32;
    xq (N, nsub, sub) f32; xs (N, nsub) f32; xd, xmd (N, nsb) f32; y (N, R) f32.
    """
    nsub = q.shape[1]
    sub = q.shape[2]
    nsb = d.shape[1]
    spb = nsub // nsb
    if True:  # one group of 4 rows: g
        r = g * 4
        for n in range(xq.shape[0]):  # batch inside: the 4 rows' bytes stay in L1 across the batch
            a0 = a1 = a2 = a3 = np.float32(0.0)
            for b in range(nsb):
                i0 = i1 = i2 = i3 = np.float32(0.0)
                m0 = m1 = m2 = m3 = np.float32(0.0)
                for j in range(b * spb, b * spb + spb):
                    t0 = t1 = t2 = t3 = np.float32(0.0)
                    for l in range(sub):
                        xv = xq[n, j, l]
                        t0 += np.float32(q[r, j, l]) * xv
                        t1 += np.float32(q[r + 1, j, l]) * xv
                        t2 += np.float32(q[r + 2, j, l]) * xv
                        t3 += np.float32(q[r + 3, j, l]) * xv
                    i0 += np.float32(sc[r, j]) * t0
                    i1 += np.float32(sc[r + 1, j]) * t1
                    i2 += np.float32(sc[r + 2, j]) * t2
                    i3 += np.float32(sc[r + 3, j]) * t3
                    xsj = xs[n, j]
                    m0 += np.float32(mn[r, j]) * xsj
                    m1 += np.float32(mn[r + 1, j]) * xsj
                    m2 += np.float32(mn[r + 2, j]) * xsj
                    m3 += np.float32(mn[r + 3, j]) * xsj
                xdb = xd[n, b]
                xmb = xmd[n, b]
                a0 += (xdb * d[r, b]) * i0 - (xmb * dmin[r, b]) * m0
                a1 += (xdb * d[r + 1, b]) * i1 - (xmb * dmin[r + 1, b]) * m1
                a2 += (xdb * d[r + 2, b]) * i2 - (xmb * dmin[r + 2, b]) * m2
                a3 += (xdb * d[r + 3, b]) * i3 - (xmb * dmin[r + 3, b]) * m3
            y[n, r] = a0
            y[n, r + 1] = a1
            y[n, r + 2] = a2
            y[n, r + 3] = a3


@njit(parallel=True, nogil=True, cache=True, fastmath=_FM, error_model="numpy")
def dot_rows(q, sc, mn, d, dmin, xq, xs, xd, xmd, y):  # pragma: no cover - compiled
    """All row groups on numba's thread pool (contract: _rows)."""
    for g in prange(q.shape[0] // 4):
        _rows(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, g)


@njit(nogil=True, cache=True, fastmath=_FM, error_model="numpy")
def dot_rows_serial(q, sc, mn, d, dmin, xq, xs, xd, xmd, y):  # pragma: no cover - compiled
    """The same in the calling thread."""
    for g in range(q.shape[0] // 4):
        _rows(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, g)


@njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def dequant_rows(q, sc, mn, d, dmin, out):  # pragma: no cover - compiled
    """out[r, j*sub + l] = (d*sc) * q - (dmin*mn), in float32 in exactly gguf-py's operation order."""
    nsub = q.shape[1]
    sub = q.shape[2]
    spb = nsub // d.shape[1]
    for r in prange(out.shape[0]):
        for j in range(nsub):
            b = j // spb
            a = d[r, b] * np.float32(sc[r, j])
            m = dmin[r, b] * np.float32(mn[r, j])
            for l in range(sub):
                out[r, j * sub + l] = a * np.float32(q[r, j, l]) - m


@njit(nogil=True, cache=True, error_model="numpy")
def quantize_q8_0(x, xq, d32, s32):  # pragma: no cover - compiled
    """ggml's x86 quantize_row_q8_0/q8_1 for blocks of 32: d = amax/127, q = rint(x * 127/amax).

    x, xq (N, nblk, 32) f32; d32 (N, nblk) = unrounded d (caller rounds to fp16); s32 = d * sum(q) (Q8_1).
    """
    for n in range(x.shape[0]):
        for b in range(x.shape[1]):
            amax = np.float32(0.0)
            for l in range(32):
                a = abs(x[n, b, l])
                if a > amax:
                    amax = a
            dd = amax / np.float32(127.0)
            iv = np.float32(127.0) / amax if amax != 0 else np.float32(0.0)
            s = np.float32(0.0)
            for l in range(32):
                v = np.rint(x[n, b, l] * iv)
                if iv == np.inf and v == v:
                    # amax < 127/FLT_MAX (denormal block): ggml's float->int conversion saturates every
                    # element to -128 while d rounds to fp16 zero, so the block adds 0. NaN stays NaN.
                    v = np.float32(-128.0)
                xq[n, b, l] = v
                s += v
            d32[n, b] = dd
            s32[n, b] = dd * s


@njit(nogil=True, cache=True, error_model="numpy")
def quantize_q8_k(x, xq, xd):  # pragma: no cover - compiled
    """ggml's quantize_row_q8_K_ref for blocks of 256: iscale = -127/max (signed), q = min(127, rint(iscale*x))."""
    for n in range(x.shape[0]):
        for b in range(x.shape[1]):
            amax = np.float32(0.0)
            mx = np.float32(0.0)
            for l in range(256):
                a = abs(x[n, b, l])
                if a > amax:
                    amax = a
                    mx = x[n, b, l]
            if amax == 0:
                for l in range(256):
                    xq[n, b, l] = 0.0
                xd[n, b] = 0.0
                continue
            iscale = np.float32(-127.0) / mx
            for l in range(256):
                v = np.rint(iscale * x[n, b, l])
                if abs(iscale) == np.inf and v == v:
                    v = np.float32(0.0)  # denormal block: ggml's nearest_int(+-inf) stores 0 (and d = -0)
                xq[n, b, l] = np.float32(127.0) if v > 127 else v  # ggml: MIN(127, v); NaN stays NaN
            xd[n, b] = np.float32(1.0) / iscale


@njit(nogil=True, cache=True, error_model="numpy")
def block_sums(xq, xs):  # pragma: no cover - compiled
    """xs[n, j] = sum of xq[n, j, :] (ggml's Q8_K bsums / Q8_1 sums)."""
    for n in range(xq.shape[0]):
        for j in range(xq.shape[1]):
            s = np.float32(0.0)
            for l in range(xq.shape[2]):
                s += xq[n, j, l]
            xs[n, j] = s
