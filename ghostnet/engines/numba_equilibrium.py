"""Equilibrium mode (docs/model.md §8): the fixed points of §2 computed without time integration.

At a fixed point every ghost sits at its own fixed point given the layer below
(``v_i = G_i r_i + c_i``; ``v_i = u_{i+1}`` for replicate in the free phase; held in the nudged
phase), and every pyramidal potential equals its input: ``u_i = a_i + t_i``, the output
``u_L = a_L + beta (y - phi(u_L))``.

- Free phase, copy or replicate: the fixed point is the feedforward pass (Property 1, §3), computed
  directly in one pass.
- Otherwise: alternating passes. A *down* pass goes from the top layer to the bottom and updates
  every potential from the top-down input of the layer above (the B products: the error enters at
  the top and one pass carries it to the bottom); the output's scalar equation is solved by
  Newton's method element-wise (monotone: 1 + beta phi' > 0), so any beta works; a cross-entropy
  output's vector equation ``u = a + beta (y - softmax(u))`` by Newton's method per sample
  (Jacobian ``I + beta (diag(p) - p p^T)``, positive definite; docs/model.md, "Cross-entropy
  output"), and its rate and its ghosts' rate are the identity. An *up* pass goes
  from the bottom to the top and recomputes the bottom-up inputs a_l and the ghosts from the new
  rates (the W products) and, with the top-down inputs held, lets each potential follow at once,
  so the rates' changes also travel up in the same pass (symmetric Gauss-Seidel). The nudged phase
  starts from the free phase's a_l (``keep``), so its first down pass needs no W product. At beta
  = 0.01 a down-up pair gains about 3.5 digits (784-500-500-10: the error's relative accuracy
  3e-4, 1e-7, 5e-11 after 1, 2, 3 down passes), against about 2 for plain Gauss-Seidel sweeps;
  when a pair contracts by less than 4x (strong coupling: large beta, tanh) the up pass stops
  moving the potentials, which is plain Gauss-Seidel, the faster of the two there; when even that
  stops contracting for 5 passes (a unit oscillating between two values), the down pass is
  under-relaxed, u <- u + omega (u_new - u), omega halved each time down to 1/8.
  The passes stop when the last down pass's change, or the distance to the fixed point estimated
  from the last two as ``rho / (1 - rho) * change`` (``rho`` = change / previous change, the
  contraction factor; a bound for a contraction), falls below ``max(eq_tol, 10 eps max(1,
  max|u|))`` (eps of the dtype), or after ``eq_max_iter`` down passes.
"""
from __future__ import annotations

import numpy as np

from ghostnet.kernels import numba_kernels as K
from ghostnet.model.config import ModelConfig
from ghostnet.model.state import BLOWUP, BlowUpError, PhaseResult, State
from ghostnet.kernels.linalg import affine
from ghostnet.model.params import Params
from ghostnet.model.transfer import phi, phi_inv


