"""Integration of the network dynamics (MODEL.md §2) over one phase, batched (batch x units).

What is integrated (the vector field) lives in :mod:`ghostnet._kernels`; this module decides how
(method, step, settling rule), checks for blow-up and records trajectories when asked.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import typed

from ghostnet import _kernels as K
from ghostnet.config import ModelConfig
from ghostnet.linalg import affine, dot_into
from ghostnet.params import Params
from ghostnet.transfer import phi, phi_into

PARALLEL_MIN_ELEMENTS = 20000
"""Below this many element updates per step the fused kernel runs single-threaded."""

NUMPY_MIN_ELEMENTS = 1000
"""From this many element updates per step (batch x units) a phase steps in numpy (products by
BLAS, update and rates by numpy's vectorised loops, a Python loop over the steps) instead of the
fused Numba kernel. 50 steps, float32 (stop 11): 784-500-500-10 at batch 4 26 -> 7 ms, at batch 16
35 -> 10 ms; 784-100-10 at batch 16 2.35 -> 1.75 ms; 100-50-10 at batch 64 3.9 -> 1.9 ms; below
it the kernel is ahead by ~8% (20-30-25-15-5 at batch 4: 3.3 against 3.4 ms)."""

BLOWUP = 1e6
"""A potential beyond this (or non-finite) is a numerical blow-up."""

MECH_CODES = {"copy": K.MECH_COPY, "learned": K.MECH_LEARNED, "replicate": K.MECH_REPLICATE}
METHOD_CODES = {"euler": K.METHOD_EULER, "expeuler": K.METHOD_EXPEULER}


class BlowUpError(FloatingPointError):
    """The potentials became non-finite or exploded; the message names dt and its bound."""


@dataclass
class State:
    """Potentials of one batch: ``u[i]`` (batch x n_{i+1}), ghosts ``v[i]`` (batch x n_{i+2})."""

    u: list[np.ndarray]
    v: list[np.ndarray]

    @classmethod
    def zeros(cls, config: ModelConfig, batch: int) -> "State":
        dt = np.dtype(config.dtype)
        n = config.sizes
        L = len(n) - 1
        return cls(
            [np.zeros((batch, n[i + 1]), dt) for i in range(L)],
            [np.zeros((batch, n[i + 2]), dt) for i in range(L - 1)],
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


class Currents:
    """Quantities derived from a state: rates ``r``, top-down inputs ``t``, local errors ``e`` and
    ghost rates ``ghost_rate`` (lists over layers, batch x units); the bottom-up drives ``a`` and
    the ghost inhibition ``inhibition`` (``H_l phi(v_l)``) are computed on first access, since the
    learning rule needs neither (they cost a matrix product per layer)."""

    def __init__(self, r, t, e, ghost_rate, params, drive, x):
        self.r, self.t, self.e, self.ghost_rate = r, t, e, ghost_rate
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


class Workspace:
    """Preallocated buffers for one (sizes, batch, dtype); reused across phases."""

    def __init__(self, config: ModelConfig, batch: int):
        dt = np.dtype(config.dtype)
        n = config.sizes
        L = len(n) - 1
        self.batch = batch
        self.mechanism = config.mechanism
        self.L = L
        hidden = max(L - 1, 0)

        def tl(arrays, shape=(1, 1)):
            lst = typed.List()
            for a in arrays:
                lst.append(a)
            if len(arrays) == 0:  # typed lists need one element to know their type
                lst.append(np.zeros(shape, dt))
            return lst

        self.r_list = [np.zeros((batch, n[i + 1]), dt) for i in range(L)]
        self.rs = tl(self.r_list)
        self.As = tl([np.zeros((batch, n[i + 1]), dt) for i in range(L)])
        self.g_list = [np.zeros((batch, n[i + 2]), dt) for i in range(hidden)]
        self.gs = tl(self.g_list)
        self.Ts = tl([np.zeros((batch, n[i + 1]), dt) for i in range(hidden)])
        # Ds: H phi(v) (batch x n_{i+1}) for learned ghosts; r_{i+1} - phi(v_i) (batch x n_{i+2})
        # when H = B (copy, replicate)
        width = (lambda i: n[i + 1]) if config.mechanism == "learned" else (lambda i: n[i + 2])
        self.D_list = [np.zeros((batch, width(i)), dt) for i in range(hidden)]
        self.Ds = tl(self.D_list)
        self.GAs = tl([np.zeros((batch, n[i + 2]), dt) for i in range(hidden)])
        self.row_max = np.zeros(batch)
        self.row_bad = np.zeros(batch, dtype=np.bool_)
        # the fused kernel's threads pay off from a few tens of thousands of element updates per
        # step; stepping in numpy from a thousand (NUMPY_MIN_ELEMENTS)
        self.parallel = batch >= 8 and batch * sum(n[1:]) >= PARALLEL_MIN_ELEMENTS
        self.numpy_rates = batch * sum(n[1:]) >= NUMPY_MIN_ELEMENTS
        self._tl = tl
        self._scratch: dict[tuple, tuple] = {}
        self._dtype = dt

    def scratch(self, shape: tuple) -> tuple:
        """Three reusable buffers of ``shape`` (the numpy update's temporaries)."""
        if shape not in self._scratch:
            self._scratch[shape] = tuple(np.empty(shape, self._dtype) for _ in range(3))
        return self._scratch[shape]


def _update_numpy(drive, b, c, u, v, r, A, T, D, GA, y, beta, nudge, clamp, hold, mech, euler,
                  dt, tau, tau_g, decay, decay_g, blowup, scratch):
    """One step of MODEL.md §2 for the whole batch in place, with numpy's vectorised loops: the
    arithmetic of :func:`ghostnet._kernels._update` (same order of operations; the kernel
    promotes some float32 terms to float64, this stays in the arrays' dtype), from the pre-step
    currents (``A``, ``T``, ``D``, ``GA`` and the rates ``r``). Ghosts first (replicate reads its
    partner's pre-step potential). ``scratch(shape)`` gives three reusable buffers of a shape.
    Returns ``(max |dx/dt| over u and v, whether a potential left [-blowup, blowup] or is not
    finite)``."""
    maxd = 0.0
    bad = False

    def advance(x, inp, tau_, decay_, tmp):  # x <- one step of tau dx/dt = -x + inp
        nonlocal maxd, bad
        np.subtract(inp, x, out=tmp)  # tau dx/dt
        m = max(float(tmp.max()), -float(tmp.min())) / tau_  # two reads, no |.| written
        if euler:
            tmp *= dt / tau_
            x += tmp
        else:  # exponential Euler: inp + (x - inp) decay
            tmp *= decay_
            np.subtract(inp, tmp, out=x)
        maxd = max(maxd, m)
        # a NaN makes both comparisons false: not finite counts as blown up
        bad |= not (float(x.max()) < blowup and float(x.min()) > -blowup)

    L = len(u)
    if not hold:
        for i in range(L - 1):
            inp, tmp, _ = scratch(v[i].shape)
            if mech == K.MECH_COPY:
                np.add(A[i + 1], b[i + 1], out=inp)
            elif mech == K.MECH_LEARNED:
                np.add(GA[i], c[i], out=inp)
            else:  # replicate: the partner's potential, no bias
                np.copyto(inp, u[i + 1])
            advance(v[i], inp, tau_g, decay_g, tmp)
    for i in range(L):
        last = i == L - 1
        if last and clamp:
            continue
        inp, tmp, net = scratch(u[i].shape)
        if i == 0 and not last and mech != K.MECH_LEARNED:
            np.add(drive, T[0], out=inp)  # one pass: the drive holds b_1
        else:
            if i:
                np.add(A[i], b[i], out=inp)
            else:
                np.copyto(inp, drive)
            if last:
                if nudge:
                    np.subtract(y, r[i], out=net)
                    net *= beta
                    inp += net
            elif mech == K.MECH_LEARNED:  # T - H phi(v) (D holds H phi(v))
                np.subtract(T[i], D[i], out=net)
                inp += net
            else:
                inp += T[i]
        advance(u[i], inp, tau, decay, tmp)
    return maxd, bad


def _refresh_copies(typed_lists, params: Params) -> None:
    """After an in-place weight change: bring the kernels' own copies of parameters that are not
    C-contiguous arrays (B as the transposed view of W, symmetric feedback) up to date. The
    typed lists are W, b, B, G, c, H as :func:`_typed` made them."""
    for lst, arrays in zip(typed_lists, (params.W, params.b, params.B, params.G, params.c,
                                         params.H)):
        for i, a in enumerate(arrays):
            dst = lst[i]
            if not np.may_share_memory(dst, a):
                dst[...] = a.reshape(dst.shape)


def _typed(arrays, dtype, tl, rows=False):
    if rows:
        arrays = [a.reshape(1, -1) for a in arrays]
    return tl([np.ascontiguousarray(a, dtype=dtype) for a in arrays])


class Integrator:
    """Integrates phases of one network configuration; holds the workspace between calls."""

    def __init__(self, config: ModelConfig):
        self.config = config
        self._ws: Workspace | None = None

    def workspace(self, batch: int) -> Workspace:
        if self._ws is None or self._ws.batch != batch or self._ws.mechanism != self.config.mechanism:
            self._ws = Workspace(self.config, batch)
        return self._ws

    def drive(self, params: Params, x: np.ndarray) -> np.ndarray:
        """Input drive ``W_1 x + b_1`` (batch x n_1), computed once per presentation."""
        return affine(np.asarray(x), params.W[0], params.b[0])  # C-contiguous

    def run(
        self,
        params: Params,
        state: State,
        drive: np.ndarray,
        y: np.ndarray | None = None,
        beta: float = 0.0,
        hold_ghosts: bool = False,
        n_steps: int | None = None,
        record: Recording | None = None,
        on_step=None,
        x: np.ndarray | None = None,
    ) -> PhaseResult:
        """Integrate one phase in place on ``state``.

        ``y`` (batch x n_L) is the target and ``beta`` its strength; ``y=None`` is a free phase.
        ``n_steps`` overrides the settling rule with a fixed number of steps. ``on_step(state)`` is
        called after every step (for the continuous plasticity); it forces a step-by-step loop, and
        with the input ``x`` given the drive is recomputed after it, since W_1 may have changed.
        """
        cfg = self.config
        ws = self.workspace(state.batch)
        dtype = np.dtype(cfg.dtype)
        tl = ws._tl
        Ws = _typed(params.W, dtype, tl)
        bs = _typed(params.b, dtype, tl, rows=True)
        Bs = _typed(params.B, dtype, tl)
        Gs = _typed(params.G, dtype, tl)
        cs = _typed(params.c, dtype, tl, rows=True)
        Hs = _typed(params.H, dtype, tl)
        us = tl(state.u)
        vs = tl(state.v)
        nudge = y is not None
        clamp = nudge and cfg.output == "clamp"
        if nudge:
            y = np.ascontiguousarray(y, dtype=dtype)
            if clamp:
                from ghostnet.transfer import phi_inv

                state.u[-1][...] = phi_inv(y, cfg.transfer)
        else:
            y = ws.rs[-1]  # unused placeholder of the right type
        if fixed := (n_steps is not None or cfg.settle == "fixed"):
            total = cfg.steps if n_steps is None else n_steps
        else:
            total = cfg.max_steps
        use_tol = not fixed
        chunk = total
        if record is not None:
            chunk = record.stride
            traj = {k: [] for k in record.what}
            traj["step"] = []
            self._record(params, state, y if nudge else None, beta, traj, 0)
        if on_step is not None:
            chunk = 1
        drive = np.array(drive, dtype=dtype, order="C")
        args = (
            drive, Ws, bs, Bs, Gs, cs, Hs, us, vs,
            ws.rs, ws.gs, ws.As, ws.Ts, ws.Ds, ws.GAs, y,
        )
        done = 0
        maxd = np.inf
        converged = False
        # BLAS and Numba's element-wise pass take turns on the cores; with Numba's OpenMP pool
        # waiting passively (OMP_WAIT_POLICY: see ghostnet/__init__.py) BLAS on all threads is
        # fastest (784-500-500-10, 50 steps, float32: 57 ms, against 73 ms with BLAS held to one
        # thread, stop 9).
        done, maxd, converged = self._loop(args, cfg, ws, params, state, drive, x, beta, nudge,
                                           clamp, hold_ghosts, total, chunk, use_tol,
                                           record, traj if record is not None else None, y, on_step)
        if not use_tol:
            converged = bool(maxd < cfg.tol)
        trajectory = None
        if record is not None:
            trajectory = {k: _stack(v) for k, v in traj.items()}
        return PhaseResult(done, converged, float(maxd), done * cfg.dt, trajectory)

    def _loop(self, args, cfg, ws, params, state, drive, x, beta, nudge, clamp, hold_ghosts, total,
              chunk, use_tol, record, traj, y, on_step):
        done = 0
        maxd = np.inf
        converged = False
        while done < total:
            n = min(chunk, total - done)
            integrate = self._integrate_numpy_rates if ws.numpy_rates else K.integrate
            steps, maxd, status = integrate(
                K.TRANSFER_CODES[cfg.transfer], *args, float(beta), nudge, clamp, hold_ghosts,
                MECH_CODES[cfg.mechanism], METHOD_CODES[cfg.method], float(cfg.dt),
                float(cfg.tau), float(cfg.tau_g), n, use_tol, float(cfg.tol), BLOWUP,
                ws.row_max, ws.row_bad, ws.parallel,
            )
            done += steps
            if status == K.STATUS_BLOWUP:
                raise BlowUpError(
                    f"numerical blow-up at step {done} (t = {done * cfg.dt:g}): potentials left "
                    f"[-{BLOWUP:g}, {BLOWUP:g}] or became non-finite with dt = {cfg.dt} "
                    f"({cfg.method}); the stability bound for the leak and nudging terms is "
                    f"dt < {cfg.stability_bound():.4g}, and the recurrent coupling may need a "
                    f"smaller step still. Reduce dt or beta"
                    + (", or use method = 'expeuler'." if cfg.method == "euler" else
                       "; with learned or replicate ghosts the loop through the ghosts may itself "
                       "be unstable (pre-train learned ghosts first).")
                )
            if on_step is not None:
                if steps > 0:
                    on_step(state)  # may change weights in place: the typed lists alias them,
                    _refresh_copies(args[1:7], params)  # except copies of views (B = W^T)
                    if x is not None:
                        drive[...] = self.drive(params, x)
            if record is not None and (done % record.stride == 0 or steps < n or done >= total):
                self._record(params, state, y if nudge else None, beta, traj, done)
            if use_tol and maxd < cfg.tol:
                converged = True
                break
        return done, maxd, converged

    def _integrate_numpy_rates(self, phi, drive, Ws, bs, Bs, Gs, cs, Hs, us, vs, rs, gs, As, Ts,
                               Ds, GAs, y, beta, nudge, clamp, hold, mech, method, dt, tau, tau_g,
                               n_steps, use_tol, tol, blowup, row_max, row_bad, parallel):
        """:func:`ghostnet._kernels.integrate` step for step in numpy: the products by BLAS into
        the workspace, the update of u and v by :func:`_update_numpy` and the rates by numpy's
        SIMD functions, instead of the Numba kernels' scalar loops (784-500-10 at batch 100: the
        update 148 us a step in the kernel, parallel or not, ~35 us in numpy; the rates 5x
        faster than scalar ``exp``; the loop over steps costs ~20 us a step)."""
        ws = self._ws
        name = self.config.transfer
        hidden = len(ws.g_list)
        items = lambda lst, n: [lst[i] for i in range(n)]  # the same arrays, as Python lists
        L = len(us)
        u_list, v_list = items(us, L), items(vs, hidden)
        W, B, G, H = items(Ws, L), items(Bs, hidden), items(Gs, hidden), items(Hs, hidden)
        A, T, D, GA = items(As, L), items(Ts, hidden), ws.D_list, items(GAs, hidden)
        r, g = ws.r_list, ws.g_list
        decay, decay_g = math.exp(-dt / tau), math.exp(-dt / tau_g)
        bias = [bs[i][0] for i in range(L)]
        cbias = [cs[i][0] for i in range(hidden)]
        euler = method == K.METHOD_EULER
        scratch = ws.scratch

        def buf(shape):  # a scratch buffer, free while the products run
            return scratch(shape)[0]

        def products():  # as K.products, in the faster orientation (ghostnet.linalg)
            for i in range(1, L):
                dot_into(r[i - 1], W[i], A[i], buf)
            for i in range(hidden):
                if mech == K.MECH_LEARNED:
                    dot_into(r[i + 1], B[i], T[i], buf)
                    dot_into(g[i], H[i], D[i], buf)
                    dot_into(r[i], G[i], GA[i], buf)
                else:
                    dot_into(D[i], B[i], T[i], buf)

        def rates():
            for src, dst in zip(u_list + v_list, r + g):
                phi_into(src, dst, name)
            if mech != K.MECH_LEARNED:
                for i in range(hidden):
                    np.subtract(r[i + 1], g[i], out=D[i])

        rates()
        maxd = np.inf
        for step in range(n_steps):
            products()
            maxd, bad = _update_numpy(drive, bias, cbias, u_list, v_list, r, A, T, D, GA, y, beta,
                                      nudge, clamp, hold, mech, euler, dt, tau, tau_g, decay,
                                      decay_g, blowup, scratch)
            if bad:
                return step + 1, maxd, K.STATUS_BLOWUP
            rates()
            if use_tol and maxd < tol:
                return step + 1, maxd, K.STATUS_OK
        return n_steps, maxd, K.STATUS_OK

    def _record(self, params, state, y, beta, traj, step):
        cur = currents(self.config, params, state, y, beta)
        for k in traj:
            if k == "step":
                traj[k].append(step)
            elif k in ("u", "v"):
                traj[k].append([a.copy() for a in getattr(state, k)])
            else:
                traj[k].append([a.copy() for a in getattr(cur, k)])


def _stack(items):
    if not items:
        return items
    if isinstance(items[0], list):
        return [np.stack([it[i] for it in items]) for i in range(len(items[0]))]
    return np.asarray(items)


def currents(
    config: ModelConfig, params: Params, state: State, y: np.ndarray | None = None,
    beta: float = 0.0, x: np.ndarray | None = None, drive: np.ndarray | None = None,
    t: list[np.ndarray] | None = None, r: list[np.ndarray] | None = None,
    g: list[np.ndarray] | None = None, e: list[np.ndarray] | None = None,
) -> Currents:
    """Rates, top-down inputs and local errors of a state, in numpy (MODEL.md §1-§4).

    ``t[i]`` is the net top-down input of layer i+1 (``B r - H phi(v)``; one product
    ``(r - phi(v)) B^T`` when H = B, as for copy and replicate); for the output layer it is the
    nudging input ``beta (y - r_L)`` (zero without target; for a clamped output, ``u_L - a_L``).
    ``e[i] = phi(u) - phi(u - t)``: local, from the potential and the top-down input only
    (MODEL.md §4). ``drive`` (``W_1 x + b_1``) or ``x`` serve the lazily computed ``a[0]``.
    ``t``, ``r``, ``g``: the top-down inputs (output: nudging input), the rates and the ghosts'
    rates if already known, as the equilibrium solver leaves them at its fixed point
    (:func:`ghostnet.equilibrium.settle`, ``keep``); ``e``, the errors, if the solver has them
    (with ``t``).
    """
    name = config.transfer
    L = len(state.u)
    r = [phi(u, name) for u in state.u] if r is None else list(r)
    g = [phi(v, name) for v in state.v] if g is None else list(g)
    if t is not None:
        if len(t) != L:
            raise ValueError(f"t needs one array per layer ({L}), got {len(t)}")
        if e is None:
            e = [r[i] - phi(state.u[i] - t[i], name) if t[i].any() else np.zeros_like(r[i])
                 for i in range(L)]
        elif len(e) != L:
            raise ValueError(f"e needs one array per layer ({L}), got {len(e)}")
        return Currents(r, list(t), list(e), g, params, drive, x)
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
        t_out = beta * (y - r[-1])
    t.append(t_out)
    # no top-down input, no error (exactly: phi(u - 0) = phi(u)); skips the free phase's work
    e = [r[i] - phi(state.u[i] - t[i], name) if t[i].any() else np.zeros_like(r[i])
         for i in range(L)]
    return Currents(r, t, e, g, params, drive, x)
