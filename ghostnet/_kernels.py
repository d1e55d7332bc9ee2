"""Numba kernels: the vector field of MODEL.md §2 integrated over one phase, batched.

Pure array code: no configuration objects, no Python loop over neurons or samples. The matrix
products go to BLAS through ``np.dot(a, b.T, out)`` into preallocated buffers; everything
element-wise (rates, sums, the update, the settling and blow-up checks) is fused into one pass per
layer. Layer lists are ``numba.typed.List`` of C-contiguous 2-D arrays (biases as 1 x n rows).

Index ``i`` is layer ``l = i + 1``; hidden layer ``i`` has ghost population ``i`` (n_{i+2} units).

The equations, in the kernels' names (MODEL.md §2):

    tau   du_i/dt = -u_i + A_i + T_i                    A_i = W_i r_{i-1} + b_i (A_0 = drive)
    tau   du_L/dt = -u_L + A_L + beta (y - r_L)         T_i = B_i r_{i+1} - H_i phi(v_i)
    tau_g dv_i/dt = -v_i + G_i r_i + c_i                (copy: G_i r_i + c_i is A_{i+1})
    tau_g dv_i/dt = -v_i + u_{i+1}                      (replicate, free phase; held when nudged)
"""
from __future__ import annotations

import math

import numba
import numpy as np

from ghostnet.transfer import phi_scalar

MECH_COPY, MECH_LEARNED, MECH_REPLICATE = 0, 1, 2
METHOD_EULER, METHOD_EXPEULER = 0, 1
STATUS_OK, STATUS_BLOWUP = 0, 1


@numba.njit(cache=True)
def _rates(u, r, code):
    n0, n1 = u.shape
    for a in range(n0):
        for j in range(n1):
            r[a, j] = phi_scalar(u[a, j], code)


@numba.njit(cache=True)
def compute_currents(drive, Ws, bs, Bs, Gs, cs, Hs, us, vs, rs, gs, As, Ts, Ds, GAs, mech, code):
    """Rates, bottom-up drives A, top-down inputs T and ghost drives GA at the current state.

    ``As[i]`` holds ``W_i r_{i-1}`` without the bias (``As[0]`` is unused: ``drive`` holds
    ``W_1 x + b_1``). ``GAs[i]`` holds the ghost drive ``G_i r_i`` (learned only; copy reuses
    ``As[i+1]``). ``Ds`` is scratch for ``r_{i+1} - phi(v_i)`` (copy and replicate, where H = B).
    """
    L = len(us)
    for i in range(L):
        _rates(us[i], rs[i], code)
    for i in range(L - 1):
        _rates(vs[i], gs[i], code)
    for i in range(1, L):
        np.dot(rs[i - 1], Ws[i].T, As[i])
    for i in range(L - 1):
        if mech == MECH_LEARNED:
            np.dot(rs[i + 1], Bs[i].T, Ts[i])
            np.dot(gs[i], Hs[i].T, Ds[i])
            T = Ts[i]
            D = Ds[i]
            n0, n1 = T.shape
            for a in range(n0):
                for j in range(n1):
                    T[a, j] -= D[a, j]
            np.dot(rs[i], Gs[i].T, GAs[i])
        else:
            # H = B: one product B (r - phi(v)) instead of two; exactly zero when v_i equals u_{i+1}
            R = rs[i + 1]
            g = gs[i]
            E = GAs[i]  # scratch of shape (batch, n_{i+2})
            n0, n1 = R.shape
            for a in range(n0):
                for j in range(n1):
                    E[a, j] = R[a, j] - g[a, j]
            np.dot(E, Bs[i].T, Ts[i])


@numba.njit(cache=True)
def integrate(drive, Ws, bs, Bs, Gs, cs, Hs, us, vs, rs, gs, As, Ts, Ds, GAs, y,
              beta, nudge, clamp, hold, mech, code, method, dt, tau, tau_g,
              n_steps, use_tol, tol, blowup):
    """Integrate up to ``n_steps`` steps in place; stop early when max |du/dt| < tol (use_tol).

    Returns ``(steps_taken, max_abs_derivative, status)``; status 1 means the potentials left
    ``[-blowup, blowup]`` or became non-finite at step ``steps_taken``.
    max |du/dt| covers pyramidal and ghost potentials and is measured before the last step.
    """
    L = len(us)
    decay = math.exp(-dt / tau)
    decay_g = math.exp(-dt / tau_g)
    maxd = np.inf
    for step in range(n_steps):
        compute_currents(drive, Ws, bs, Bs, Gs, cs, Hs, us, vs, rs, gs, As, Ts, Ds, GAs, mech, code)
        maxd = 0.0
        bad = False
        if not hold:
            for i in range(L - 1):
                v = vs[i]
                n0, n1 = v.shape
                if mech == MECH_COPY:
                    A = As[i + 1]
                    bb = bs[i + 1]
                elif mech == MECH_LEARNED:
                    A = GAs[i]
                    bb = cs[i]
                else:
                    A = us[i + 1]  # replicate: track the partner (ghosts update first: pre-step u)
                    bb = cs[i]
                for a in range(n0):
                    for j in range(n1):
                        if mech == MECH_REPLICATE:
                            inp = A[a, j]
                        else:
                            inp = A[a, j] + bb[0, j]
                        d = (inp - v[a, j]) / tau_g
                        if abs(d) > maxd:
                            maxd = abs(d)
                        if method == METHOD_EULER:
                            x = v[a, j] + dt * d
                        else:
                            x = inp + (v[a, j] - inp) * decay_g
                        if not (abs(x) < blowup):
                            bad = True
                        v[a, j] = x
        for i in range(L):
            if clamp and nudge and i == L - 1:
                continue
            u = us[i]
            A = As[i]
            bb = bs[i]
            T = Ts[i] if i < L - 1 else Ts[0]
            R = rs[i]
            top = i < L - 1
            out = (i == L - 1) and nudge
            n0, n1 = u.shape
            for a in range(n0):
                for j in range(n1):
                    if i == 0:
                        inp = drive[a, j]
                    else:
                        inp = A[a, j] + bb[0, j]
                    if top:
                        inp += T[a, j]
                    if out:
                        inp += beta * (y[a, j] - R[a, j])
                    d = (inp - u[a, j]) / tau
                    if abs(d) > maxd:
                        maxd = abs(d)
                    if method == METHOD_EULER:
                        x = u[a, j] + dt * d
                    else:
                        x = inp + (u[a, j] - inp) * decay
                    if not (abs(x) < blowup):
                        bad = True
                    u[a, j] = x
        if bad:
            return step + 1, maxd, STATUS_BLOWUP
        if use_tol and maxd < tol:
            return step + 1, maxd, STATUS_OK
    return n_steps, maxd, STATUS_OK
