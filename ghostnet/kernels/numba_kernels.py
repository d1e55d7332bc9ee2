"""Numba kernels: the vector field of docs/model.md §2 integrated over one phase, batched.

Pure array code: no configuration objects, no Python loop over neurons or samples. Each step is

1. the matrix products, by BLAS into preallocated buffers (``np.dot(a, b.T, out)``):
   ``A_i = r_{i-1} W_i^T`` (i >= 1; ``A_0`` is the drive ``W_1 x + b_1``, computed once per
   presentation), ``T_i = (r_{i+1} - phi(v_i)) B_i^T`` when ``H = B`` (copy, replicate: one product
   instead of two) or ``r_{i+1} B_i^T - phi(v_i) H_i^T`` (learned), and the learned ghosts' input
   ``G_i r_i``; a copy ghost's input ``W_{i+1} r_i + b_{i+1}`` is ``A_{i+1}``, not recomputed;
2. :func:`update`: u and v from the currents of the pre-step state, with the largest |du/dt|
   and the blow-up check; then :func:`rates`: ``phi(u)``, ``phi(v)`` and ``r_{i+1} - phi(v_i)``.

No array is allocated inside the step loop. The element-wise work runs over each layer's
batch x units array as one flat row, in the arrays' precision, in loops that LLVM vectorises
(AVX-512 here): the transfer functions come from :mod:`ghostnet.kernels.vmath` (numba's ``math.exp``
is scalar), the max |du/dt| and the blow-up check are integer maxima over bit patterns (float
max reductions do not vectorise), and ``error_model="numpy"`` drops the zero-division checks
that would stop the vectoriser. It is serial: waking Numba's threads (passive OpenMP waiting,
see ghostnet/__init__.py) costs more than the pass (100 x 500 float32: ~155 us with two threads
against ~27 us with one). Layer lists are ``numba.typed.List`` (or tuples) of C-contiguous 2-D
arrays (biases as 1 x n rows). Index ``i`` is layer ``l = i + 1``; hidden layer ``i`` has ghost
population ``i`` (n_{i+2} units).

The equations, in the kernels' names (docs/model.md §2):

    tau   du_i/dt = -u_i + A_i + b_i + T_i              (T_i = B_i r_{i+1} - H_i phi(v_i))
    tau   du_L/dt = -u_L + A_L + b_L + beta (y - r_L)   (cross-entropy: y - softmax(u_L))
    tau_g dv_i/dt = -v_i + G_i r_i + c_i                (copy: G_i r_i + c_i = A_{i+1} + b_{i+1})
    tau_g dv_i/dt = -v_i + u_{i+1}                      (replicate, free phase; held when nudged)

With a cross-entropy output the output layer's rate and the last ghost population's rate use the
transfer code ``phi_out`` (``IDENTITY``: ``r_L = u_L``, ``phi(v_{L-1}) = v_{L-1}``), the others
``phi``; the nudge then uses the softmax of the output's row (``softmax`` flag of :func:`update`).
"""
from __future__ import annotations

import math

import numba
import numpy as np

from ghostnet.kernels.vmath import bits, like, unbits, vexp, vlogistic, vrelu, vtanh

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


TRANSFER_CODES = {"logistic": 0, "tanh": 1, "softplus": 2, "relu": 3, "identity": 4}
IDENTITY = 4


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
    if code == 4:
        return x, 1.0
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


@numba.njit(cache=True)
def _softmax_residual(x, a, y, beta, p, f):
    """For one row: ``p = softmax(x)``, ``f = x - a - beta (y - p)``; returns ``|f|^2``."""
    n = x.shape[0]
    top = x[0]
    for j in range(1, n):
        top = max(top, x[j])
    z = 0.0
    for j in range(n):
        p[j] = math.exp(x[j] - top)
        z += p[j]
    norm2 = 0.0
    for j in range(n):
        p[j] /= z
        f[j] = x[j] - float(a[j]) - beta * (float(y[j]) - p[j])
        norm2 += f[j] * f[j]
    return norm2


