"""The network's state and what follows from it (docs/model.md, "Populations" and "Local
errors"): potentials, phase results, recording specifications, and the rates, top-down inputs
and local errors of a state, computed in numpy. Every engine fills a :class:`State` and returns a
:class:`PhaseResult`; :func:`currents` is the model's own definition of the local error."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ghostnet.errors import GhostnetError
from ghostnet.model.config import ModelConfig
from ghostnet.model.params import Params
from ghostnet.model.transfer import phi, softmax

BLOWUP = 1e6
"""A potential beyond this (or non-finite) is a numerical blow-up."""


class BlowUpError(GhostnetError, FloatingPointError):
    """The potentials became non-finite or exploded; the message names dt and its bound."""


@dataclass
class State:
    """Potentials of one batch: ``u[i]`` (batch x n_{i+1}), ghosts ``v[i]`` (batch x n_{i+2});
    a convolutional layer's are (batch x C x H x W)."""

    u: list[np.ndarray]
    v: list[np.ndarray]

    @classmethod
    def zeros(cls, config: ModelConfig, batch: int) -> "State":
        dt = np.dtype(config.dtype)
        n = config.shapes  # (n,) per dense layer, (C, H, W) per convolutional one
        L = len(n) - 1
        return cls(
            [np.zeros((batch, *n[i + 1]), dt) for i in range(L)],
            [np.zeros((batch, *n[i + 2]), dt) for i in range(L - 1)],
        )

    def copy(self) -> "State":
        return State([a.copy() for a in self.u], [a.copy() for a in self.v])

    @property
    def batch(self) -> int:
        return self.u[0].shape[0]


@dataclass
class PhaseResult:
    """What a phase did: steps taken, whether it settled, the final max |du/dt|, a recording."""

    steps: int
    converged: bool
    max_derivative: float
    time: float
    trajectory: dict | None = None


@dataclass
class Recording:
    """Which quantities to record, every ``stride`` steps: any of 'u', 'v', 't', 'e', 'r'."""

    stride: int = 1
    what: tuple[str, ...] = ("u", "v", "t", "e")


def prediction(config: ModelConfig, u_out: np.ndarray) -> np.ndarray:
    """The network's output prediction from the output potentials ``u_L`` (batch x n_L):
    ``phi(u_L)`` for ``cost = 'mse'``, the probabilities ``softmax(u_L)`` (each row) for
    ``cost = 'cross_entropy'``, whose rate on the feedback pathway is ``u_L`` itself."""
    if config.cost == "cross_entropy":
        return softmax(u_out)
    return phi(u_out, config.transfer)


class Currents:
    """Quantities derived from a state: rates ``r``, top-down inputs ``t``, local errors ``e`` and
    ghost rates ``ghost_rate`` (lists over layers, batch x units), and the output prediction
    ``p`` (batch x n_L: ``r[-1]`` for the squared error, ``softmax(u_L)`` for cross-entropy,
    where ``r[-1] = u_L``); the bottom-up drives ``a`` and
    the ghost inhibition ``inhibition`` (``H_l phi(v_l)``) are computed on first access, since the
    learning rule needs neither (they cost a matrix product per layer)."""

    def __init__(self, r, t, e, ghost_rate, params, drive, x, p=None):
        self.r, self.t, self.e, self.ghost_rate = r, t, e, ghost_rate
        self.p = r[-1] if p is None else p
        self._params, self._drive, self._x = params, drive, x
        self._a = None
        self._inhibition = None

    @property
    def inhibition(self) -> list[np.ndarray]:
        if self._inhibition is None:
            p = self._params
            self._inhibition = [g @ p.H[i].T for i, g in enumerate(self.ghost_rate)]
        return self._inhibition

    @property
    def a(self) -> list[np.ndarray]:
        if self._a is None:
            p = self._params
            a = []
            for i in range(len(self.r)):
                if i == 0:
                    if self._drive is not None:
                        a.append(self._drive)
                    elif self._x is not None:
                        a.append(self._x @ p.W[0].T + p.b[0])
                    else:  # without the input: the potential less its top-down input
                        a.append(None)
                else:
                    a.append(self.r[i - 1] @ p.W[i].T + p.b[i])
            self._a = a
        return self._a


