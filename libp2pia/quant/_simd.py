"""AVX2 integer block dots for numba, the way ggml does them (keep this module stable: numba cache).

numba has no SIMD types, so this module gives it two (8 x int32 and 8 x float32 in ymm registers) and five
intrinsics; the kernel below then reads like ggml's AVX2 code:

    per 32 weights:  p16 = maddubs(|w|, sign(x, w))        u8 x s8 -> 16 x i16 pair sums (|.| <= 32512)
                     p32 = madd(p16, [s_lo x8, s_hi x8])    x sub-block scale(s) -> 8 x i32
    per super-block: acc_f += float(sum of p32) * (xd * d)  8 float lanes, no horizontal sum
    per row:         y = hsum(acc_f) - sum_sb (xmd * dmin) * sum_j mn_j * xs_j

The integer part is exact (as ggml's); only the float lanes' order differs from ggml.
Used when the CPU has AVX2 (HAS_AVX2); otherwise _kernels.dot_rows does the same maths in float32. Where the
CPU also has AVX512-VNNI + VL (HAS_VNNI), blocks without a sub-block scale use vpdpbusd for maddubs + madd
(same integers). The row body is compiled once per weight form (_rows_*), so each loop keeps its registers.
"""

from __future__ import annotations

import numpy as np
from llvmlite import binding as llb
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

_FEATURES = llb.get_host_cpu_features()
HAS_AVX2 = _FEATURES.get("avx2", False)
# vpdpbusd on ymm (AVX512-VNNI + VL, e.g. Zen 4, Ice Lake): u8 x s8 -> i32 in one instruction. It equals
# madd(maddubs(|w|, sign(x, w)), 1) bit for bit here: |w| <= 128 and |x| <= 127, so no int16 pair saturates.
HAS_VNNI = bool(HAS_AVX2 and _FEATURES.get("avx512vnni", False) and _FEATURES.get("avx512vl", False))

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


def _load32(context, builder, arrty, arr, off):  # type: ignore[no-untyped-def]
    p = cgutils.create_struct_proxy(arrty)(context, builder, value=arr).data
    return builder.load(builder.bitcast(builder.gep(p, [off]), _I8x32.as_pointer()), align=1)


def _maddubs_signed(context, builder, wty, aw, ow, xty, ax, ox):  # type: ignore[no-untyped-def]
    """16 x i16 pair sums of w*x for signed int8 w, x: maddubs(|w|, sign(x, w)) (ggml's trick)."""
    return _maddubs_signed_v(builder, _load32(context, builder, wty, aw, ow), _load32(context, builder, xty, ax, ox))


def _maddubs_signed_v(builder, vw, vx):  # type: ignore[no-untyped-def]
    absw = builder.call(_fn(builder, "llvm.abs.v32i8", _I8x32, [_I8x32, ir.IntType(1)]),
                        [vw, ir.Constant(ir.IntType(1), 0)])
    sx = builder.call(_fn(builder, "llvm.x86.avx2.psign.b", _I8x32, [_I8x32, _I8x32]), [vx, vw])
    return builder.call(_fn(builder, "llvm.x86.avx2.pmadd.ub.sw", _I16x16, [_I8x32, _I8x32]), [absw, sx])


def _dot_signed_acc(builder, vacc, vw, vx):  # type: ignore[no-untyped-def]
    """vacc + 8 x i32 sums of 4 products w*x (signed int8 w, x): vpdpbusd where the CPU has it, else AVX2."""
    if HAS_VNNI:
        absw = builder.call(_fn(builder, "llvm.abs.v32i8", _I8x32, [_I8x32, ir.IntType(1)]),
                            [vw, ir.Constant(ir.IntType(1), 0)])
        sx = builder.call(_fn(builder, "llvm.x86.avx2.psign.b", _I8x32, [_I8x32, _I8x32]), [vx, vw])
        return builder.call(_fn(builder, "llvm.x86.avx512.vpdpbusd.256", _I32x8, [_I32x8, _I32x8, _I32x8]),
                            [vacc, builder.bitcast(absw, _I32x8), builder.bitcast(sx, _I32x8)])
    p16 = _maddubs_signed_v(builder, vw, vx)
    p32 = builder.call(_fn(builder, "llvm.x86.avx2.pmadd.wd", _I32x8, [_I16x16, _I16x16]),
                       [p16, ir.Constant(_I16x16, [1] * 16)])
    return builder.add(vacc, p32)


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
        ps = cgutils.create_struct_proxy(sig.args[5])(context, builder, value=asc).data
        slo = builder.sext(builder.load(builder.gep(ps, [olo])), ir.IntType(16))
        shi = builder.sext(builder.load(builder.gep(ps, [ohi])), ir.IntType(16))
        p16 = _maddubs_signed(context, builder, sig.args[1], aw, ow, sig.args[3], ax, ox)
        sv = builder.shuffle_vector(_splat(builder, slo, _I16x16), _splat(builder, shi, _I16x16),
                                    ir.Constant(ir.VectorType(ir.IntType(32), 16), list(range(8)) + list(range(24, 32))))
        p32 = builder.call(_fn(builder, "llvm.x86.avx2.pmadd.wd", _I32x8, [_I16x16, _I16x16]), [p16, sv])
        return builder.add(vacc, p32)

    return sig, codegen


