"""Local plasticity (docs/model.md §4): weight updates from post-synaptic error and pre-synaptic rate.

The local error of a neuron is ``e = phi(u) - phi(u - t)``: its rate minus the rate its bottom-up
input alone would give, computed from its own potential ``u`` and the net top-down input ``t`` it
receives (:func:`ghostnet.model.state.currents`). Nothing here runs a backward pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ghostnet.kernels.numba_kernels import axpy
from ghostnet.model.config import ModelConfig
from ghostnet.model.params import Params


@dataclass
class Update:
    """Per-layer weight changes: ``dW[i]`` like ``W[i]``, ``db[i]`` like ``b[i]``; ``dB`` for plastic
    feedback (empty otherwise). They point downhill: ``dW -> -dC/dW`` as beta -> 0 (copy, symmetric)."""

    dW: list[np.ndarray]
    db: list[np.ndarray]
    dB: list[np.ndarray]

    def flat(self, i: int) -> np.ndarray:
        """Layer i's update (W and b together) as one vector, as the alignment metrics use it."""
        return np.concatenate([self.dW[i].ravel(), self.db[i].ravel()])


def scale(config: ModelConfig, beta: float) -> float:
    """The 1/beta of §4; a clamped output (beta -> infinity) carries an error of order 1: scale 1."""
    if config.output == "clamp":
        return 1.0
    if beta <= 0:
        raise ValueError("the nudged phase needs beta > 0 to learn (beta = 0 gives no target)")
    return 1.0 / beta


def end_of_phase(
    config: ModelConfig,
    e: list[np.ndarray],
    pre: list[np.ndarray],
    beta: float,
    e_free: list[np.ndarray] | None = None,
) -> Update:
    """The end-of-phase update of §4, averaged over the batch (eta = 1).

    ``dW_l = (1/beta) mean_batch[(e_l - e_l(free)) r_{l-1}^T]``, ``db_l = (1/beta) mean(e_l - e_l(free))``;
    ``pre[i]`` is the pre-synaptic rate of layer i+1 (the input x for layer 1) at the end of the
    nudged phase; ``e_free`` the free-phase error (the baseline; None learns from e itself).
    With plastic feedback, Kolen-Pollack's ``dB_l = (1/beta) r_l e_{l+1}^T`` (§6).
    """
    k = scale(config, beta)
    n = e[0].shape[0]
    err = e if e_free is None else [a - b for a, b in zip(e, e_free)]
    dW = [(err[i] * (k / n)).T @ pre[i] for i in range(len(err))]  # scale the small factor
    db = [k * err[i].mean(axis=0) for i in range(len(err))]
    dB = []
    if config.feedback == "plastic":
        dB = [k * (pre[i + 1].T @ err[i + 1]) / n for i in range(len(err) - 1)]
    return Update(dW, db, dB)


def sgd_step(config: ModelConfig, params: Params, update: Update, lr: float | list[float]) -> None:
    """Plain SGD along the update: ``W += lr_l dW`` (the update already points downhill), with
    ``config.weight_decay`` on W (and on B for plastic feedback), in place;
    then the derived weights are kept in step (:meth:`Params.sync`). ``lr`` is one rate or one per
    layer."""
    L = len(params.W)
    lrs = list(lr) if isinstance(lr, (list, tuple)) else [lr] * L
    if len(lrs) != L:
        raise ValueError(f"need one learning rate per layer ({L}), got {len(lrs)}")
    wd = config.weight_decay
    for i in range(L):
        if wd:
            params.W[i] *= 1.0 - lrs[i] * wd
        _add_scaled(params.W[i], lrs[i], update.dW[i])
        params.b[i] += lrs[i] * update.db[i].astype(params.b[i].dtype, copy=False)
    for i, dB in enumerate(update.dB):  # Kolen-Pollack: the transpose of W_{i+2}'s update (§6)
        if wd:
            params.B[i] *= 1.0 - lrs[i + 1] * wd
        params.B[i] += lrs[i + 1] * dB.astype(params.B[i].dtype, copy=False)
    params.sync(config)


def _add_scaled(y: np.ndarray, a: float, x: np.ndarray) -> None:
    """``y += a x`` in place: one pass by the Numba kernel where both are 2-D of one dtype."""
    if x.ndim == 2 and x.shape == y.shape and x.dtype == y.dtype:
        axpy(y, float(a), x)
    else:
        y += a * x.astype(y.dtype, copy=False)