def forward(config: ModelConfig, params: Params, x: np.ndarray,
            drive: np.ndarray | None = None, rates: list | None = None) -> list[np.ndarray]:
    """Feedforward potentials ``a_l`` (list over layers, batch x n_l): the free fixed point.
    ``rates``, a list, receives the rates ``phi(a_l)`` (a cross-entropy output's rate is ``a_L``
    itself; its prediction is :func:`ghostnet.model.state.prediction`)."""
    a = []
    r = x
    for i, (W, b) in enumerate(zip(params.W, params.b)):
        a.append(drive if i == 0 and drive is not None else affine(r, W, b))
        r = phi(a[-1], config.rate_transfer(i))
        if rates is not None:
            rates.append(r)
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
    keep: dict | None = None,
) -> PhaseResult:
    """Put ``state`` at the fixed point of a free (``y=None``) or nudged phase, in place.

    ``drive`` is ``W_1 x + b_1`` if already computed (once per presentation). ``noise``, one
    array per layer (batch x n_l, or broadcastable), is a constant current added to every
    pyramidal neuron's input (the exploration noise of ghost pre-training,
    :func:`ghostnet.network.mechanisms.pretrain`); the ghosts receive none. ``keep``, a dict: if it holds
    ``"a"`` (the bottom-up inputs ``a_l`` of the state's rates, as the free phase leaves them)
    and ``"r"`` (the rates), they are not recomputed, nor, with ``"g"`` (the ghosts' rates
    phi(v)), the first pass's ghost rates where the ghosts' input does not change (copy ghosts,
    whose input is ``a_{l+1}``; held ghosts); on return it holds ``"a"``, ``"r"``,
    ``"g"`` (the ghosts' rates phi(v)) and ``"t"`` (per layer the top-down input, for the output
    the nudging input: ``u = a + noise + t``) of the fixed point, and, where the solver has them,
    ``"e"``, the local errors ``phi(u) - phi(u - t)`` (docs/model.md §4): zero in the feedforward
    free phase; for copy ghosts without noise, ``e_{l+1} = r_{l+1} - phi(v_l)`` is the difference
    the last down pass multiplied by ``B_l`` (``phi(v_l) = phi(a_{l+1}) = phi(u_{l+1} - t_{l+1})``
    at the fixed point), so only layer 1's is computed.
    Returns the number of down passes as ``steps``.
    """
    name = config.transfer
    L = len(params.W)
    names = [config.rate_transfer(i) for i in range(L)]  # the identity for a cross-entropy output
    gnames = [config.ghost_transfer(i) for i in range(L - 1)]
    dtype = np.dtype(config.dtype)
    x = np.asarray(x, dtype=dtype)
    W, b, B, G, c, H = params.W, params.b, params.B, params.G, params.c, params.H
    mech = config.mechanism
    u, v = state.u, state.v
    drive0 = affine(x, W[0], b[0]) if drive is None else drive
    if y is None and mech in ("copy", "replicate") and not hold_ghosts and noise is None:
        r = []
        a = forward(config, params, x, drive0, r)  # Property 1: the feedforward pass
        for i in range(L):
            u[i][...] = a[i]
        for i in range(L - 1):
            v[i][...] = a[i + 1]
        if keep is not None:
            keep.update(a=a, r=r, g=r[1:], t=[np.zeros_like(ai) for ai in a],
                        e=[np.zeros_like(ai) for ai in a])
        return PhaseResult(1, True, 0.0, 0.0)

    eps = float(np.finfo(dtype).eps)
    clamp = y is not None and config.output == "clamp"
    if clamp:
        u[-1][...] = phi_inv(np.asarray(y, dtype), name)
    y_arr = None if y is None else np.asarray(y, dtype)

    def with_noise(i, ai):
        return ai if noise is None else ai + noise[i]

    def output(a_top):  # the output's own equation
        if clamp:
            return u[-1]
        n_top = with_noise(L - 1, a_top)
        if y is None:
            return n_top
        if config.cost == "cross_entropy":
            return _solve_output_softmax(n_top, u[-1], y_arr, beta)
        return _solve_output(n_top, u[-1], y_arr, beta, name)

    def ghost_input(i):  # ghost i at its fixed point given the rates r_i (copy, learned)
        if mech == "copy":
            v[i][...] = a[i + 1]
        elif mech == "learned":
            v[i][...] = affine(r[i], G[i], c[i])

    t = [None] * L  # set by the first down pass (and the output's by _done)
    g = [None] * (L - 1)  # the ghosts' rates phi(v), as the last down pass used them
    # copy ghosts without noise: the last down pass's r_{i+1} - phi(v_i) are the errors e_{i+1}
    e = [None] * L if mech == "copy" and noise is None and not hold_ghosts else None
    a = [drive0] + [None] * (L - 1)
    g_start = None  # the ghosts' rates at the start, where they are known and stay valid
    if keep is not None and keep.get("a") is not None:  # handed over by the free phase
        a = [np.asarray(ai, dtype=dtype) for ai in keep["a"]]
        r = list(keep["r"]) if keep.get("r") is not None else [phi(ui, names[i]) for i, ui in enumerate(u)]
        if keep.get("g") is not None and (mech == "copy" or hold_ghosts):
            g_start = list(keep["g"])  # phi(a_{l+1}) (copy), phi(v) of held ghosts
    elif y is None:
        # free phase: start from the feedforward pass (t = 0), the exact answer for copy ghosts
        r = [None] * L
        for i in range(L):
            if i:
                a[i] = affine(r[i - 1], W[i], b[i])
            u[i][...] = output(a[i]) if i == L - 1 else with_noise(i, a[i])
            r[i] = phi(u[i], names[i])
        if keep is not None:  # where the first-order nudged pass of learned ghosts starts
            keep["r_start"] = list(r)
    else:  # the bottom-up inputs of the state's own rates
        r = [phi(ui, names[i]) for i, ui in enumerate(u)]
        for i in range(1, L):
            a[i] = affine(r[i - 1], W[i], b[i])
    if not hold_ghosts:
        for i in range(L - 1):
            if mech == "replicate":
                v[i][...] = u[i + 1]
            else:
                ghost_input(i)

    prev = 0.0  # the previous down pass's change
    change = np.inf
    propagate = True
    omega, stalled = 1.0, 0  # under-relaxation of the down pass, when it stops contracting
    top_solved = None  # the a_L the up pass solved the output for (no need to solve it again)
    for it in range(1, config.eq_max_iter + 1):
        # down pass: the error enters at the top and travels to the bottom (B products)
        if top_solved is a[-1] and omega == 1.0:
            change = 0.0  # u_L, r_L are the up pass's solution for this a_L
        else:
            new = output(a[-1])
            if omega < 1.0:
                new = u[-1] + omega * (new - u[-1])
            change = float(np.max(np.abs(new - u[-1])))
            u[-1][...] = new
            r[-1] = phi(u[-1], names[-1])
        for i in range(L - 2, -1, -1):
            if mech == "replicate" and not hold_ghosts:
                v[i][...] = u[i + 1]
            g[i] = g_start[i] if it == 1 and g_start is not None else phi(v[i], gnames[i])
            if mech in ("copy", "replicate"):  # H = B: one product
                d = r[i + 1] - g[i]
                t[i] = affine(d, B[i])
                if e is not None:
                    e[i + 1] = d
            else:
                t[i] = affine(r[i + 1], B[i])
                t[i] -= affine(g[i], H[i])
            new = with_noise(i, a[i]) + t[i]
            if omega < 1.0:
                new = u[i] + omega * (new - u[i])
            change = max(change, float(np.max(np.abs(new - u[i]))))
            u[i][...] = new
            r[i] = phi(u[i], names[i])
        # relative to the potentials' size: float32 cannot resolve 1e-6 at |u| = 16
        scale = max(1.0, max(float(np.max(np.abs(ui))) for ui in u))
        if not (np.isfinite(change) and scale <= BLOWUP):  # the integrator's blow-up rule
            raise BlowUpError(
                f"equilibrium iteration diverged (potentials beyond {BLOWUP:g} or non-finite) in "
                f"the {'free' if y is None else 'nudged'} phase; with learned ghosts try smaller "
                f"eta_g / eta_h, in a nudged phase a smaller beta"
            )
        tol = max(config.eq_tol, 10 * eps * scale)
        rho = change / prev if prev > 0 else 1.0
        if change < tol or (rho < 0.5 and rho / (1.0 - rho) * change < tol):
            return _done(keep, a, t, u, r, g, e if omega == 1.0 else None, it, True, change,
                         names[0])
        if it > 1 and rho > 0.25:
            propagate = False  # strong coupling: plain Gauss-Seidel contracts faster
        if not propagate and rho > 0.95:
            stalled += 1
            if stalled >= 5 and omega > 0.125:  # no contraction (an oscillating unit): damp
                omega, stalled = omega / 2, 0
        else:
            stalled = 0
        prev = change
        if it == config.eq_max_iter:
            break
        # up pass: the bottom-up inputs (and ghosts) of the new rates (W products); while
        # `propagate`, each layer's potential follows at once with its top-down input held, so
        # the rates' changes travel up in the same pass
        for i in range(1, L):
            a[i] = affine(r[i - 1], W[i], b[i])
            if not hold_ghosts and mech != "replicate":
                ghost_input(i - 1)
            if propagate:
                u[i][...] = output(a[i]) if i == L - 1 else with_noise(i, a[i]) + t[i]
                r[i] = phi(u[i], names[i])
                if i == L - 1:
                    top_solved = a[i]
                if mech == "replicate" and not hold_ghosts:
                    v[i - 1][...] = u[i]
    return _done(keep, a, t, u, r, g, e if omega == 1.0 else None, config.eq_max_iter, False,
                 change, names[0])


