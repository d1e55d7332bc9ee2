"""Transfer functions phi (MODEL.md §1): numpy versions for the model, numba versions for kernels.

Each has a code used by the kernels: 0 logistic, 1 tanh, 2 softplus, 3 relu.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from scipy.special import expit

CODES = {"logistic": 0, "tanh": 1, "softplus": 2, "relu": 3}


@numba.njit(inline="always", cache=True)
def phi_scalar(x, code):
    """phi(x) for one value; written so that no branch overflows (exp of a negative number only)."""
    if code == 0:
        if x >= 0.0:
            return 1.0 / (1.0 + math.exp(-x))
        z = math.exp(x)
        return z / (1.0 + z)
    if code == 1:
        return math.tanh(x)
    if code == 2:
        return max(x, 0.0) + math.log1p(math.exp(-abs(x)))
    return max(x, 0.0)


def phi(x: np.ndarray, name: str) -> np.ndarray:
    """Rate of potential ``x`` (any shape)."""
    if name == "logistic":
        return _logistic(x)
    if name == "tanh":
        return np.tanh(x)
    if name == "softplus":
        return np.logaddexp(0.0, x).astype(x.dtype, copy=False)
    if name == "relu":
        return np.maximum(x, 0.0)
    raise ValueError(f"unknown transfer function {name!r}")


def dphi(x: np.ndarray, name: str) -> np.ndarray:
    """phi'(x) (for ReLU, the derivative at 0 is taken as 0, as torch does)."""
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


def _logistic(x: np.ndarray) -> np.ndarray:
    # scipy's expit: one pass, keeps float32, no overflow warning for large |x|
    return expit(x)
