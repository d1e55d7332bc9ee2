"""Equilibrium mode (MODEL.md §7): the fixed points of §2 computed without time integration.

At a fixed point every ghost sits at its own fixed point given the layer below
(``v_i = G_i r_i + c_i``; ``v_i = u_{i+1}`` for replicate in the free phase; held in the nudged
phase), and every pyramidal potential equals its input: ``u_i = a_i + t_i``, the output
``u_L = a_L + beta (y - phi(u_L))``.

- Free phase, copy or replicate: the fixed point is the feedforward pass (Property 1, §3), computed
  directly in one pass.
- Otherwise: Gauss-Seidel sweeps from the top layer down (the error enters at the top and one sweep
  carries it to the bottom), each layer's ghost recomputed from its current rate; the output's
  scalar equation is solved by Newton's method element-wise (monotone: 1 + beta phi' > 0), so any
  beta works. The sweeps stop when the distance to the fixed point, estimated from the last two
  changes as ``rho / (1 - rho) * change`` (``rho`` = change / previous change, the contraction
  factor; a bound for a contraction), or else the last change itself, falls below
  ``max(eq_tol, 10 eps max(1, max|u|))`` (eps of the dtype), or after ``eq_max_iter`` sweeps. At
  beta = 0.01 each sweep gains about two digits, so the estimate saves the last, confirming sweep.
"""
from __future__ import annotations

import numpy as np

from ghostnet.config import ModelConfig
from ghostnet.dynamics import BLOWUP, PhaseResult, State
from ghostnet.params import Params
from ghostnet.transfer import dphi, phi, phi_inv


def forward(config: ModelConfig, params: Params, x: np.ndarray,
            drive: np.ndarray | None = None) -> list[np.ndarray]:
    """Feedforward potentials ``a_l`` (list over layers, batch x n_l): the free fixed point."""
    name = config.transfer
    a = []
    r = x
    for i, (W, b) in enumerate(zip(params.W, params.b)):
        a.append(drive if i == 0 and drive is not None else r @ W.T + b)
        r = phi(a[-1], name)
    return a


def settle(
    config: ModelConfig,
    params: Params,
    state: State,
    x: np.ndarray,
    y: np.ndarray | None = None,
    beta: float = 0.0,
    hold_ghosts: bool = False,
    drive: np.ndarray | None = None,
    noise: list[np.ndarray] | None = None,
) -> PhaseResult:
    """Put ``state`` at the fixed point of a free (``y=None``) or nudged phase, in place.
    ``drive`` is ``W_1 x + b_1`` if already computed (once per presentation). ``noise``, one
    array per layer (batch x n_l, or broadcastable), is a constant current added to every
    pyramidal neuron's input (the exploration noise of ghost pre-training,
    :func:`ghostnet.mechanisms.pretrain`); the ghosts receive none."""
    name = config.transfer
    L = len(params.W)
    dtype = np.dtype(config.dtype)
    x = np.asarray(x, dtype=dtype)
    if y is None and config.mechanism in ("copy", "replicate") and not hold_ghosts and noise is None:
        a = forward(config, params, x, drive)
        for i in range(L):
            state.u[i][...] = a[i]
        for i in range(L - 1):
            state.v[i][...] = a[i + 1]
        return PhaseResult(1, True, 0.0, 0.0)

    eps = float(np.finfo(dtype).eps)
    clamp = y is not None and config.output == "clamp"
    if clamp:
        state.u[-1][...] = phi_inv(np.asarray(y, dtype), name)
    u = state.u
    v = state.v
    y_arr = None if y is None else np.asarray(y, dtype)
    r = [phi(ui, name) for ui in u]
    drive0 = x @ params.W[0].T + params.b[0] if drive is None else drive
    change = np.inf
    copy = config.mechanism == "copy"
    prev = 0.0  # the previous sweep's change
    a_above = None  # copy: the drive of layer i+1 from r_i is also ghost i's input (G = W_{i+1})
    for it in range(1, config.eq_max_iter + 1):
        change = 0.0
        for i in range(L - 1, -1, -1):
            a_i = drive0 if i == 0 else r[i - 1] @ params.W[i].T + params.b[i]
            a_n = a_i if noise is None else a_i + noise[i]  # the ghosts see a_i (copy)
            if i == L - 1:
                if not clamp:
                    new = a_n if y is None else _solve_output(a_n, u[i], y_arr, beta, name)
                    change = max(change, float(np.max(np.abs(new - u[i]))))
                    u[i][...] = new
                    r[i] = phi(u[i], name)
                a_above = a_i
                continue
            if not hold_ghosts:
                if copy:
                    v[i][...] = a_above
                elif config.mechanism == "replicate":
                    v[i][...] = u[i + 1]
                else:
                    v[i][...] = r[i] @ params.G[i].T + params.c[i]
            if copy or config.mechanism == "replicate":  # H = B: one product
                new = a_n + (r[i + 1] - phi(v[i], name)) @ params.B[i].T
            else:
                new = a_n + r[i + 1] @ params.B[i].T - phi(v[i], name) @ params.H[i].T
            change = max(change, float(np.max(np.abs(new - u[i]))))
            u[i][...] = new
            r[i] = phi(u[i], name)
            a_above = a_i
        # relative to the potentials' size: float32 cannot resolve 1e-6 at |u| = 16
        scale = max(1.0, max(float(np.max(np.abs(ui))) for ui in u))
        if not (np.isfinite(change) and scale <= BLOWUP):  # the integrator's blow-up rule
            raise FloatingPointError(
                f"equilibrium iteration diverged (potentials beyond {BLOWUP:g} or non-finite) in "
                f"the {'free' if y is None else 'nudged'} phase; with learned ghosts try smaller "
                f"eta_g / eta_h, in a nudged phase a smaller beta"
            )
        tol = max(config.eq_tol, 10 * eps * scale)
        rho = change / prev if prev > 0 else 1.0
        if change < tol or (rho < 0.5 and rho / (1.0 - rho) * change < tol):
            _ghosts_at_fixed_point(config, params, state, r, hold_ghosts)
            return PhaseResult(it, True, change, 0.0)
        prev = change
    _ghosts_at_fixed_point(config, params, state, r, hold_ghosts)
    return PhaseResult(config.eq_max_iter, False, change, 0.0)


def _ghosts_at_fixed_point(config, params, state, r, hold_ghosts) -> None:
    """Each ghost at its own fixed point given the final rates of its layer."""
    if hold_ghosts:
        return
    for i in range(len(state.v)):
        if config.mechanism == "replicate":
            state.v[i][...] = state.u[i + 1]
        elif config.mechanism == "copy":
            state.v[i][...] = r[i] @ params.W[i + 1].T + params.b[i + 1]
        else:
            state.v[i][...] = r[i] @ params.G[i].T + params.c[i]


def _solve_output(a: np.ndarray, u0: np.ndarray, y: np.ndarray, beta: float, name: str) -> np.ndarray:
    """Solve ``u = a + beta (y - phi(u))`` element-wise by Newton's method from ``u0``."""
    u = u0.copy()
    eps = 4 * np.finfo(u.dtype).eps  # quadratic convergence: a few steps from a warm start
    for _ in range(50):
        f = u - a - beta * (y - phi(u, name))
        step = f / (1.0 + beta * dphi(u, name))
        u -= step
        if np.max(np.abs(step)) <= eps * (1.0 + np.max(np.abs(u))):
            break
    return u
