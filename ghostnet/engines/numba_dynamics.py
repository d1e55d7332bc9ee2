"""Integration of the network dynamics (docs/model.md §2) over one phase, batched (batch x units).

What is integrated (the vector field) lives in :mod:`ghostnet.kernels.numba_kernels`; this module decides how
(method, step, settling rule), checks for blow-up and records trajectories when asked.
"""
from __future__ import annotations


import numpy as np
from numba import typed

from ghostnet.kernels import numba_kernels as K
from ghostnet.model.config import ModelConfig
from ghostnet.kernels.linalg import affine, dot_into, wide
from ghostnet.model.params import Params
from ghostnet.model.state import BLOWUP, BlowUpError, PhaseResult, Recording, State, currents


MECH_CODES = {"copy": K.MECH_COPY, "learned": K.MECH_LEARNED, "replicate": K.MECH_REPLICATE}
METHOD_CODES = {"euler": K.METHOD_EULER, "expeuler": K.METHOD_EXPEULER}


def step_product_shapes(sizes, mechanism: str) -> list[tuple[int, int]]:
    """``(n_in, n_out)`` of each matrix product in a step of the dynamics (docs/model.md §2): the
    bottom-up ``W_i r_{i-1}`` above the first layer and the top-down currents (one product
    ``B_i (r_{i+1} - phi(v_i))`` when H = B; ``B_i r_{i+1}``, ``H_i phi(v_i)`` and the learned
    ghosts' ``G_i r_i`` otherwise)."""
    n = sizes
    L = len(n) - 1
    shapes = [(n[i], n[i + 1]) for i in range(1, L)]
    for i in range(L - 1):
        shapes.append((n[i + 2], n[i + 1]))
        if mechanism == "learned":
            shapes += [(n[i + 2], n[i + 1]), (n[i + 1], n[i + 2])]
    return shapes


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
        self.buf = np.zeros(batch * max(n[1:]), dt)  # the element-wise kernel's inputs
        # the loop over steps in Python where a product gains from the transposed orientation
        # (784-500-500-10 at batch 100: 649 against 688 us a step, float32); otherwise inside
        # the kernel, which saves ~12 us a step of calls (784-500-10: 53 against 66 us)
        self.python_loop = any(wide(batch, n_in, n_out)
                               for n_in, n_out in step_product_shapes(config.sizes, config.mechanism))
        self._tl = tl
        self._scratch: dict[tuple, np.ndarray] = {}
        self._dtype = dt

    def scratch(self, shape: tuple) -> np.ndarray:
        """A reusable buffer of ``shape`` (for the products' transposes)."""
        if shape not in self._scratch:
            self._scratch[shape] = np.empty(shape, self._dtype)
        return self._scratch[shape]


def _refresh(lst, arrays) -> None:
    """Bring the kernels' own copies in the typed list ``lst`` (of parameters that are not
    C-contiguous arrays of the run's dtype: B as the transposed view of W, symmetric feedback)
    up to date with ``arrays``; items that are the arrays themselves need nothing."""
    for i, a in enumerate(arrays):
        dst = lst[i]
        if not np.may_share_memory(dst, a):
            dst[...] = a.reshape(dst.shape)


def _refresh_copies(typed_lists, params: Params) -> None:
    """After an in-place weight change: :func:`_refresh` for the typed lists of W, b, B, G, c, H
    as :func:`_typed` made them."""
    for lst, arrays in zip(typed_lists, (params.W, params.b, params.B, params.G, params.c,
                                         params.H)):
        _refresh(lst, arrays)


def _typed(arrays, dtype, tl, rows=False):
    if rows:
        arrays = [a.reshape(1, -1) for a in arrays]
    return tl([np.ascontiguousarray(a, dtype=dtype) for a in arrays])


