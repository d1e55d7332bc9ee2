"""Element functions that LLVM can vectorise inside Numba loops.

Numba calls the C library's scalar ``exp`` and ``tanh`` (its SIMD versions need Intel's SVML,
which the PyPI llvmlite does not link), and a loop that calls them runs one element at a time.
The versions here are plain arithmetic (Cody-Waite range reduction and the Cephes polynomials,
2^n built from its bit pattern), so a loop over a row becomes AVX-512/AVX2 code: the logistic of
50,000 float32 values takes ~15 us here against ~120 us through ``math.exp``.

Each works in its argument's precision (float32 stays float32, which doubles the vector width)
and is within 2 units in the last place (tests/test_vmath.py checks them against numpy in long
double across the range). ``exp`` clamps its argument to [-87, 88] (float32) or [-708, 709]
(float64), so it never returns 0 or inf (exp(-1000) is ~1.6e-38, ~3.3e-308); so the logistic
of a large negative number is ~6e-39 (~1e-308) instead of 0; it reaches 1, and tanh +-1. NaN inputs give finite values, so callers check their
inputs for NaN themselves (the integrator does, on the potentials).

``bits(x)`` (the float's bit pattern as a signed integer of its width) also gives reductions
that vectorise: for x >= 0 the order of the patterns is the order of the values, and every
non-finite value's |x| pattern is above that of every finite one, so an integer max over
``bits(abs(x))`` is a max |x| and a NaN/inf check in one (float max reductions do not vectorise
in Numba, even with fastmath).

For developers: Numba's on-disk cache of the kernels in :mod:`ghostnet.kernels.numba_kernels` is keyed on that
file alone and does not notice an edit here; after changing this module, touch ``_kernels.py``
(or delete ``ghostnet/__pycache__``) so that the kernels are compiled again.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload, register_jitable


@intrinsic
def bits(typingctx, x):
    """The bit pattern of a float32 (float64) as an int32 (int64)."""
    if not isinstance(x, types.Float):
        return None
    width = x.bitwidth
    out = types.int32 if width == 32 else types.int64

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(width))

    return out(x), codegen


def _from_bits(float_type, llvm_type, width):
    @intrinsic
    def cast(typingctx, n):
        if not isinstance(n, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            v = args[0]
            if n.bitwidth > width:
                v = builder.trunc(v, ir.IntType(width))
            elif n.bitwidth < width:
                v = builder.sext(v, ir.IntType(width))
            return builder.bitcast(v, llvm_type)

        return float_type(n), codegen

    return cast


float32_from_bits = _from_bits(types.float32, ir.FloatType(), 32)
float64_from_bits = _from_bits(types.float64, ir.DoubleType(), 64)

F, D = np.float32, np.float64
# float32: Cephes expf (degree-5 polynomial on [-ln2/2, ln2/2]), tanhf (odd polynomial below 0.625)
_LOG2E32, _C1_32, _C2_32 = F(1.44269504088896341), F(0.693359375), F(-2.12194440e-4)
_P32 = (F(1.9875691500e-4), F(1.3981999507e-3), F(8.3334519073e-3), F(4.1665795894e-2),
        F(1.6666665459e-1), F(5.0000001201e-1))
_LO32, _HI32 = F(-87.0), F(88.0)  # 2^n stays a normal number: n in [-126, 127]
_MAGIC32 = F(12582912.0)  # 1.5 * 2^23: adding it rounds to an integer kept in the low bits
_MAGIC32_BITS = np.int32(0x4B400000)
_ONE32, _TWO32, _ZERO32 = F(1.0), F(2.0), F(0.0)
_T32 = (F(-5.70498872745e-3), F(2.06390887954e-2), F(-5.37397155531e-2), F(1.33314422036e-1),
        F(-3.33332819422e-1))
_TANH_SMALL32, _TANH_BIG32 = F(0.625), F(44.0)
# float64: Cephes exp (Pade form), tanh (rational form below 0.625)
_LOG2E64, _C1_64, _C2_64 = D(1.4426950408889634073599), D(6.93145751953125e-1), \
    D(1.42860682030941723212e-6)
_P64 = (D(1.26177193074810590878e-4), D(3.02994407707441961300e-2), D(9.99999999999999999910e-1))
_Q64 = (D(3.00198505138664455042e-6), D(2.52448340349684104192e-3), D(2.27265548208155028766e-1),
        D(2.00000000000000000009e0))
_LO64, _HI64 = D(-708.0), D(709.0)  # n in [-1022, 1023]
_MAGIC64 = D(6755399441055744.0)  # 1.5 * 2^52
_MAGIC64_BITS = np.int64(0x4338000000000000)
_ONE64, _TWO64, _ZERO64 = D(1.0), D(2.0), D(0.0)
_TP64 = (D(-9.64399179425052238628e-1), D(-9.92877231001918586564e1), D(-1.61468768441708447952e3))
_TQ64 = (D(1.12811678491632931402e2), D(2.23548839060100448583e3), D(4.84406305325125486048e3))
_TANH_SMALL64, _TANH_BIG64 = D(0.625), D(354.0)


def vexp(x):
    """exp(x), vectorisable (see the module's docstring for the clamping)."""
    raise NotImplementedError("compiled only")


def vlogistic(x):
    """1 / (1 + exp(-x)), vectorisable."""
    raise NotImplementedError("compiled only")


def vtanh(x):
    """tanh(x), vectorisable."""
    raise NotImplementedError("compiled only")


def vrelu(x):
    """max(x, 0), vectorisable (the builtin ``max`` handles NaN with a branch)."""
    raise NotImplementedError("compiled only")


@register_jitable(error_model="numpy")
def _exp32(x):
    x = x if x > _LO32 else _LO32
    x = x if x < _HI32 else _HI32
    t = x * _LOG2E32 + _MAGIC32
    fx = t - _MAGIC32  # round(x log2 e), as a float
    n = bits(t) - _MAGIC32_BITS  # ... and as an integer
    x = x - fx * _C1_32 - fx * _C2_32
    z = x * x
    p = _P32
    y = (((((p[0] * x + p[1]) * x + p[2]) * x + p[3]) * x + p[4]) * x + p[5]) * z + x + _ONE32
    return y * float32_from_bits((n + np.int32(127)) << np.int32(23))


@register_jitable(error_model="numpy")
def _exp64(x):
    x = x if x > _LO64 else _LO64
    x = x if x < _HI64 else _HI64
    t = x * _LOG2E64 + _MAGIC64
    fx = t - _MAGIC64
    n = bits(t) - _MAGIC64_BITS
    x = x - fx * _C1_64 - fx * _C2_64
    xx = x * x
    p, q = _P64, _Q64
    px = x * ((p[0] * xx + p[1]) * xx + p[2])
    y = px / ((((q[0] * xx + q[1]) * xx + q[2]) * xx + q[3]) - px)
    y = _ONE64 + _TWO64 * y
    return y * float64_from_bits((n + np.int64(1023)) << np.int64(52))


@register_jitable(error_model="numpy")
def _tanh32(x):
    a = x if x > _ZERO32 else -x
    a = a if a < _TANH_BIG32 else _TANH_BIG32
    big = _ONE32 - _TWO32 / (_exp32(a + a) + _ONE32)
    big = big if x > _ZERO32 else -big
    z = x * x
    t = _T32
    small = ((((t[0] * z + t[1]) * z + t[2]) * z + t[3]) * z + t[4]) * z * x + x
    return small if a < _TANH_SMALL32 else big


@register_jitable(error_model="numpy")
def _tanh64(x):
    a = x if x > _ZERO64 else -x
    a = a if a < _TANH_BIG64 else _TANH_BIG64
    big = _ONE64 - _TWO64 / (_exp64(a + a) + _ONE64)
    big = big if x > _ZERO64 else -big
    z = x * x
    p, q = _TP64, _TQ64
    small = x + x * z * (((p[0] * z + p[1]) * z + p[2]) / (((z + q[0]) * z + q[1]) * z + q[2]))
    return small if a < _TANH_SMALL64 else big


_OPTS = {"error_model": "numpy"}  # no zero-division check in the divisions: it stops vectorising


def _pick(x, f32, f64):
    if x == types.float32:
        return f32
    if x == types.float64:
        return f64
    return None


@overload(vexp, jit_options=_OPTS)
def _ov_exp(x):
    return _pick(x, _exp32, _exp64)


@overload(vlogistic, jit_options=_OPTS)
def _ov_logistic(x):
    def lg(x):
        one = like(1.0, x)
        return one / (one + vexp(-x))

    return _pick(x, lg, lg)


@overload(vtanh, jit_options=_OPTS)
def _ov_tanh(x):
    return _pick(x, _tanh32, _tanh64)


@overload(vrelu, jit_options=_OPTS)
def _ov_relu(x):
    def relu(x):
        zero = like(0.0, x)
        return x if x > zero else zero

    return _pick(x, relu, relu)


@intrinsic
def unbits(typingctx, n, ref):
    """The float of ``ref``'s type whose bit pattern is the integer ``n`` (truncated to that
    width: Numba widens int32 arithmetic to int64); inverse of ``bits``."""
    if not isinstance(n, types.Integer) or not isinstance(ref, types.Float):
        return None
    width = ref.bitwidth
    llvm_type = ir.FloatType() if width == 32 else ir.DoubleType()

    def codegen(context, builder, sig, args):
        v = args[0]
        if n.bitwidth > width:
            v = builder.trunc(v, ir.IntType(width))
        elif n.bitwidth < width:
            v = builder.sext(v, ir.IntType(width))
        return builder.bitcast(v, llvm_type)

    return ref(n, ref), codegen


def like(value, ref):
    """``value`` converted to the float type of ``ref`` (keeps float32 loops in float32: a float64
    scalar in the arithmetic would promote the whole expression)."""
    raise NotImplementedError("compiled only")


@overload(like)
def _ov_like(value, ref):
    if ref == types.float32:
        return lambda value, ref: np.float32(value)
    if ref == types.float64:
        return lambda value, ref: np.float64(value)
    return None