@numba.njit(cache=True)
def solve_output_softmax(a, u, y, beta, eps, max_iter):
    """The cross-entropy output's fixed-point equation ``u = a + beta (y - softmax(u))``, one
    vector equation per row, by Newton's method from ``u`` (in place; 2-D arrays of one shape,
    any strides; computed in float64). The Jacobian ``J = I + beta (diag(p) - p p^T)`` is
    symmetric with eigenvalues in [1, 1 + beta / 2], so each Newton step is well posed for any
    beta >= 0; it is solved in O(n) by Sherman-Morrison (``J = D - beta p p^T``,
    ``D = diag(1 + beta p)``, ``1 - beta p^T D^-1 p > 1 - sum p = 0``). ``f = u - a - beta (y -
    softmax(u))`` is the gradient of the strictly convex ``|u - a - beta y|^2 / 2 + beta
    logsumexp(u)``, so the equation has one solution; the step is halved until ``|f|^2``
    decreases (the Newton direction descends it), which makes the iteration converge from any
    start. A row stops when its full Newton step is at most ``eps (1 + max|u|)``."""
    nb, n = u.shape
    x = np.empty(n)
    xn = np.empty(n)
    p = np.empty(n)
    f = np.empty(n)
    d = np.empty(n)
    for i in range(nb):
        for j in range(n):
            x[j] = float(u[i, j])
        norm2 = _softmax_residual(x, a[i], y[i], beta, p, f)
        for _ in range(max_iter):
            pw = 0.0
            pq = 0.0
            for j in range(n):
                dj = 1.0 + beta * p[j]
                pw += p[j] * f[j] / dj
                pq += p[j] * p[j] / dj
            c = beta * pw / (1.0 - beta * pq)
            big = 0.0
            size = 0.0
            for j in range(n):
                d[j] = (f[j] + c * p[j]) / (1.0 + beta * p[j])
                big = max(big, abs(d[j]))
                size = max(size, abs(x[j]))
            if big <= eps * (1.0 + size):
                for j in range(n):
                    x[j] -= d[j]
                break
            step = 1.0
            while True:
                for j in range(n):
                    xn[j] = x[j] - step * d[j]
                new2 = _softmax_residual(xn, a[i], y[i], beta, p, f)
                if new2 <= (1.0 - 1e-4 * step) * norm2 or step < 1e-12:
                    break
                step *= 0.5
            for j in range(n):
                x[j] = xn[j]
            norm2 = new2
        for j in range(n):
            u[i, j] = x[j]


@numba.njit(cache=True, error_model="numpy")
def phi_row(code, src, dst):
    """``dst[j] = phi(src[j])`` for a row; one branch per row, so each loop is branch-free and
    (logistic, tanh, ReLU) vectorised through :mod:`ghostnet.kernels.vmath`. Softplus stays scalar
    (``log1p``). (A compiled function passed as an argument would also specialise, but its type is
    not stable across processes, which defeats Numba's on-disk cache.)"""
    n = src.shape[0]
    if code == 0:
        for j in range(n):
            dst[j] = vlogistic(src[j])
    elif code == 1:
        for j in range(n):
            dst[j] = vtanh(src[j])
    elif code == 2:
        for j in range(n):
            dst[j] = softplus(src[j])
    elif code == 4:
        for j in range(n):
            dst[j] = src[j]
    else:
        for j in range(n):
            dst[j] = vrelu(src[j])


@numba.njit(cache=True, error_model="numpy")
def phi_array(code, x, out):
    """``out = phi(x)`` for a C-contiguous 2-D array, row by row (serial: no Numba kernel starts a
    thread pool, so none competes with BLAS's or torch's threads for the cores)."""
    for a in range(x.shape[0]):
        phi_row(code, x[a], out[a])


@numba.njit(cache=True, error_model="numpy")
def rates(phi, phi_out, mech, us, vs, rs, gs, Ds):
    """Rates of the whole batch in place: ``rs = phi(us)``, ``gs = phi(vs)`` and, when H = B,
    ``Ds = rs[i+1] - gs[i]``; each over a layer's array as one flat row (C-contiguous), so that
    narrow layers (10 output units) run vectorised too instead of a short loop per sample. The
    output layer and the last ghost population (its partners) use the code ``phi_out``."""
    L = len(us)
    for i in range(L):
        phi_row(phi_out if i == L - 1 else phi, us[i].ravel(), rs[i].ravel())
    for i in range(L - 1):
        g = gs[i].ravel()
        phi_row(phi_out if i == L - 2 else phi, vs[i].ravel(), g)
        if mech != MECH_LEARNED:
            d, r = Ds[i].ravel(), rs[i + 1].ravel()
            for j in range(d.shape[0]):
                d[j] = r[j] - g[j]


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