class Integrator:
    """Integrates phases of one network configuration; holds the workspace between calls."""

    def __init__(self, config: ModelConfig):
        self.config = config
        self._ws: Workspace | None = None
        self._lists: dict[str, tuple] = {}

    def _param_list(self, name, arrays, dtype, tl, rows=False):
        """The kernels' typed list of one kind of parameter, kept while the parameters are the
        same arrays (training updates them in place): building a typed list costs ~15 us, eight
        a phase. Its own copies (of views such as B = W^T, or of another dtype) are brought up
        to date."""
        hit = self._lists.get(name)
        if hit is not None and len(hit[0]) == len(arrays) and all(
                a is b for a, b in zip(hit[0], arrays)) and hit[2] == dtype:
            _refresh(hit[1], arrays)
            return hit[1]
        lst = _typed(arrays, dtype, tl, rows)
        self._lists[name] = (list(arrays), lst, dtype)
        return lst

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
        Ws, bs, Bs, Gs, cs, Hs = (
            self._param_list(name, getattr(params, name), dtype, tl, rows=name in "bc")
            for name in ("W", "b", "B", "G", "c", "H"))
        us = tl(state.u)
        vs = tl(state.v)
        nudge = y is not None
        clamp = nudge and cfg.output == "clamp"
        if nudge:
            y = np.ascontiguousarray(y, dtype=dtype)
            if clamp:
                from ghostnet.model.transfer import phi_inv

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
        # BLAS and the serial element-wise pass take turns on the cores; BLAS on all threads is
        # fastest (784-500-500-10, 50 steps, float32: 57 ms, against 73 ms with BLAS held to one
        # thread).
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
            integrate = self._integrate_python if ws.python_loop else K.integrate
            steps, maxd, status = integrate(
                K.TRANSFER_CODES[cfg.transfer], K.TRANSFER_CODES[cfg.rate_transfer(cfg.n_layers - 1)],
                *args, float(beta), nudge, clamp, cfg.cost == "cross_entropy", hold_ghosts,
                MECH_CODES[cfg.mechanism], METHOD_CODES[cfg.method], float(cfg.dt),
                float(cfg.tau), float(cfg.tau_g), n, use_tol, float(cfg.tol), BLOWUP,
                ws.buf,
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

    def _integrate_python(self, phi, phi_out, drive, Ws, bs, Bs, Gs, cs, Hs, us, vs, rs, gs, As,
                          Ts, Ds, GAs, y, beta, nudge, clamp, softmax, hold, mech, method, dt, tau,
                          tau_g, n_steps, use_tol, tol, blowup, buf):
        """:func:`ghostnet.kernels.numba_kernels.integrate` with the loop over steps in Python: the products by
        BLAS through :func:`ghostnet.kernels.linalg.dot_into` (each in its faster orientation), then the
        same element-wise kernel (serial: its threads would cost more to wake than they save,
        ~155 against 27 us for 100 x 500 float32). The Python loop costs ~5 us a step."""
        ws = self._ws
        hidden = len(ws.g_list)
        L = len(us)
        W, B, G, H = (list(x) for x in (Ws, Bs, Gs, Hs))
        A, T, GA = list(As), list(Ts), list(GAs)
        r, g, D = ws.r_list, ws.g_list, ws.D_list
        tmp = ws.scratch
        learned = mech == K.MECH_LEARNED
        # the kernels get tuples here: unboxing a typed list costs ~0.6 us a call, a tuple ~0.1
        bs, cs, us, vs, rs, gs, As, Ts, Ds, GAs = (
            tuple(x) for x in (bs, cs, us, vs, rs, gs, As, Ts, Ds, GAs))

        K.rates(phi, phi_out, mech, us, vs, rs, gs, Ds)
        maxd = np.inf
        for step in range(n_steps):
            for i in range(1, L):
                dot_into(r[i - 1], W[i], A[i], tmp)
            for i in range(hidden):
                if learned:
                    dot_into(r[i + 1], B[i], T[i], tmp)
                    dot_into(g[i], H[i], D[i], tmp)
                    dot_into(r[i], G[i], GA[i], tmp)
                else:
                    dot_into(D[i], B[i], T[i], tmp)
            maxd, bad = K.update(drive, bs, cs, us, vs, rs, As, Ts, Ds, GAs, y, beta, nudge, clamp,
                                 softmax, hold, mech, method, dt, tau, tau_g, blowup, buf)
            K.rates(phi, phi_out, mech, us, vs, rs, gs, Ds)
            if bad:
                return step + 1, maxd, K.STATUS_BLOWUP
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
