"""AVX2 integer block dots for numba, the way ggml does them (keep this module stable: numba cache).

numba has no SIMD types, so this module gives it two (8 x int32 and 8 x float32 in ymm registers) and five
intrinsics; the kernel below then reads like ggml's AVX2 code:

    per 32 weights:  p16 = maddubs(|w|, sign(x, w))        u8 x s8 -> 16 x i16 pair sums (|.| <= 32512)
                     p32 = madd(p16, [s_lo x8, s_hi x8])    x sub-block scale(s) -> 8 x i32
    per super-block: acc_f += float(sum of p32) * (xd * d)  8 float lanes, no horizontal sum
    per row:         y = hsum(acc_f) - sum_sb (xmd * dmin) * sum_j mn_j * xs_j

The integer part is exact (as ggml's); only the float lanes' order differs from ggml.
Used when the CPU has AVX2 (HAS_AVX2); otherwise _kernels.dot_rows does the same maths in float32.
"""

from __future__ import annotations

import numpy as np
from llvmlite import binding as llb
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

HAS_AVX2 = llb.get_host_cpu_features().get("avx2", False)

_I8x32 = ir.VectorType(ir.IntType(8), 32)
_I16x16 = ir.VectorType(ir.IntType(16), 16)
_I32x8 = ir.VectorType(ir.IntType(32), 8)
_F32x8 = ir.VectorType(ir.FloatType(), 8)


class _Vec(types.Type):
    def __init__(self, name: str) -> None:
        super().__init__(name=name)


I32x8 = _Vec("i32x8")
F32x8 = _Vec("f32x8")


@register_model(type(I32x8))
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):  # type: ignore[no-untyped-def]
        super().__init__(dmm, fe_type, _I32x8 if fe_type.name == "i32x8" else _F32x8)


def _fn(builder: ir.IRBuilder, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, args), name)


def _splat(builder: ir.IRBuilder, v: ir.Value, vt: ir.VectorType) -> ir.Value:
    one = builder.insert_element(ir.Constant(vt, None), v, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vt, None), ir.Constant(ir.VectorType(ir.IntType(32), vt.count), [0] * vt.count))


@intrinsic
def i32x8_zero(typingctx):  # type: ignore[no-untyped-def]
    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return ir.Constant(_I32x8, [0] * 8)
    return I32x8(), codegen


@intrinsic
def f32x8_zero(typingctx):  # type: ignore[no-untyped-def]
    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return ir.Constant(_F32x8, [0.0] * 8)
    return F32x8(), codegen


@intrinsic
def dot32(typingctx, acc, w, woff, x, xoff, sc, s_lo, s_hi):  # type: ignore[no-untyped-def]
    """acc + madd(maddubs(|w|, sign(x, w)), [sc[s_lo] x8, sc[s_hi] x8]).

    w, x, sc: int8 arrays (C order) read at flat element offsets; 32 bytes of w and x.
    """
    sig = I32x8(I32x8, w, types.intp, x, types.intp, sc, types.intp, types.intp)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        vacc, aw, ow, ax, ox, asc, olo, ohi = args
        pw = cgutils.create_struct_proxy(sig.args[1])(context, builder, value=aw).data
        px = cgutils.create_struct_proxy(sig.args[3])(context, builder, value=ax).data
        ps = cgutils.create_struct_proxy(sig.args[5])(context, builder, value=asc).data
        slo = builder.sext(builder.load(builder.gep(ps, [olo])), ir.IntType(16))
        shi = builder.sext(builder.load(builder.gep(ps, [ohi])), ir.IntType(16))
        vw = builder.load(builder.bitcast(builder.gep(pw, [ow]), _I8x32.as_pointer()), align=1)
        vx = builder.load(builder.bitcast(builder.gep(px, [ox]), _I8x32.as_pointer()), align=1)
        absw = builder.call(_fn(builder, "llvm.abs.v32i8", _I8x32, [_I8x32, ir.IntType(1)]),
                            [vw, ir.Constant(ir.IntType(1), 0)])
        sx = builder.call(_fn(builder, "llvm.x86.avx2.psign.b", _I8x32, [_I8x32, _I8x32]), [vx, vw])
        p16 = builder.call(_fn(builder, "llvm.x86.avx2.pmadd.ub.sw", _I16x16, [_I8x32, _I8x32]), [absw, sx])
        sv = builder.shuffle_vector(_splat(builder, slo, _I16x16), _splat(builder, shi, _I16x16),
                                    ir.Constant(ir.VectorType(ir.IntType(32), 16), list(range(8)) + list(range(24, 32))))
        p32 = builder.call(_fn(builder, "llvm.x86.avx2.pmadd.wd", _I32x8, [_I16x16, _I16x16]), [p16, sv])
        return builder.add(vacc, p32)

    return sig, codegen