@intrinsic
def dot32_1(typingctx, acc, w, woff, x, xoff):  # type: ignore[no-untyped-def]
    """acc + madd(maddubs(|w|, sign(x, w)), 1): dot32 for blocks without a sub-block scale (Q8_0, Q5_0, ...)."""
    sig = I32x8(I32x8, w, types.intp, x, types.intp)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        vacc, aw, ow, ax, ox = args
        vw = _load32(context, builder, sig.args[1], aw, ow)
        return _dot_signed_acc(builder, vacc, vw, _load32(context, builder, sig.args[3], ax, ox))

    return sig, codegen


@intrinsic
def dot32_q5_0(typingctx, acc, w, woff, x, xoff):  # type: ignore[no-untyped-def]
    """acc + dot of one GGUF Q5_0 block (at byte offset woff: d, qh[4], qs[16]) with 32 int8 of x.

    Decoded in registers: q = (nibble | qh bit << 4) - 16, then the signed maddubs; d is applied by the caller.
    """
    sig = I32x8(I32x8, w, types.intp, x, types.intp)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        vacc, aw, ow, ax, ox = args
        p = cgutils.create_struct_proxy(sig.args[1])(context, builder, value=aw).data
        i32 = ir.IntType(32)
        qh = builder.load(builder.bitcast(builder.gep(p, [builder.add(ow, ir.Constant(ow.type, 2))]),
                                          i32.as_pointer()), align=1)
        i8x16 = ir.VectorType(ir.IntType(8), 16)
        qs = builder.load(builder.bitcast(builder.gep(p, [builder.add(ow, ir.Constant(ow.type, 6))]),
                                          i8x16.as_pointer()), align=1)
        lo = builder.and_(qs, ir.Constant(i8x16, [15] * 16))
        hi = builder.lshr(qs, ir.Constant(i8x16, [4] * 16))
        nib = builder.shuffle_vector(lo, hi, ir.Constant(ir.VectorType(i32, 32), list(range(32))))
        # 32 bits -> 32 bytes (ggml's bytes_from_bits_32): byte i takes qh byte i/8, tests bit i%8
        qb = builder.bitcast(_splat(builder, qh, _I32x8), _I8x32)
        sel = builder.shuffle_vector(qb, ir.Constant(_I8x32, None),
                                     ir.Constant(ir.VectorType(i32, 32), [i // 8 for i in range(32)]))
        hit = builder.and_(sel, ir.Constant(_I8x32, [1 << (i % 8) for i in range(32)]))
        zero = ir.Constant(_I8x32, [0] * 32)
        hb = builder.select(builder.icmp_unsigned("!=", hit, zero), ir.Constant(_I8x32, [16] * 32), zero)
        q = builder.sub(builder.or_(nib, hb), ir.Constant(_I8x32, [16] * 32))
        return _dot_signed_acc(builder, vacc, q, _load32(context, builder, sig.args[3], ax, ox))

    return sig, codegen


@intrinsic
def dot128_q6_k(typingctx, acc, w, woff, qhoff, x, xoff, sc, soff):  # type: ignore[no-untyped-def]
    """acc + one half h (128 weights) of a GGUF Q6_K block, decoded in registers as ggml does.

    woff: byte offset of the half's ql (block + 64h), qhoff: of its qh (block + 128 + 32h); soff: flat index
    of the half's first of 8 scales in sc. q = (nibble | 2 high bits << 4) in 0..63, offset 32 removed with the
    activation pair sums: maddubs(q, x) - maddubs(32, x).
    """
    sig = I32x8(I32x8, w, types.intp, types.intp, x, types.intp, sc, types.intp)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        vacc, aw, ow, qh_off, ax, ox, asc, so = args
        wty, xty = sig.args[1], sig.args[4]
        ql1 = _load32(context, builder, wty, aw, ow)
        ql2 = _load32(context, builder, wty, aw, builder.add(ow, ir.Constant(ow.type, 32)))
        qh = _load32(context, builder, wty, aw, qh_off)

        def c(v):  # noqa: ANN001, ANN202
            return ir.Constant(_I8x32, [v] * 32)

        m15 = c(15)
        quads = [
            builder.or_(builder.and_(ql1, m15), builder.shl(builder.and_(qh, c(3)), c(4))),
            builder.or_(builder.and_(ql2, m15), builder.shl(builder.and_(qh, c(12)), c(2))),
            builder.or_(builder.lshr(ql1, c(4)), builder.and_(qh, c(48))),
            builder.or_(builder.lshr(ql2, c(4)), builder.lshr(builder.and_(qh, c(192)), c(2))),
        ]
        maddubs = _fn(builder, "llvm.x86.avx2.pmadd.ub.sw", _I16x16, [_I8x32, _I8x32])
        madd = _fn(builder, "llvm.x86.avx2.pmadd.wd", _I32x8, [_I16x16, _I16x16])
        ps = cgutils.create_struct_proxy(sig.args[6])(context, builder, value=asc).data
        # the half's 8 scales in one load, widened once; each quad takes its pair by a shuffle (as ggml does)
        i16x8 = ir.VectorType(ir.IntType(16), 8)
        s8 = builder.sext(builder.load(builder.bitcast(builder.gep(ps, [so]),
                                                       ir.VectorType(ir.IntType(8), 8).as_pointer()), align=1), i16x8)
        out = vacc
        for k, q in enumerate(quads):
            xv = _load32(context, builder, xty, ax, builder.add(ox, ir.Constant(ox.type, 32 * k)))
            p16 = builder.sub(builder.call(maddubs, [q, xv]), builder.call(maddubs, [c(32), xv]))
            sv = builder.shuffle_vector(s8, ir.Constant(i16x8, None),
                                        ir.Constant(ir.VectorType(ir.IntType(32), 16), [2 * k] * 8 + [2 * k + 1] * 8))
            out = builder.add(out, builder.call(madd, [p16, sv]))
        return out

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
def dot8_f(typingctx, a, aoff, b, boff):  # type: ignore[no-untyped-def]
    """sum_i<8 float(a[aoff+i]) * b[boff+i] for int8 a, float32 b, in one vector; exact (so equal to the serial
    sum) when every product and partial sum is an integer below 2^24, as for the mins x block sums."""
    sig = types.float32(a, types.intp, b, types.intp)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        aa, ao, ab, bo = args
        pa = cgutils.create_struct_proxy(sig.args[0])(context, builder, value=aa).data
        pb = cgutils.create_struct_proxy(sig.args[2])(context, builder, value=ab).data
        va = builder.load(builder.bitcast(builder.gep(pa, [ao]), ir.VectorType(ir.IntType(8), 8).as_pointer()), align=1)
        vb = builder.load(builder.bitcast(builder.gep(pb, [bo]), _F32x8.as_pointer()), align=1)
        p = builder.fmul(builder.sitofp(va, _F32x8), vb)
        e = [builder.extract_element(p, ir.Constant(ir.IntType(32), k)) for k in range(8)]
        q = [builder.fadd(e[k], e[k + 4]) for k in range(4)]
        return builder.fadd(builder.fadd(q[0], q[2]), builder.fadd(q[1], q[3]))

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


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _rows_i8(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, has_min, nib, q5, q6, g0, g1):  # pragma: no cover
    """Rows 4g..4g+3, g0 <= g < g1, of y[n, r] (contract of _kernels.dot_rows), xq int8 (N, nsub, sub), sub 16|32.

    q forms: int8 (R, nsub, sub), one byte per weight (default); nib (Q4_K): uint8 (R, nsub/2, 32), the GGUF
    nibbles; q5 (Q5_0) / q6 (Q6_K): uint8 (R, nblk, 22 / 210), the GGUF blocks, decoded in registers.
    In every form each group of 4 rows is stored interleaved block by block (block b of rows r..r+3, then
    block b+1, ...: layout.interleave_rows), so the kernel reads memory in order: from DRAM that streams
    ~1.6x faster than four rows 1 row-length apart, which the hardware prefetcher follows badly.
    has_min: some mn != 0. Blocks of 32 (one sub-block per block) carry no scale (sc = 1). Four rows share
    each activation load and keep four independent accumulator chains. Inlined into one function per weight
    form (_rows_*) with constant flags, so each compiles to a loop free of the other forms' registers.
    """
    nsub = sc.shape[1]
    nsb = d.shape[1]
    spb = nsub // nsb
    sub = xq.shape[2]
    step = 8 if q6 else (64 // sub if nib else 32 // sub)  # sub-blocks per call
    wstride = 22 if q5 else (16 if nib else sub)  # bytes of q per sub-block
    qrow = q.shape[1] * q.shape[2]  # bytes per row
    bb = qrow // nsb  # bytes of q per block per row; a group stores block b of its 4 rows side by side
    for g in range(g0, g1):
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
                blk = r * qrow + b * 4 * bb  # block b of row r; rows r+1.. follow at +bb
                if spb == 1:  # 32-weight blocks (Q8_0, Q5_0, Q4_x, IQ4_NL): one call per block, no inner loop
                    xo = (n * nsub + b) * 32
                    if q5:
                        c0 = dot32_q5_0(c0, q, blk, xq, xo)
                        c1 = dot32_q5_0(c1, q, blk + bb, xq, xo)
                        c2 = dot32_q5_0(c2, q, blk + 2 * bb, xq, xo)
                        c3 = dot32_q5_0(c3, q, blk + 3 * bb, xq, xo)
                    else:
                        c0 = dot32_1(c0, q, blk, xq, xo)
                        c1 = dot32_1(c1, q, blk + bb, xq, xo)
                        c2 = dot32_1(c2, q, blk + 2 * bb, xq, xo)
                        c3 = dot32_1(c3, q, blk + 3 * bb, xq, xo)
                else:
                    for j in range(b * spb, b * spb + spb, step):
                        xo = (n * nsub + j) * sub
                        k = o0 + j
                        w = blk + (j - b * spb) * wstride
                        if q6:  # j = first of the 8 sub-blocks of 16 in half h of the block
                            h = (j - b * spb) // 8
                            wq = blk + 64 * h
                            wh = blk + 128 + 32 * h
                            c0 = dot128_q6_k(c0, q, wq, wh, xq, xo, sc, k)
                            c1 = dot128_q6_k(c1, q, wq + bb, wh + bb, xq, xo, sc, k + nsub)
                            c2 = dot128_q6_k(c2, q, wq + 2 * bb, wh + 2 * bb, xq, xo, sc, k + 2 * nsub)
                            c3 = dot128_q6_k(c3, q, wq + 3 * bb, wh + 3 * bb, xq, xo, sc, k + 3 * nsub)
                        elif nib:
                            c0 = dot64_nib(c0, q, w, xq, xo, sc, k, k + 1)
                            c1 = dot64_nib(c1, q, w + bb, xq, xo, sc, k + nsub, k + nsub + 1)
                            c2 = dot64_nib(c2, q, w + 2 * bb, xq, xo, sc, k + 2 * nsub, k + 2 * nsub + 1)
                            c3 = dot64_nib(c3, q, w + 3 * bb, xq, xo, sc, k + 3 * nsub, k + 3 * nsub + 1)
                        else:
                            c0 = dot32(c0, q, w, xq, xo, sc, k, k + step - 1)
                            c1 = dot32(c1, q, w + bb, xq, xo, sc, k + nsub, k + nsub + step - 1)
                            c2 = dot32(c2, q, w + 2 * bb, xq, xo, sc, k + 2 * nsub, k + 2 * nsub + step - 1)
                            c3 = dot32(c3, q, w + 3 * bb, xq, xo, sc, k + 3 * nsub, k + 3 * nsub + step - 1)
                xdb = xd[n, b]
                f0 = fma_lanes(f0, xdb * d[r, b], c0)
                f1 = fma_lanes(f1, xdb * d[r + 1, b], c1)
                f2 = fma_lanes(f2, xdb * d[r + 2, b], c2)
                f3 = fma_lanes(f3, xdb * d[r + 3, b], c3)
                if has_min and spb == 8:  # Q4_K, Q5_K: one vector per row
                    j0 = n * nsub + b * 8
                    t0 = dot8_f(mn, o0 + b * 8, xs, j0)
                    t1 = dot8_f(mn, o0 + nsub + b * 8, xs, j0)
                    t2 = dot8_f(mn, o0 + 2 * nsub + b * 8, xs, j0)
                    t3 = dot8_f(mn, o0 + 3 * nsub + b * 8, xs, j0)
                    xmb = xmd[n, b]
                    m0 += (xmb * dmin[r, b]) * t0
                    m1 += (xmb * dmin[r + 1, b]) * t1
                    m2 += (xmb * dmin[r + 2, b]) * t2
                    m3 += (xmb * dmin[r + 3, b]) * t3
                elif has_min:
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


# One compiled row loop per weight form (KIND_*): the flags are constants, so LLVM drops the other forms' code
# and keeps the accumulators and pointers in registers (one generic loop spilled them on every block).
KIND_I8, KIND_I8_MIN, KIND_Q5_0, KIND_Q4_K, KIND_Q6_K = 1, 2, 3, 4, 5


@njit(nogil=True, cache=True, error_model="numpy")
def _rows_plain(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, g0, g1):  # pragma: no cover
    _rows_i8(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, False, False, False, False, g0, g1)


@njit(nogil=True, cache=True, error_model="numpy")
def _rows_plain_min(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, g0, g1):  # pragma: no cover
    _rows_i8(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, True, False, False, False, g0, g1)


@njit(nogil=True, cache=True, error_model="numpy")
def _rows_q5_0(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, g0, g1):  # pragma: no cover
    _rows_i8(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, False, False, True, False, g0, g1)


@njit(nogil=True, cache=True, error_model="numpy")
def _rows_q4_k(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, has_min, g0, g1):  # pragma: no cover
    _rows_i8(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, has_min, True, False, False, g0, g1)


@njit(nogil=True, cache=True, error_model="numpy")
def _rows_q6_k(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, g0, g1):  # pragma: no cover
    _rows_i8(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, False, False, False, True, g0, g1)


@njit(nogil=True, cache=True, error_model="numpy")
def _rows_kind(kind, q, sc, mn, d, dmin, xq, xs, xd, xmd, y, has_min, g0, g1):  # pragma: no cover
    if kind == KIND_I8:
        _rows_plain(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, g0, g1)
    elif kind == KIND_I8_MIN:
        _rows_plain_min(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, g0, g1)
    elif kind == KIND_Q5_0:
        _rows_q5_0(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, g0, g1)
    elif kind == KIND_Q4_K:
        _rows_q4_k(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, has_min, g0, g1)
    elif kind == KIND_Q6_K:
        _rows_q6_k(q, sc, mn, d, dmin, xq, xs, xd, xmd, y, g0, g1)


@njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def dot_rows_i8(kind, q, sc, mn, d, dmin, xq, xs, xd, xmd, y, has_min, chunks):  # pragma: no cover
    """Row groups on numba's thread pool in `chunks` contiguous ranges (see _rows_i8 for the contract)."""
    ng = q.shape[0] // 4
    for c in prange(chunks):
        _rows_kind(kind, q, sc, mn, d, dmin, xq, xs, xd, xmd, y, has_min, c * ng // chunks, (c + 1) * ng // chunks)


@njit(nogil=True, cache=True, error_model="numpy")
def dot_rows_i8_serial(kind, q, sc, mn, d, dmin, xq, xs, xd, xmd, y, has_min):  # pragma: no cover
    """The same in the calling thread: no pool wake-up (1 thread, small matrices, caller-side threads)."""
    _rows_kind(kind, q, sc, mn, d, dmin, xq, xs, xd, xmd, y, has_min, 0, q.shape[0] // 4)
