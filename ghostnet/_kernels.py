"""Numba kernels: the vector field of MODEL.md §2 integrated over one phase, batched.

Pure array code: no configuration objects, no Python loop over neurons or samples. Each step is

1. the matrix products, by BLAS into preallocated buffers (``np.dot(a, b.T, out)``):
   ``A_i = r_{i-1} W_i^T`` (i >= 1; ``A_0`` is the drive ``W_1 x + b_1``, computed once per
   presentation), ``T_i = (r_{i+1} - phi(v_i)) B_i^T`` when ``H = B`` (copy, replicate: one product
   instead of two) or ``r_{i+1} B_i^T - phi(v_i) H_i^T`` (learned), and the learned ghosts' input
   ``G_i r_i``; a copy ghost's input ``W_{i+1} r_i + b_{i+1}`` is ``A_{i+1}``, not recomputed;
2. one parallel pass over the batch rows (samples are independent copies of the network) that
   updates u and v from the currents of the pre-step state and computes the next rates
   ``phi(u)``, ``phi(v)`` and ``r_{i+1} - phi(v_i)``, with the largest |du/dt| and the blow-up
   check of each row.

No array is allocated inside the step loop. The transfer function is chosen once per row, so the
element loops are branch-free. Layer lists are ``numba.typed.List`` of
C-contiguous 2-D arrays (biases as 1 x n rows). Index ``i`` is layer ``l = i + 1``; hidden layer
``i`` has ghost population ``i`` (n_{i+2} units).

The equations, in the kernels' names (MODEL.md §2):

    tau   du_i/dt = -u_i + A_i + b_i + T_i              (T_i = B_i r_{i+1} - H_i phi(v_i))
    tau   du_L/dt = -u_L + A_L + b_L + beta (y - r_L)
    tau_g dv_i/dt = -v_i + G_i r_i + c_i                (copy: G_i r_i + c_i = A_{i+1} + b_{i+1})
    tau_g dv_i/dt = -v_i + u_{i+1}                      (replicate, free phase; held when nudged)
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

MECH_COPY, MECH_LEARNED, MECH_REPLICATE = 0, 1, 2
METHOD_EULER, METHOD_EXPEULER = 0, 1
STATUS_OK, STATUS_BLOWUP = 0, 1


# ---- transfer functions, branch-free where possible (exp(-x) -> inf gives 0 exactly) ----------
@numba.njit(inline="always", cache=True)
def logistic(x):
    return 1.0 / (1.0 + math.exp(-x))


@numba.njit(inline="always", cache=True)
def tanh(x):
    return math.tanh(x)


@numba.njit(inline="always", cache=True)
def softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


@numba.njit(inline="always", cache=True)
def relu(x):
    return max(x, 0.0)


TRANSFER_CODES = {"logistic": 0, "tanh": 1, "softplus": 2, "relu": 3}


@numba.njit(cache=True)
def axpy(y, a, x):
    """``y += a x`` in place for 2-D arrays of one shape (one pass; numpy's ``y += a * x`` makes
    a temporary and takes two: 33 against 64 us for 500 x 784 float32)."""
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[i, j] += a * x[i, j]


@numba.njit(inline="always", cache=True)
def phi_dphi(code, x):
    """``(phi(x), phi'(x))`` for transfer ``code`` (ReLU's derivative at 0 taken as 0)."""
    if code == 0:
        s = logistic(x)
        return s, s * (1.0 - s)
    if code == 1:
        t = tanh(x)
        return t, 1.0 - t * t
    if code == 2:
        return softplus(x), logistic(x)
    return relu(x), 1.0 if x > 0.0 else 0.0


@numba.njit(cache=True)
def solve_output(code, a, u, y, beta, eps, max_iter):
    """The output's fixed-point equation ``u = a + beta (y - phi(u))``, element-wise by Newton's
    method from ``u`` (in place; 2-D arrays of one shape, any strides): ``f(u) = u - a - beta
    (y - phi(u))`` is increasing for beta >= 0 (``f' = 1 + beta phi' >= 1``). Each element stops
    when its step is at most ``eps (1 + |u|)``; computed in float64."""
    for i in range(u.shape[0]):
        for j in range(u.shape[1]):
            x = float(u[i, j])
            ai = float(a[i, j])
            yi = float(y[i, j])
            for _ in range(max_iter):
                p, dp = phi_dphi(code, x)
                step = (x - ai - beta * (yi - p)) / (1.0 + beta * dp)
                x -= step
                if abs(step) <= eps * (1.0 + abs(x)):
                    break
            u[i, j] = x


@numba.njit(inline="always", cache=True)
def phi_row(code, src, dst):
    """``dst[j] = phi(src[j])`` for a row; one branch per row, so each loop is branch-free.
    (A compiled function passed as an argument would also specialise, but its type is not
    stable across processes, which defeats Numba's on-disk cache.)"""
    n = src.shape[0]
    if code == 0:
        for j in range(n):
            dst[j] = logistic(src[j])
    elif code == 1:
        for j in range(n):
            dst[j] = tanh(src[j])
    elif code == 2:
        for j in range(n):
            dst[j] = softplus(src[j])
    else:
        for j in range(n):
            dst[j] = relu(src[j])


@numba.njit(parallel=True, cache=True)
def phi_array(code, x, out):
    """``out = phi(x)`` for a C-contiguous 2-D array, parallel over rows."""
    for a in prange(x.shape[0]):
        phi_row(code, x[a], out[a])


@numba.njit(inline="always", cache=True)
def row_rates(phi, mech, us, vs, rs, gs, Ds, a):
    """Row ``a``: ``rs = phi(us)``, ``gs = phi(vs)`` and, when H = B, ``Ds = rs[i+1] - gs[i]``."""
    L = len(us)
    for i in range(L):
        phi_row(phi, us[i][a], rs[i][a])
    for i in range(L - 1):
        v = vs[i][a]
        g = gs[i][a]
        phi_row(phi, v, g)
        if mech != MECH_LEARNED:
            D = Ds[i][a]
            R = rs[i + 1][a]
            for j in range(v.shape[0]):
                D[j] = R[j] - g[j]


def _rates(phi, mech, us, vs, rs, gs, Ds):
    """Rates of the whole batch (``row_rates`` for every row), in place."""
    for a in prange(us[0].shape[0]):
        row_rates(phi, mech, us, vs, rs, gs, Ds, a)


# Each compiled twice: parallel over the batch rows, and serial for small work, where starting the
# threads costs more than the step (a 3-sample batch of a 20-unit network: ~20x).
rates_par = numba.njit(parallel=True, cache=True)(_rates)
rates_ser = numba.njit(cache=True)(_rates)


@numba.njit(cache=True)
def products(Ws, Bs, Gs, Hs, rs, gs, As, Ts, Ds, GAs, mech):
    """The matrix products of one step (BLAS, into the preallocated buffers)."""
    L = len(rs)
    for i in range(1, L):
        np.dot(rs[i - 1], Ws[i].T, As[i])
    for i in range(L - 1):
        if mech == MECH_LEARNED:
            np.dot(rs[i + 1], Bs[i].T, Ts[i])
            np.dot(gs[i], Hs[i].T, Ds[i])  # Ds holds H phi(v) here (batch x n_{i+1})
            np.dot(rs[i], Gs[i].T, GAs[i])
        else:
            np.dot(Ds[i], Bs[i].T, Ts[i])


@numba.njit(inline="always", cache=True)
def advance(old, inp, tau, dt, decay, euler):
    """One step of ``tau dx/dt = -x + inp`` from ``old``: forward Euler, or exponential Euler
    (``decay = exp(-dt / tau)``, exact for a constant input). Returns ``(new, dx/dt at old)``."""
    d = (inp - old) / tau
    x = old + dt * d if euler else inp + (old - inp) * decay
    return x, d


def _update(phi, drive, bs, cs, us, vs, rs, gs, As, Ts, Ds, GAs, y, beta, nudge, clamp, hold,
           mech, method, dt, tau, tau_g, decay, decay_g, blowup, row_max, row_bad, with_rates):
    """One step for every row: u and v from the pre-step currents, then (``with_rates``) the new
    rates; without them the caller computes the rates (:class:`ghostnet.dynamics.Integrator` does
    so with numpy's SIMD functions for large networks, several times faster than scalar ``exp``).
    (List items are fetched outside the element loops: a typed-list lookup per element costs more
    than the arithmetic.)"""
    L = len(us)
    nb = us[0].shape[0]
    euler = method == METHOD_EULER
    for a in prange(nb):
        maxd = 0.0
        bad = False
        # ghosts first: replicate reads the partner's pre-step potential
        if not hold:
            for i in range(L - 1):
                v = vs[i][a]
                if mech == MECH_COPY:
                    src = As[i + 1][a]
                    bias = bs[i + 1][0]
                elif mech == MECH_LEARNED:
                    src = GAs[i][a]
                    bias = cs[i][0]
                else:
                    src = us[i + 1][a]
                    bias = cs[i][0]
                with_bias = mech != MECH_REPLICATE
                for j in range(v.shape[0]):
                    inp = src[j] + bias[j] if with_bias else src[j]
                    x, d = advance(v[j], inp, tau_g, dt, decay_g, euler)
                    maxd = max(maxd, abs(d))
                    bad |= not (abs(x) < blowup)
                    v[j] = x
        for i in range(L):
            last = i == L - 1
            if last and clamp:
                continue
            u = us[i][a]
            R = rs[i][a]
            src = drive[a] if i == 0 else As[i][a]
            bias = bs[i][0]
            b_on = i > 0  # the drive already holds b_1
            if not last:
                T = Ts[i][a]
                Hg = Ds[i][a]
                sub = mech == MECH_LEARNED  # learned: T - H phi(v); otherwise T is already net
                for j in range(u.shape[0]):
                    inp = src[j] + (bias[j] if b_on else 0.0) + (T[j] - Hg[j] if sub else T[j])
                    x, d = advance(u[j], inp, tau, dt, decay, euler)
                    maxd = max(maxd, abs(d))
                    bad |= not (abs(x) < blowup)
                    u[j] = x
            else:
                Y = y[a]
                bn = beta if nudge else 0.0
                for j in range(u.shape[0]):
                    inp = src[j] + (bias[j] if b_on else 0.0) + bn * (Y[j] - R[j])
                    x, d = advance(u[j], inp, tau, dt, decay, euler)
                    maxd = max(maxd, abs(d))
                    bad |= not (abs(x) < blowup)
                    u[j] = x
        # rates of the new state, for the next step's products
        if with_rates:
            row_rates(phi, mech, us, vs, rs, gs, Ds, a)
        row_max[a] = maxd
        row_bad[a] = bad


update_par = numba.njit(parallel=True, cache=True)(_update)
update_ser = numba.njit(cache=True)(_update)


@numba.njit(cache=True)
def integrate(phi, drive, Ws, bs, Bs, Gs, cs, Hs, us, vs, rs, gs, As, Ts, Ds, GAs, y,
              beta, nudge, clamp, hold, mech, method, dt, tau, tau_g,
              n_steps, use_tol, tol, blowup, row_max, row_bad, parallel):
    """Integrate up to ``n_steps`` steps in place; stop early when max |du/dt| < tol (use_tol).

    Returns ``(steps_taken, max_abs_derivative, status)``; status 1 means the potentials left
    ``[-blowup, blowup]`` or became non-finite at step ``steps_taken``.
    max |du/dt| covers pyramidal and ghost potentials and is measured before the last step.
    ``row_max`` (float64, batch) and ``row_bad`` (bool, batch) are scratch. ``phi`` is the
    transfer code (``TRANSFER_CODES``); ``parallel`` picks the threaded element-wise pass.
    """
    decay = math.exp(-dt / tau)
    decay_g = math.exp(-dt / tau_g)
    maxd = np.inf
    if parallel:
        rates_par(phi, mech, us, vs, rs, gs, Ds)
    else:
        rates_ser(phi, mech, us, vs, rs, gs, Ds)
    for step in range(n_steps):
        products(Ws, Bs, Gs, Hs, rs, gs, As, Ts, Ds, GAs, mech)
        if parallel:
            update_par(phi, drive, bs, cs, us, vs, rs, gs, As, Ts, Ds, GAs, y, beta, nudge, clamp,
                       hold, mech, method, dt, tau, tau_g, decay, decay_g, blowup, row_max, row_bad,
                       True)
        else:
            update_ser(phi, drive, bs, cs, us, vs, rs, gs, As, Ts, Ds, GAs, y, beta, nudge, clamp,
                       hold, mech, method, dt, tau, tau_g, decay, decay_g, blowup, row_max, row_bad,
                       True)
        maxd = row_max.max()
        if row_bad.any():
            return step + 1, maxd, STATUS_BLOWUP
        if use_tol and maxd < tol:
            return step + 1, maxd, STATUS_OK
    return n_steps, maxd, STATUS_OK
