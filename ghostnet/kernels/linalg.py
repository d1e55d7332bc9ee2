"""The batched matrix products of equilibrium mode and the input drive, in the faster of two
orientations.

``r @ W.T`` (batch x n_in times n_in x n_out, the layout of the whole package: one row per sample)
gives a batch x n_out result. numpy's OpenBLAS computes the same product 10-35% faster as
``W @ r.T``, an n_out x batch result, when the layer is much wider than the batch and the inner
dimension is not tiny (784-500 and 500-500 at batch 100, float32, 2-core EPYC: 518 -> 422 us and
343 -> 280 us including the transposing copy; at batch 16, 35%), and slower otherwise (500-10:
1.8x; any shape at batch 1000). :func:`affine` picks by shape; the result is always a C-contiguous
batch x n_out array, so nothing downstream sees the difference. :func:`dot_into` is the same
without allocating, for the integrator's step loop. (benchmarks/bench_engine.py times both.)
"""
from __future__ import annotations

import numpy as np

WIDE = 4
"""The transposed product is used when ``n_out >= WIDE * batch`` and ``n_in >= MIN_INNER``."""
MIN_INNER = 64


def wide(batch: int, n_in: int, n_out: int) -> bool:
    """Whether the transposed product ``W @ r.T`` is the faster one for these shapes."""
    return n_out >= WIDE * batch and n_in >= MIN_INNER


def dot_into(r: np.ndarray, W: np.ndarray, out: np.ndarray, scratch) -> np.ndarray:
    """``out[...] = r @ W.T`` without allocating; ``scratch(shape)`` returns a reusable buffer
    of ``shape`` (n_out x batch, for the transposed product)."""
    batch, n_in = r.shape
    n_out = W.shape[0]
    if wide(batch, n_in, n_out):
        p = scratch((n_out, batch))
        np.dot(W, r.T, out=p)
        np.copyto(out, p.T)
    else:
        np.dot(r, W.T, out=out)
    return out


def affine(r: np.ndarray, W: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """``r @ W.T + b`` (``b`` optional) as a new C-contiguous array, ``r`` batch x n_in, ``W``
    n_out x n_in (any strides)."""
    batch, n_in = r.shape
    n_out = W.shape[0]
    if wide(batch, n_in, n_out):
        p = W @ r.T  # n_out x batch, C-contiguous
        out = np.empty((batch, n_out), dtype=p.dtype)
        if b is None:
            np.copyto(out, p.T)
        else:
            np.add(p.T, b, out=out)
        return out
    out = r @ W.T
    if b is not None:
        out += b
    return out
