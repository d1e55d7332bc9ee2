"""Transfer functions phi (docs/model.md §1), numpy versions; the kernels' compiled versions are in
:mod:`ghostnet.kernels.numba_kernels` (``TRANSFER_CODES``). Besides the configurable ones,
'identity' is the rate of a cross-entropy output and of its ghosts
(:meth:`ghostnet.model.config.ModelConfig.rate_transfer`), and :func:`softmax` its prediction."""
from __future__ import annotations

import numpy as np

_PARALLEL_MIN = 20000
"""From this many elements a 2-D float array of softplus goes through the threaded Numba kernel
(the other transfer functions use numpy's SIMD ufuncs, faster than Numba's scalar ``exp``)."""


def phi(x: np.ndarray, name: str) -> np.ndarray:
    """Rate of potential ``x`` (any shape); 'identity' returns a copy."""
    if name == "identity":
        return np.array(x, copy=True)
    if name == "softplus" and (x.ndim == 2 and x.size >= _PARALLEL_MIN and x.flags.c_contiguous
                               and x.dtype in (np.float32, np.float64)):
        return phi_into(x, np.empty_like(x), name)  # the threaded Numba kernel
    if name == "logistic":
        return _logistic(x)
    if name == "tanh":
        return np.tanh(x)
    if name == "softplus":
        return np.logaddexp(0.0, x).astype(x.dtype, copy=False)
    if name == "relu":
        return np.maximum(x, 0.0)
    raise ValueError(f"unknown transfer function {name!r}")


def phi_into(x: np.ndarray, out: np.ndarray, name: str) -> np.ndarray:
    """``out[...] = phi(x)`` without allocating (float arrays of the same shape and dtype; for the
    integrator's rates). Logistic as (1 + tanh(x / 2)) / 2, see :func:`_logistic`."""
    if name == "identity":
        out[...] = x
    elif name == "logistic":
        half = out.dtype.type(0.5)
        np.multiply(x, half, out=out)
        np.tanh(out, out=out)
        out *= half
        out += half
    elif name == "tanh":
        np.tanh(x, out=out)
    elif name == "relu":
        np.maximum(x, out.dtype.type(0), out=out)
    elif name == "softplus":
        from ghostnet.kernels.numba_kernels import TRANSFER_CODES, phi_array

        phi_array(TRANSFER_CODES[name], np.ascontiguousarray(x), out)
    else:
        raise ValueError(f"unknown transfer function {name!r}")
    return out


def dphi(x: np.ndarray, name: str) -> np.ndarray:
    """phi'(x) (for ReLU, the derivative at 0 is taken as 0, as torch does)."""
    if name == "identity":
        return np.ones_like(x)
    if name == "logistic":
        s = _logistic(x)
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 - np.tanh(x) ** 2
    if name == "softplus":
        return _logistic(x)
    if name == "relu":
        return (x > 0).astype(x.dtype)
    raise ValueError(f"unknown transfer function {name!r}")


def phi_inv(r: np.ndarray, name: str, eps: float = 1e-6) -> np.ndarray:
    """Potential giving rate ``r``, with ``r`` clipped into phi's open range by ``eps``."""
    if name == "identity":
        return np.array(r, copy=True)
    if name == "logistic":
        r = np.clip(r, eps, 1.0 - eps)
        return np.log(r) - np.log1p(-r)
    if name == "tanh":
        return np.arctanh(np.clip(r, -1.0 + eps, 1.0 - eps))
    if name == "softplus":
        r = np.maximum(r, eps)
        return r + np.log(-np.expm1(-r))
    if name == "relu":
        return np.maximum(r, 0.0)
    raise ValueError(f"unknown transfer function {name!r}")


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (each row of a batch x units array), computed from
    ``x - max(x)`` so that no exp overflows; the dtype kept."""
    x = np.asarray(x)
    z = np.exp(x - np.max(x, axis=-1, keepdims=True))
    z /= np.sum(z, axis=-1, keepdims=True)
    return z


def _logistic(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) as (1 + tanh(x / 2)) / 2: numpy's SIMD tanh, no overflow for any x, the
    dtype kept; absolute error within a few eps of the dtype (measured 6e-8 in float32, 2.2e-16 in
    float64, against float64 expit), 4-8x faster than scipy's expit at 100 x 500."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    return phi_into(x, np.empty_like(x), "logistic")