@intrinsic
def dot64_nib(typingctx, acc, w, woff, x, xoff, sc, s_lo, s_hi):  # type: ignore[no-untyped-def]
    """acc + madd(maddubs(w & 15, x[0:32]), sc[s_lo]) + madd(maddubs(w >> 4, x[32:64]), sc[s_hi]).

    32 bytes of packed nibbles (GGUF Q4_K order: low nibbles = sub-block 2k, high = 2k+1), 64 int8 of x.
    """
    sig = I32x8(I32x8, w, types.intp, x, types.intp, sc, types.intp, types.intp)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        vacc, aw, ow, ax, ox, asc, olo, ohi = args
        pw = cgutils.create_struct_proxy(sig.args[1])(context, builder, value=aw).data
        px = cgutils.create_struct_proxy(sig.args[3])(context, builder, value=ax).data
        ps = cgutils.create_struct_proxy(sig.args[5])(context, builder, value=asc).data
        vw = builder.load(builder.bitcast(builder.gep(pw, [ow]), _I8x32.as_pointer()), align=1)
        x0 = builder.load(builder.bitcast(builder.gep(px, [ox]), _I8x32.as_pointer()), align=1)
        ox1 = builder.add(ox, ir.Constant(ox.type, 32))
        x1 = builder.load(builder.bitcast(builder.gep(px, [ox1]), _I8x32.as_pointer()), align=1)
        m15 = ir.Constant(_I8x32, [15] * 32)
        lo = builder.and_(vw, m15)
        hi = builder.and_(builder.lshr(vw, ir.Constant(_I8x32, [4] * 32)), m15)
        maddubs = _fn(builder, "llvm.x86.avx2.pmadd.ub.sw", _I16x16, [_I8x32, _I8x32])
        madd = _fn(builder, "llvm.x86.avx2.pmadd.wd", _I32x8, [_I16x16, _I16x16])
        out = vacc
        for v, xv, o in ((lo, x0, olo), (hi, x1, ohi)):
            s = builder.sext(builder.load(builder.gep(ps, [o])), ir.IntType(16))
            out = builder.add(out, builder.call(madd, [builder.call(maddubs, [v, xv]), _splat(builder, s, _I16x16)]))
        return out

    return sig, codegen


@intrinsic
def fma_lanes(typingctx, accf, scale, acci):  # type: ignore[no-untyped-def]
    """accf + float(acci) * scale, lane by lane."""
    sig = F32x8(F32x8, types.float32, I32x8)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        vf, s, vi = args
        sv = _splat(builder, s, _F32x8)
        fma = _fn(builder, "llvm.fma.v8f32", _F32x8, [_F32x8, _F32x8, _F32x8])  # as ggml's _mm256_fmadd_ps
        return builder.call(fma, [sv, builder.sitofp(vi, _F32x8), vf])

    return sig, codegen


@intrinsic
def hsum(typingctx, v):  # type: ignore[no-untyped-def]
    """Sum of the 8 float lanes (pairwise, as ggml's hsum_float_8)."""
    sig = types.float32(F32x8)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        (vf,) = args
        e = [builder.extract_element(vf, ir.Constant(ir.IntType(32), k)) for k in range(8)]
        q = [builder.fadd(e[k], e[k + 4]) for k in range(4)]
        h = [builder.fadd(q[0], q[2]), builder.fadd(q[1], q[3])]
        return builder.fadd(h[0], h[1])

    return sig, codegen


@njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def dot_rows_i8(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, has_min, nib):  # pragma: no cover - compiled
    """Same contract as _kernels.dot_rows, with xq int8 (N, nsub, sub), sub in {16, 32}; has_min: any mn != 0.

    nib=False: q int8 (R, nsub, sub), one byte per weight. nib=True (Q4_K): q uint8 (R, nsub/2, 32), the
    GGUF nibble bytes. 4 rows at a time: 4 independent accumulator chains sharing the activation bytes.
    """
    nsub = sc.shape[1]
    sub = xq.shape[2]
    nsb = d.shape[1]
    spb = nsub // nsb
    step = 64 // sub if nib else 32 // sub  # sub-blocks per call
    wdiv = 2 if nib else 1  # bytes per weight: 1/2 when packed
    qrow = q.shape[1] * q.shape[2]  # bytes per row
    for g in prange(q.shape[0] // 4):
        r = g * 4
        o0 = r * nsub  # flat sub-block index of row r; rows r+1.. follow at +nsub
        for n in range(xq.shape[0]):
            f0 = f32x8_zero()
            f1 = f32x8_zero()
            f2 = f32x8_zero()
            f3 = f32x8_zero()
            m0 = m1 = m2 = m3 = np.float32(0.0)
            for b in range(nsb):
                c0 = i32x8_zero()
                c1 = i32x8_zero()
                c2 = i32x8_zero()
                c3 = i32x8_zero()
                for j in range(b * spb, b * spb + spb, step):
                    xo = (n * nsub + j) * sub
                    k = o0 + j
                    w = r * qrow + j * sub // wdiv
                    if nib:
                        c0 = dot64_nib(c0, q, w, xq, xo, sc, k, k + 1)
                        c1 = dot64_nib(c1, q, w + qrow, xq, xo, sc, k + nsub, k + nsub + 1)
                        c2 = dot64_nib(c2, q, w + 2 * qrow, xq, xo, sc, k + 2 * nsub, k + 2 * nsub + 1)
                        c3 = dot64_nib(c3, q, w + 3 * qrow, xq, xo, sc, k + 3 * nsub, k + 3 * nsub + 1)
                    else:
                        c0 = dot32(c0, q, w, xq, xo, sc, k, k + step - 1)
                        c1 = dot32(c1, q, w + qrow, xq, xo, sc, k + nsub, k + nsub + step - 1)
                        c2 = dot32(c2, q, w + 2 * qrow, xq, xo, sc, k + 2 * nsub, k + 2 * nsub + step - 1)
                        c3 = dot32(c3, q, w + 3 * qrow, xq, xo, sc, k + 3 * nsub, k + 3 * nsub + step - 1)
                xdb = xd[n, b]
                f0 = fma_lanes(f0, xdb * d[r, b], c0)
                f1 = fma_lanes(f1, xdb * d[r + 1, b], c1)
                f2 = fma_lanes(f2, xdb * d[r + 2, b], c2)
                f3 = fma_lanes(f3, xdb * d[r + 3, b], c3)
                if has_min:
                    t0 = t1 = t2 = t3 = np.float32(0.0)
                    for j in range(b * spb, b * spb + spb):
                        xsj = xs[n, j]
                        t0 += np.float32(mn[r, j]) * xsj
                        t1 += np.float32(mn[r + 1, j]) * xsj
                        t2 += np.float32(mn[r + 2, j]) * xsj
                        t3 += np.float32(mn[r + 3, j]) * xsj
                    xmb = xmd[n, b]
                    m0 += (xmb * dmin[r, b]) * t0
                    m1 += (xmb * dmin[r + 1, b]) * t1
                    m2 += (xmb * dmin[r + 2, b]) * t2
                    m3 += (xmb * dmin[r + 3, b]) * t3
            y[n, r] = hsum(f0) - m0
            y[n, r + 1] = hsum(f1) - m1
            y[n, r + 2] = hsum(f2) - m2
            y[n, r + 3] = hsum(f3) - m3
