"""The vectorisable element functions (ghostnet.kernels.vmath) against numpy in higher precision, their
clamping at the ends of the range, and the bit-pattern reductions the integrator's blow-up check
relies on."""
from __future__ import annotations

import numba
import numpy as np
import pytest

from ghostnet.kernels.vmath import bits, unbits, vexp, vlogistic, vrelu, vtanh


@numba.njit(error_model="numpy")
def _apply(code, x, out):
    for j in range(x.shape[0]):
        if code == 0:
            out[j] = vexp(x[j])
        elif code == 1:
            out[j] = vlogistic(x[j])
        elif code == 2:
            out[j] = vtanh(x[j])
        else:
            out[j] = vrelu(x[j])


@numba.njit
def _max_abs_by_bits(x):
    m = bits(x[0]) ^ bits(x[0])
    for j in range(x.shape[0]):
        m = max(m, bits(abs(x[j])))
    return unbits(m, x[0])


def _run(code, x):
    out = np.empty_like(x)
    _apply(code, x, out)
    return out


def _ulps(got, ref, dtype):
    """|got - ref| in units of the last place of ``dtype`` at ``ref`` (ref in long double)."""
    ref = ref.astype(np.longdouble)
    return np.abs(got.astype(np.longdouble) - ref) / (np.abs(ref) * np.finfo(dtype).eps)


ORACLES = {
    0: ("exp", np.exp),
    1: ("logistic", lambda x: 1 / (1 + np.exp(-x))),
    2: ("tanh", np.tanh),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("code", [0, 1, 2])
def test_within_two_ulps_of_long_double(dtype, code):
    """Across the range where the result is a normal number (exp: up to the clamp), a few
    hundred thousand points, each within 2 units in the last place (measured: 0.7-2.0)."""
    hi = 87.0 if dtype == np.float32 else 708.0
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-hi, hi, 200_001), rng.uniform(-2, 2, 100_000),
                        rng.uniform(-1e-3, 1e-3, 10_000), [0.0, 1e-30, -1e-30]]).astype(dtype)
    got = _run(code, x)
    assert got.dtype == dtype
    ref = ORACLES[code][1](x.astype(np.longdouble))
    keep = (np.abs(ref) > np.finfo(dtype).tiny) & (x != 0)
    assert _ulps(got[keep], ref[keep], dtype).max() < 2.0
    if code == 2:
        assert got[x == 0][0] == 0.0  # tanh(0) exactly


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ends_of_the_range_clamp_to_finite_values(dtype):
    big = np.array([1e6, -1e6, np.finfo(dtype).max, -np.finfo(dtype).max], dtype)
    e = _run(0, big)
    assert np.isfinite(e).all() and e[0] > 1e37 and 0 < e[1] <= 4 * np.finfo(dtype).tiny
    lg = _run(1, big)
    assert lg[0] == 1.0 and lg[2] == 1.0 and 0 <= lg[1] < 1e-37 and 0 <= lg[3] < 1e-37
    th = _run(2, big)
    assert list(th) == [1.0, -1.0, 1.0, -1.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_and_bit_patterns(dtype):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 10, 1001).astype(dtype)
    assert np.array_equal(_run(3, x), np.maximum(x, 0))
    # an integer max over bits(|x|) is max |x|; any inf or NaN gives a pattern above every finite
    assert _max_abs_by_bits(x) == np.abs(x).max()
    limit = bits_of(dtype(1e6))
    for bad in (np.inf, -np.inf, np.nan):
        y = x.copy()
        y[500] = bad
        m = _max_abs_by_bits(y)
        assert not np.isfinite(m) and bits_of(np.abs(dtype(m))) >= limit


def bits_of(v):
    return int(np.array([v]).view(np.int32 if v.dtype == np.float32 else np.int64)[0])