def currents(
    config: ModelConfig, params: Params, state: State, y: np.ndarray | None = None,
    beta: float = 0.0, x: np.ndarray | None = None, drive: np.ndarray | None = None,
    t: list[np.ndarray] | None = None, r: list[np.ndarray] | None = None,
    g: list[np.ndarray] | None = None, e: list[np.ndarray] | None = None,
) -> Currents:
    """Rates, top-down inputs and local errors of a state, in numpy (docs/model.md §1-§4).

    ``t[i]`` is the net top-down input of layer i+1 (``B r - H phi(v)``; one product
    ``(r - phi(v)) B^T`` when H = B, as for copy and replicate); for the output layer it is the
    nudging input ``beta (y - r_L)`` (zero without target; for a clamped output, ``u_L - a_L``;
    for a cross-entropy output ``beta (y - softmax(u_L))``).
    ``e[i] = phi(u) - phi(u - t)``: local, from the potential and the top-down input only
    (docs/model.md §4). Each layer's phi is :meth:`ModelConfig.rate_transfer` (the identity for
    a cross-entropy output, so ``e_L = u_L - (u_L - t_L)``), each ghost population's
    :meth:`ModelConfig.ghost_transfer`. ``drive`` (``W_1 x + b_1``) or ``x`` serve the lazily computed ``a[0]``.
    ``t``, ``r``, ``g``: the top-down inputs (output: nudging input), the rates and the ghosts'
    rates if already known, as the equilibrium solver leaves them at its fixed point
    (:func:`ghostnet.engines.numba_equilibrium.settle`, ``keep``); ``e``, the errors, if the solver has them
    (with ``t``).
    """
    L = len(state.u)
    names = [config.rate_transfer(i) for i in range(L)]
    r = [phi(u, names[i]) for i, u in enumerate(state.u)] if r is None else list(r)
    g = ([phi(v, config.ghost_transfer(i)) for i, v in enumerate(state.v)] if g is None
         else list(g))
    softmax_out = config.cost == "cross_entropy"
    p = softmax(state.u[-1]) if softmax_out else None
    if t is not None:
        if len(t) != L:
            raise ValueError(f"t needs one array per layer ({L}), got {len(t)}")
        if e is None:
            e = [r[i] - phi(state.u[i] - t[i], names[i]) if t[i].any() else np.zeros_like(r[i])
                 for i in range(L)]
        elif len(e) != L:
            raise ValueError(f"e needs one array per layer ({L}), got {len(e)}")
        return Currents(r, list(t), list(e), g, params, drive, x, p)
    if config.mechanism == "learned":
        t = [r[i + 1] @ params.B[i].T - g[i] @ params.H[i].T for i in range(L - 1)]
    else:  # H = B: one product, skipped where the ghosts cancel exactly (copy, free phase)
        t = []
        for i in range(L - 1):
            d = r[i + 1] - g[i]
            t.append(d @ params.B[i].T if d.any() else np.zeros_like(state.u[i]))
    if y is None:
        t_out = np.zeros_like(state.u[-1])
    elif config.output == "clamp":
        pre = r[-2] if L > 1 else None
        if pre is None:
            a_out = drive if drive is not None else x @ params.W[0].T + params.b[0]
        else:
            a_out = pre @ params.W[-1].T + params.b[-1]
        t_out = state.u[-1] - a_out
    else:
        t_out = beta * (y - (p if softmax_out else r[-1]))
    t.append(t_out)
    # no top-down input, no error (exactly: phi(u - 0) = phi(u)); skips the free phase's work
    e = [r[i] - phi(state.u[i] - t[i], names[i]) if t[i].any() else np.zeros_like(r[i])
         for i in range(L)]
    return Currents(r, t, e, g, params, drive, x, p)