@numba.njit(cache=True, error_model="numpy")
def _step(x, inp, c, euler, m, mx, j):
    """Element ``j`` of :func:`advance`."""
    t = inp - x[j]
    z = x[j] + t * c if euler else inp - t * c
    x[j] = z
    return max(m, bits(abs(t))), max(mx, bits(abs(z)))


@numba.njit(cache=True, error_model="numpy")
def advance(x, p, q, c, euler, with_q):
    """One step of ``tau dx/dt = -x + inp`` in place (1-D arrays), ``inp = p + q`` (``with_q``) or
    ``p``: forward Euler (``c = dt / tau``: ``x + c (inp - x)``) or exponential Euler
    (``c = exp(-dt / tau)``: ``inp - c (inp - x)``, exact for a constant input). Returns the bit
    patterns (:func:`ghostnet.kernels.vmath.bits`) of max |inp - x| before the step and of max |x| after
    it, as integer maxima so that the loop vectorises; a NaN or inf shows as a pattern above
    inf's. (Four loops so that each is branch-free.)"""
    m = bits(x[0]) ^ bits(x[0])  # zero of the pattern's integer type (a literal 0 would widen it)
    mx = m
    n = x.shape[0]
    if euler:
        if with_q:
            for j in range(n):
                m, mx = _step(x, p[j] + q[j], c, True, m, mx, j)
        else:
            for j in range(n):
                m, mx = _step(x, p[j], c, True, m, mx, j)
    else:
        if with_q:
            for j in range(n):
                m, mx = _step(x, p[j] + q[j], c, False, m, mx, j)
        else:
            for j in range(n):
                m, mx = _step(x, p[j], c, False, m, mx, j)
    return m, mx


@numba.njit(cache=True, error_model="numpy")
def add_rows(out, S, bias):
    """``out = S + bias`` for batch x n arrays and an n-vector (the bias added to every row)."""
    for a in range(S.shape[0]):
        for j in range(S.shape[1]):
            out[a, j] = S[a, j] + bias[j]