def _done(keep, a, t, u, r, g, e, steps, converged, change, name) -> PhaseResult:
    """Fill ``keep`` at the end of a nudged or iterated phase; ``e`` (or None): the errors of
    layers 2..L from the last down pass (copy ghosts, no noise, no damping); ``name``: layer 1's
    transfer function."""
    if keep is not None:
        t[-1] = u[-1] - a[-1]  # the output's nudging input (and noise, if any)
        keep.update(a=a, t=t, r=r, g=g)
        if e is not None:
            e[0] = r[0] - phi(a[0], name)  # u_1 - t_1 = a_1 (no noise)
            keep["e"] = e
        else:
            keep.pop("e", None)
    return PhaseResult(steps, converged, change, 0.0)


def _solve_output_softmax(a: np.ndarray, u0: np.ndarray, y: np.ndarray, beta: float) -> np.ndarray:
    """Solve the cross-entropy output's ``u = a + beta (y - softmax(u))`` row by row by Newton's
    method from ``u0`` (:func:`ghostnet.kernels.numba_kernels.solve_output_softmax`)."""
    u = np.array(u0, dtype=u0.dtype, copy=True)
    a = np.broadcast_to(a, u.shape)
    y = np.broadcast_to(np.asarray(y, dtype=u.dtype), u.shape)
    eps = 4 * float(np.finfo(u.dtype).eps)
    K.solve_output_softmax(a, u, y, float(beta), eps, 100)
    return u


def _solve_output(a: np.ndarray, u0: np.ndarray, y: np.ndarray, beta: float, name: str) -> np.ndarray:
    """Solve ``u = a + beta (y - phi(u))`` element-wise by Newton's method from ``u0`` (a Numba
    kernel, :func:`ghostnet.kernels.numba_kernels.solve_output`: one pass over the elements instead of ~10
    numpy calls per Newton step)."""
    u = np.array(u0, dtype=u0.dtype, copy=True)
    a = np.broadcast_to(a, u.shape)
    y = np.broadcast_to(np.asarray(y, dtype=u.dtype), u.shape)
    eps = 4 * float(np.finfo(u.dtype).eps)  # quadratic convergence: a few steps from a warm start
    K.solve_output(K.TRANSFER_CODES[name], a, u, y, float(beta), eps, 50)
    return u