@numba.njit(cache=True, error_model="numpy")
def update(drive, bs, cs, us, vs, rs, As, Ts, Ds, GAs, y, beta, nudge, clamp, softmax, hold, mech,
           method, dt, tau, tau_g, blowup, buf):
    """One step of u and v for the whole batch from the pre-step currents (the caller then
    computes the new rates with :func:`rates`). Per population the input of docs/model.md §2 goes
    into ``buf`` (1-D, batch x the widest layer, the arrays' dtype), then :func:`advance` steps
    the potentials as one flat row; all in the arrays' precision (float32 stays float32) and in
    loops that LLVM vectorises. Ghosts first: replicate reads its partner's pre-step potential.
    ``softmax``: the nudge is ``beta (y - softmax(r_L))`` row by row (a cross-entropy output,
    whose rate ``r_L`` is its potential), computed from the row's maximum so no exp overflows.
    Returns ``(max |du/dt|, |dv/dt|, whether a potential left (-blowup, blowup) or is not
    finite)``."""
    L = len(us)
    euler = method == METHOD_EULER
    one = us[0][0, 0]  # the arrays' float type, for the constants below
    c_u = like(dt / tau if euler else math.exp(-dt / tau), one)
    c_g = like(dt / tau_g if euler else math.exp(-dt / tau_g), one)
    bn = like(beta if nudge else 0.0, one)
    limit = bits(like(blowup, one))
    m_g = limit ^ limit  # zero, of the pattern's integer type
    m_u = m_g
    mx = m_g
    if not hold:
        for i in range(L - 1):
            V = vs[i]
            nb, n = V.shape
            if mech == MECH_REPLICATE:  # the partner's potential, no bias
                m, x = advance(V.ravel(), us[i + 1].ravel(), buf, c_g, euler, False)
            else:
                S, bias = (As[i + 1], bs[i + 1][0]) if mech == MECH_COPY else (GAs[i], cs[i][0])
                add_rows(buf[:nb * n].reshape((nb, n)), S, bias)
                m, x = advance(V.ravel(), buf[:nb * n], buf, c_g, euler, False)
            m_g = max(m_g, m)
            mx = max(mx, x)
    for i in range(L):
        last = i == L - 1
        if last and clamp:
            continue
        U = us[i]
        nb, n = U.shape
        flat = buf[:nb * n]
        inp = flat.reshape((nb, n))
        if i > 0:
            add_rows(inp, As[i], bs[i][0])
        elif last or mech == MECH_LEARNED:  # the drive already holds b_1
            d = drive.ravel()
            for k in range(nb * n):
                flat[k] = d[k]
        if last:
            r = rs[i]
            if softmax:
                if nudge:  # beta (y - softmax(r)), in the arrays' precision (vexp vectorises)
                    for a in range(nb):
                        top = r[a, 0]
                        for j in range(1, n):
                            top = max(top, r[a, j])
                        z = one - one
                        for j in range(n):
                            z += vexp(r[a, j] - top)
                        k = bn / z
                        for j in range(n):
                            inp[a, j] += bn * y[a, j] - k * vexp(r[a, j] - top)
            else:
                for a in range(nb):
                    for j in range(n):
                        inp[a, j] += bn * (y[a, j] - r[a, j])
            m, x = advance(U.ravel(), flat, flat, c_u, euler, False)
        elif mech == MECH_LEARNED:  # T - H phi(v) (Ds holds H phi(v))
            T, Hg = Ts[i], Ds[i]
            for a in range(nb):
                for j in range(n):
                    inp[a, j] += T[a, j] - Hg[a, j]
            m, x = advance(U.ravel(), flat, flat, c_u, euler, False)
        else:  # the drive (layer 1) or A + b, plus T, summed in the step's loop
            first = drive.ravel() if i == 0 else flat
            m, x = advance(U.ravel(), first, Ts[i].ravel(), c_u, euler, True)
        m_u = max(m_u, m)
        mx = max(mx, x)
    maxd = max(float(unbits(m_u, one)) / tau, float(unbits(m_g, one)) / tau_g)
    return maxd, mx >= limit


@numba.njit(cache=True)
def integrate(phi, phi_out, drive, Ws, bs, Bs, Gs, cs, Hs, us, vs, rs, gs, As, Ts, Ds, GAs, y,
              beta, nudge, clamp, softmax, hold, mech, method, dt, tau, tau_g,
              n_steps, use_tol, tol, blowup, buf):
    """Integrate up to ``n_steps`` steps in place; stop early when max |du/dt| < tol (use_tol).

    Returns ``(steps_taken, max_abs_derivative, status)``; status 1 means the potentials left
    ``[-blowup, blowup]`` or became non-finite at step ``steps_taken``.
    max |du/dt| covers pyramidal and ghost potentials and is measured before the last step.
    ``buf`` (1-D, batch x widest layer, the arrays' dtype) is scratch. ``phi`` is the transfer
    code (``TRANSFER_CODES``), ``phi_out`` the output layer's and its ghosts' (``IDENTITY`` for
    a cross-entropy output, with ``softmax`` on; ``phi`` otherwise).
    """
    maxd = np.inf
    rates(phi, phi_out, mech, us, vs, rs, gs, Ds)
    for step in range(n_steps):
        products(Ws, Bs, Gs, Hs, rs, gs, As, Ts, Ds, GAs, mech)
        maxd, bad = update(drive, bs, cs, us, vs, rs, As, Ts, Ds, GAs, y, beta, nudge, clamp,
                           softmax, hold, mech, method, dt, tau, tau_g, blowup, buf)
        rates(phi, phi_out, mech, us, vs, rs, gs, Ds)
        if bad:
            return step + 1, maxd, STATUS_BLOWUP
        if use_tol and maxd < tol:
            return step + 1, maxd, STATUS_OK
    return n_steps, maxd, STATUS_OK
