"""The torch engine: the model on torch tensors, on the CPU or a CUDA device, for any network whose
layers have linear forward maps (dense, 2-D convolution, convolution then average pooling).

Every weight layer l has a linear forward map ``A_l`` (a matrix product, or ``conv2d`` then
``avg_pool2d``) and its transpose ``A_l^T`` (the matrix's transpose, or the pooling's transpose
then ``conv_transpose2d``). With these two maps the equations of docs/model.md hold unchanged
(docs/model.md §13):

- bottom-up input ``a_l = A_l(W_l) r_{l-1} + b_l``;
- top-down input ``t_l = A_{l+1}(B_l)^T r_{l+1} - A_{l+1}(H_l)^T phi(v_l)``: the feedback and
  the ghosts' inhibition go through the transpose map of layer l+1 with their own kernels
  (symmetric feedback: ``B_l`` is ``W_{l+1}``'s kernel; for a dense layer ``B_l`` is stored as
  the ``n_l x n_{l+1}`` matrix, as in the Numba engine);
- ghosts ``v_l -> A_{l+1}(G_l) r_l + c_l`` (copy: ``G_l = W_{l+1}``, ``c_l = b_{l+1}``);
- local errors ``e_l = phi(u_l) - phi(u_l - t_l)`` and the update of a kernel, the correlation
  of ``e_l`` with ``r_{l-1}`` summed over positions and averaged over the batch
  (``torch.nn.grad.conv2d_weight``): every synapse's ``e x pre`` product, pooled over the
  positions that share the weight.

Equilibrium mode solves for the fixed points with the same down/up passes as
:mod:`ghostnet.engines.numba_equilibrium`; dynamics mode integrates with forward or exponential
Euler as :mod:`ghostnet.engines.numba_dynamics` does (same steps, same settling rule, same
blow-up rule). Nothing here uses autograd: every function runs under ``torch.no_grad()``.

The network hands numpy :class:`~ghostnet.model.state.State` and
:class:`~ghostnet.model.params.Params` over; they become tensors at the boundary
(``torch.as_tensor``: no copy on the CPU, one transfer each way on a CUDA device) and the results
go back as numpy arrays (``.cpu()`` first). What the phases hand over to each other and to
:meth:`TorchEngine.currents` (``keep``) stays on the device.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_weight

from ghostnet.engines.base import Engine
from ghostnet.model.config import ConfigError, ModelConfig
from ghostnet.model.params import Params
from ghostnet.model.plasticity import Update, scale
from ghostnet.model.state import BLOWUP, BlowUpError, Currents, PhaseResult, Recording, State

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def resolve_device(name: str) -> torch.device:
    """``'cpu'``, ``'cuda'`` or ``'auto'`` (CUDA when torch sees a device) as a torch device;
    ``'cuda'`` without a device is a :class:`ConfigError` naming ``device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "'cuda' asked for, but torch sees no CUDA device here; use "
                                    "'cpu' or 'auto'")
    return torch.device(name)


def phi_t(x: torch.Tensor, name: str) -> torch.Tensor:
    """The transfer function on a tensor (logistic as (1 + tanh(x/2))/2, as the numpy one)."""
    if name == "logistic":
        return 0.5 + 0.5 * torch.tanh(0.5 * x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "softplus":
        return F.softplus(x)
    if name == "relu":
        return torch.relu(x)
    raise ValueError(f"unknown transfer function {name!r}")


def _phi_dphi(x: torch.Tensor, name: str):
    if name == "logistic":
        s = 0.5 + 0.5 * torch.tanh(0.5 * x)
        return s, s * (1 - s)
    if name == "tanh":
        s = torch.tanh(x)
        return s, 1 - s * s
    if name == "softplus":
        return F.softplus(x), torch.sigmoid(x)
    return torch.relu(x), (x > 0).to(x.dtype)


def phi_inv_t(r: torch.Tensor, name: str, eps: float = 1e-6) -> torch.Tensor:
    """Potential giving rate ``r`` (as :func:`ghostnet.model.transfer.phi_inv`)."""
    if name == "logistic":
        r = r.clamp(eps, 1 - eps)
        return torch.log(r) - torch.log1p(-r)
    if name == "tanh":
        return torch.atanh(r.clamp(-1 + eps, 1 - eps))
    if name == "softplus":
        r = r.clamp_min(eps)
        return r + torch.log(-torch.expm1(-r))
    return r.clamp_min(0)


class _P:
    """Parameters as tensors on the engine's device (views of the numpy arrays on the CPU)."""

    def __init__(self, engine: "TorchEngine", params: Params):
        conv = engine.as_tensor
        self.W = [conv(a) for a in params.W]
        self.b = [conv(a) for a in params.b]
        self.B = [conv(a) for a in params.B]
        self.G = [conv(a) for a in params.G]
        self.c = [conv(a) for a in params.c]
        self.H = [conv(a) for a in params.H]


class TorchCurrents(Currents):
    """:class:`~ghostnet.model.state.Currents` whose lazily computed bottom-up inputs and ghost
    inhibition go through the engine's maps (convolutions where the layer is one)."""

    def __init__(self, engine, r, t, e, ghost_rate, params, drive, x):
        super().__init__(r, t, e, ghost_rate, params, drive, x)
        self._engine = engine

    @property
    def inhibition(self):
        if self._inhibition is None:
            eng = self._engine
            P = _P(eng, self._params)
            with torch.no_grad():
                self._inhibition = [eng.to_numpy(eng.down(i, eng.as_tensor(g), P.H[i]))
                                    for i, g in enumerate(self.ghost_rate)]
        return self._inhibition

    @property
    def a(self):
        if self._a is None:
            eng = self._engine
            P = _P(eng, self._params)
            with torch.no_grad():
                a = []
                for i in range(len(self.r)):
                    if i == 0:
                        if self._drive is not None:
                            a.append(np.asarray(self._drive))
                        elif self._x is not None:
                            a.append(eng.to_numpy(eng.up(0, eng.input(self._x), P.W[0], P.b[0])))
                        else:
                            a.append(None)
                    else:
                        a.append(eng.to_numpy(eng.up(i, eng.as_tensor(self.r[i - 1]), P.W[i],
                                                     P.b[i])))
            self._a = a
        return self._a


class TorchEngine(Engine):
    """See the module docstring."""

    name = "torch"

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.device = resolve_device(config.device)
        self.dtype = DTYPES[config.dtype]
        self.shapes = config.shapes
        self.L = config.n_layers
        self.conv = [config.is_conv(i) for i in range(self.L)]
        self.specs = [config.layers[i] if config.layers else None for i in range(self.L)]
        self.ce = config.cost == "cross_entropy"

    @property
    def hands_over(self) -> bool:
        return True

    # ---- tensors at the boundary ------------------------------------------------------------
    def as_tensor(self, a) -> torch.Tensor:
        """A numpy array (or tensor) as a tensor of the engine's dtype on its device."""
        if isinstance(a, torch.Tensor):
            return a.to(device=self.device, dtype=self.dtype)
        a = np.asarray(a)
        if a.dtype != np.dtype(self.config.dtype):
            a = a.astype(self.config.dtype)
        return torch.as_tensor(a, device=self.device)

    @staticmethod
    def to_numpy(t: torch.Tensor) -> np.ndarray:
        """A tensor as a numpy array (moved to the CPU first)."""
        return t.detach().cpu().numpy()

    def input(self, x) -> torch.Tensor:
        """Inputs (batch x n_0, flat) shaped for layer 1: (batch, C, H, W) for a convolution."""
        x = self.as_tensor(x)
        return x.reshape(x.shape[0], *self.shapes[0]) if self.conv[0] else x.reshape(x.shape[0], -1)

    # ---- the layers' linear maps ------------------------------------------------------------
    def up(self, i: int, r: torch.Tensor, K: torch.Tensor, bias: torch.Tensor | None = None):
        """``A_{i+1}(K) r (+ bias)``: layer i+1's forward map with kernel (or matrix) ``K``."""
        if self.conv[i]:
            s = self.specs[i]
            z = F.conv2d(r, K, padding=s["padding"])
            if s["pool"] > 1:
                z = F.avg_pool2d(z, s["pool"])
            return z if bias is None else z + bias.view(1, -1, 1, 1)
        r = r.reshape(r.shape[0], -1)
        return r @ K.T if bias is None else torch.addmm(bias, r, K.T)

    def unpool(self, i: int, d: torch.Tensor) -> torch.Tensor:
        """The transpose of layer i+1's average pooling (identity without pooling)."""
        p = self.specs[i]["pool"]
        if p == 1:
            return d
        return d.repeat_interleave(p, dim=2).repeat_interleave(p, dim=3) / (p * p)

    def down(self, i: int, d: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        """Into hidden layer i+1 from layer i+2: the transpose map ``A_{i+2}(K)^T d``, shaped like
        layer i+1's state. A dense layer's ``K`` is stored transposed (``n_{i+1} x n_{i+2}``)."""
        j = i + 1
        if self.conv[j]:
            return F.conv_transpose2d(self.unpool(j, d), K, padding=self.specs[j]["padding"])
        return (d @ K.T).reshape(d.shape[0], *self.shapes[i + 1])

    def kernel_update(self, i: int, err: torch.Tensor, pre: torch.Tensor, k: float):
        """``k * mean_batch`` of layer i+1's ``err x pre`` products, pooled over shared weights:
        ``(dW, db)`` shaped like ``W[i]``, ``b[i]``."""
        n = err.shape[0]
        if self.conv[i]:
            s = self.specs[i]
            g = self.unpool(i, err)
            shape = (s["channels"], self.shapes[i][0], s["kernel"], s["kernel"])
            dW = conv2d_weight(pre, shape, g, padding=s["padding"]) * (k / n)
            return dW, err.sum(dim=(2, 3)).mean(dim=0) * k
        pre = pre.reshape(n, -1)
        return (err * (k / n)).T @ pre, k * err.mean(dim=0)

    def transfer(self, x):
        return phi_t(x, self.config.transfer)

    def rate(self, i: int, x):
        """Layer i+1's rate as the network sees it: phi, except the output with cost
        'cross_entropy', which the feedback pathway sees linearly (its rate is u_L)."""
        return x if self.ce and i == self.L - 1 else phi_t(x, self.config.transfer)

    def ghost_rate(self, i: int, x):
        """The ghosts of hidden layer i+1 mirror layer i+2: linear for a cross-entropy output."""
        return self.rate(i + 1, x)

    def prediction(self, u_out):
        """The output's prediction: softmax(u_L) with cross-entropy, else phi(u_L)."""
        return torch.softmax(u_out, dim=1) if self.ce else phi_t(u_out, self.config.transfer)

    # ---- Engine interface -------------------------------------------------------------------
    def drive(self, params: Params, x: np.ndarray) -> torch.Tensor:
        """``A_1(W_1) x + b_1`` as a tensor on the engine's device (it only travels back into
        :meth:`settle` and :meth:`currents`, so it stays there)."""
        with torch.no_grad():
            return self.up(0, self.input(x), self.as_tensor(params.W[0]),
                           self.as_tensor(params.b[0]))

    def settle(self, params: Params, state: State, x: np.ndarray, y: np.ndarray | None = None,
               beta: float = 0.0, *, hold_ghosts: bool = False, drive=None,
               keep: dict | None = None, record: Recording | None = None, on_step=None,
               n_steps: int | None = None, noise: list | None = None) -> PhaseResult:
        """One phase in place on ``state`` (:meth:`Engine.settle`). ``drive`` may be the tensor
        :meth:`drive` returned. ``noise`` (equilibrium mode): one constant current per layer, as
        :func:`ghostnet.engines.numba_equilibrium.settle` takes it. ``record`` and ``on_step`` are
        not supported here (the Numba engine has them)."""
        if record is not None or on_step is not None:
            raise ValueError("the torch engine neither records trajectories nor runs continuous "
                             "plasticity: use engine = 'numba' for record / on_step")
        cfg = self.config
        if cfg.mode == "equilibrium" and n_steps is not None:
            raise ValueError("equilibrium mode does not integrate in time: n_steps needs mode = "
                             "'dynamics'")
        if noise is not None and cfg.mode != "equilibrium":
            raise ValueError("noise is a current of the equilibrium solver: mode = 'equilibrium'")
        with torch.no_grad():
            P = _P(self, params)
            xt = self.input(x)
            d0 = self.up(0, xt, P.W[0], P.b[0]) if drive is None else self.as_tensor(drive)
            u = [self.as_tensor(a).clone() for a in state.u]
            v = [self.as_tensor(a).clone() for a in state.v]
            yt = None if y is None else self.as_tensor(y)
            nz = None if noise is None else [self.as_tensor(a) for a in noise]
            k = {} if keep is None else keep
            if cfg.mode == "equilibrium":
                res = self._equilibrium(P, u, v, d0, yt, beta, hold_ghosts, k, nz)
            else:
                res = self._dynamics(P, u, v, d0, yt, beta, hold_ghosts, n_steps)
                k.clear()
                k.update(self._currents(P, u, v, yt, beta, xt, d0), a=None)
            for dst, src in zip(state.u + state.v, u + v):
                dst[...] = self.to_numpy(src)
            return res

    def currents(self, params: Params, state: State, y, beta: float, *, x=None, drive=None,
                 keep: dict | None = None) -> Currents:
        with torch.no_grad():
            if keep is not None and keep.get("t") is not None:
                r, g, t = keep["r"], keep["g"], keep["t"]
                e = keep.get("e")
                if e is None:
                    u = [self.as_tensor(a) for a in state.u]
                    e = [r[i] - self.rate(i, u[i] - t[i]) if t[i].any() else torch.zeros_like(r[i])
                         for i in range(self.L)]
            else:
                P = _P(self, params)
                u = [self.as_tensor(a) for a in state.u]
                v = [self.as_tensor(a) for a in state.v]
                xt = None if x is None else self.input(x)
                d0 = None if drive is None else self.as_tensor(drive)
                c = self._currents(P, u, v, None if y is None else self.as_tensor(y), beta, xt, d0)
                r, g, t, e = c["r"], c["g"], c["t"], c["e"]
            n = self.to_numpy
            d_np = None if drive is None else (n(drive) if isinstance(drive, torch.Tensor)
                                               else drive)
            return TorchCurrents(self, [n(a) for a in r], [n(a) for a in t], [n(a) for a in e],
                                 [n(a) for a in g], params, d_np, x)

    def _currents(self, P, u, v, y, beta, xt, d0) -> dict:
        """Rates, ghost rates, top-down inputs and local errors of a state, as tensors (the same
        definitions as :func:`ghostnet.model.state.currents`)."""
        cfg = self.config
        L = self.L
        r = [self.rate(i, a) for i, a in enumerate(u)]
        g = [self.ghost_rate(i, a) for i, a in enumerate(v)]
        t = []
        for i in range(L - 1):
            if cfg.mechanism == "learned":
                t.append(self.down(i, r[i + 1], P.B[i]) - self.down(i, g[i], P.H[i]))
            else:
                d = r[i + 1] - g[i]
                t.append(self.down(i, d, P.B[i]) if d.any() else torch.zeros_like(u[i]))
        if y is None:
            t.append(torch.zeros_like(u[-1]))
        elif cfg.output == "clamp":
            if L > 1:
                a_out = self.up(L - 1, r[-2], P.W[-1], P.b[-1])
            else:
                a_out = d0 if d0 is not None else self.up(0, xt, P.W[0], P.b[0])
            t.append(u[-1] - a_out)
        else:
            t.append(beta * (y - self.prediction(u[-1])))
        e = [r[i] - self.rate(i, u[i] - t[i]) if t[i].any() else torch.zeros_like(r[i])
             for i in range(L)]
        return {"r": r, "g": g, "t": t, "e": e}

    # ---- learning ---------------------------------------------------------------------------
    def weight_update(self, e, pre, beta: float, e_free=None) -> Update:
        """docs/model.md §4 on general layers: ``dW_l = (1/beta) mean_batch`` of the correlation
        of ``e_l - e_l(free)`` with ``r_{l-1}`` (a kernel's pooled over positions); Kolen-Pollack's
        ``dB_l`` is layer l+1's ``dW`` in the feedback's form."""
        cfg = self.config
        k = scale(cfg, beta)
        with torch.no_grad():
            err = [self.as_tensor(a) for a in e]
            if e_free is not None:
                err = [a - self.as_tensor(b) for a, b in zip(err, e_free)]
            pre_t = [self.input(pre[0])] + [self.as_tensor(a) for a in pre[1:]]
            dW, db = [], []
            for i in range(self.L):
                w, c = self.kernel_update(i, err[i], pre_t[i], k)
                dW.append(w)
                db.append(c)
            dB = []
            if cfg.feedback == "plastic":
                dB = [dW[i + 1] if self.conv[i + 1] else dW[i + 1].T for i in range(self.L - 1)]
            n = self.to_numpy
            return Update([n(a) for a in dW], [n(a) for a in db], [n(a) for a in dB])

    def ghost_update(self, params: Params, cur: Currents):
        """The learned ghosts' updates of docs/model.md §5 (before their rates eta_G, eta_H),
        batch means: ``dG_l`` the correlation of ``r_{l+1} - phi(v_l)`` with ``r_l`` through layer
        l+1's map, ``dc_l`` its mean, ``dH_l`` the correlation of ``t_l`` with ``phi(v_l)``."""
        with torch.no_grad():
            T = self.as_tensor
            dG, dc, dH = [], [], []
            for i in range(len(params.G)):
                r_lo, r_hi = T(cur.r[i]), T(cur.r[i + 1])
                g, t = T(cur.ghost_rate[i]), T(cur.t[i])
                w, c = self.kernel_update(i + 1, r_hi - g, r_lo, 1.0)
                h, _ = self.kernel_update(i + 1, g, t, 1.0)  # correlation of t (below), g (above)
                dG.append(w)
                dc.append(c)
                dH.append(h if self.conv[i + 1] else h.T)
            n = self.to_numpy
            return [n(a) for a in dG], [n(a) for a in dc], [n(a) for a in dH]

    def feedback_input(self, params: Params, i: int, r_above: np.ndarray) -> np.ndarray:
        """``B_l r_{l+1}`` into hidden layer i+1 (the feedback the ghosts cancel)."""
        with torch.no_grad():
            return self.to_numpy(self.down(i, self.as_tensor(r_above), self.as_tensor(params.B[i])))

    def ghost_drive(self, params: Params, i: int, r: np.ndarray) -> np.ndarray:
        """``A_{l+1}(G_l) r + c_l``: the learned ghosts' potentials of hidden layer l = i+1 given
        its rates ``r``, shaped like layer l+1's state."""
        with torch.no_grad():
            T = self.as_tensor
            return self.to_numpy(self.up(i + 1, T(r), T(params.G[i]), T(params.c[i])))

    def feedforward(self, params: Params, x: np.ndarray) -> np.ndarray:
        """The output rates of the feedforward pass (the free fixed point of copy ghosts)."""
        with torch.no_grad():
            r = self.input(x)
            for i in range(self.L):
                a = self.up(i, r, self.as_tensor(params.W[i]), self.as_tensor(params.b[i]))
                r = self.prediction(a) if i == self.L - 1 else self.transfer(a)
            return self.to_numpy(r)

    # ---- dynamics ---------------------------------------------------------------------------
    def _dynamics(self, P, u, v, d0, y, beta, hold, n_steps) -> PhaseResult:
        """Forward or exponential Euler on docs/model.md §2, all currents from the state before
        the step (as :func:`ghostnet.kernels.numba_kernels.update`)."""
        cfg = self.config
        L = self.L
        euler = cfg.method == "euler"
        c_u = cfg.dt / cfg.tau if euler else math.exp(-cfg.dt / cfg.tau)
        c_g = cfg.dt / cfg.tau_g if euler else math.exp(-cfg.dt / cfg.tau_g)
        nudge = y is not None
        clamp = nudge and cfg.output == "clamp"
        if clamp:
            u[-1].copy_(phi_inv_t(y, cfg.transfer))
        fixed = n_steps is not None or cfg.settle == "fixed"
        total = (cfg.steps if n_steps is None else n_steps) if fixed else cfg.max_steps
        mech = cfg.mechanism
        r = [self.rate(i, a) for i, a in enumerate(u)]
        g = [self.ghost_rate(i, a) for i, a in enumerate(v)]
        maxd = math.inf
        done = 0

        def step(x, inp, c):
            return x + c * (inp - x) if euler else inp - c * (inp - x)

        for _ in range(total):
            A = [d0] + [self.up(i, r[i - 1], P.W[i], P.b[i]) for i in range(1, L)]
            gin = []
            if not hold:
                for i in range(L - 1):
                    if mech == "replicate":
                        gin.append(u[i + 1])
                    elif mech == "copy":
                        gin.append(A[i + 1])
                    else:
                        gin.append(self.up(i + 1, r[i], P.G[i], P.c[i]))
            uin = []
            for i in range(L):
                if i == L - 1:
                    uin.append(None if clamp else (A[i] + beta * (y - self.prediction(u[i]))
                                                   if nudge else A[i]))
                elif mech == "learned":
                    uin.append(A[i] + self.down(i, r[i + 1], P.B[i])
                               - self.down(i, g[i], P.H[i]))
                else:
                    uin.append(A[i] + self.down(i, r[i + 1] - g[i], P.B[i]))
            du = [(inp - x).abs().max() for x, inp in zip(u, uin) if inp is not None]
            dv = [(inp - x).abs().max() for x, inp in zip(v, gin)]
            new_v = [step(x, inp, c_g) for x, inp in zip(v, gin)]
            new_u = [x if inp is None else step(x, inp, c_u) for x, inp in zip(u, uin)]
            for i, a in enumerate(new_v):
                v[i] = a
            for i, a in enumerate(new_u):
                u[i] = a
            zero = torch.zeros((), dtype=self.dtype, device=self.device)
            m_u = torch.stack(du).max() / cfg.tau if du else zero
            m_g = torch.stack(dv).max() / cfg.tau_g if dv else zero
            big = torch.stack([a.abs().max() for a in new_u + new_v])
            stats = torch.stack([torch.maximum(m_u, m_g), big.max()]).tolist()  # one sync a step
            maxd, mx = stats
            done += 1
            r = [self.rate(i, a) for i, a in enumerate(u)]
            g = [self.ghost_rate(i, a) for i, a in enumerate(v)]
            if not (mx < BLOWUP):  # also NaN
                raise BlowUpError(
                    f"numerical blow-up at step {done} (t = {done * cfg.dt:g}): potentials left "
                    f"[-{BLOWUP:g}, {BLOWUP:g}] or became non-finite with dt = {cfg.dt} "
                    f"({cfg.method}); the stability bound for the leak and nudging terms is "
                    f"dt < {cfg.stability_bound():.4g}. Reduce dt or beta")
            if not fixed and maxd < cfg.tol:
                break
        return PhaseResult(done, bool(maxd < cfg.tol), float(maxd), done * cfg.dt)

    # ---- equilibrium ------------------------------------------------------------------------
    def _solve_output(self, a, u0, y, beta):
        """``u = a + beta (y - phi(u))`` element-wise by Newton's method from ``u0`` (with
        cross-entropy ``u = a + beta (y - softmax(u))``, Newton on each sample's vector)."""
        u = u0.clone()
        eps = 4 * torch.finfo(self.dtype).eps
        if self.ce:
            eye = torch.eye(u.shape[1], dtype=u.dtype, device=u.device)
            for _ in range(50):
                p = torch.softmax(u, dim=1)
                f = u - a - beta * (y - p)
                jac = eye + beta * (torch.diag_embed(p) - p[:, :, None] * p[:, None, :])
                s = torch.linalg.solve(jac, f)
                u = u - s
                if bool((s.abs() <= eps * (1 + u.abs())).all()):
                    break
            return u
        for _ in range(50):
            p, dp = _phi_dphi(u, self.config.transfer)
            s = (u - a - beta * (y - p)) / (1 + beta * dp)
            u = u - s
            if bool((s.abs() <= eps * (1 + u.abs())).all()):
                break
        return u

    def _equilibrium(self, P, u, v, d0, y, beta, hold, keep, noise) -> PhaseResult:
        """The fixed point by the down/up passes of :mod:`ghostnet.engines.numba_equilibrium`
        (same stopping rule)."""
        cfg = self.config
        L = self.L
        mech = cfg.mechanism
        tr = self.rate  # tr(i, u): layer i+1's rate
        gr = self.ghost_rate
        W, b = P.W, P.b
        if y is None and mech in ("copy", "replicate") and not hold and noise is None:
            a, r = [], []
            for i in range(L):
                a.append(d0 if i == 0 else self.up(i, r[-1], W[i], b[i]))
                r.append(tr(i, a[-1]))
                u[i] = a[-1].clone()
            for i in range(L - 1):
                v[i] = a[i + 1].clone()
            keep.update(a=a, r=r, g=r[1:], t=[torch.zeros_like(x) for x in a],
                        e=[torch.zeros_like(x) for x in a])
            return PhaseResult(1, True, 0.0, 0.0)

        eps = float(torch.finfo(self.dtype).eps)
        clamp = y is not None and cfg.output == "clamp"
        if clamp:
            u[-1] = phi_inv_t(y, cfg.transfer)

        def with_noise(i, ai):
            return ai if noise is None else ai + noise[i]

        def output(a_top):
            if clamp:
                return u[-1]
            n_top = with_noise(L - 1, a_top)
            return n_top if y is None else self._solve_output(n_top, u[-1], y, beta)

        def ghost_input(i):
            if mech == "copy":
                v[i] = a[i + 1]
            elif mech == "learned":
                v[i] = self.up(i + 1, r[i], P.G[i], P.c[i])

        t = [None] * L
        g = [None] * (L - 1)
        e = [None] * L if mech == "copy" and noise is None and not hold else None
        a = [d0] + [None] * (L - 1)
        g_start = None
        if keep.get("a") is not None:
            a = list(keep["a"])
            r = list(keep["r"]) if keep.get("r") is not None else [tr(i, x) for i, x in
                                                                   enumerate(u)]
            if keep.get("g") is not None and (mech == "copy" or hold):
                g_start = list(keep["g"])
        elif y is None:
            r = [None] * L
            for i in range(L):
                if i:
                    a[i] = self.up(i, r[i - 1], W[i], b[i])
                u[i] = output(a[i]) if i == L - 1 else with_noise(i, a[i])
                r[i] = tr(i, u[i])
            keep["r_start"] = list(r)  # where the first-order nudged pass of learned ghosts starts
        else:
            r = [tr(i, x) for i, x in enumerate(u)]
            for i in range(1, L):
                a[i] = self.up(i, r[i - 1], W[i], b[i])
        if not hold:
            for i in range(L - 1):
                if mech == "replicate":
                    v[i] = u[i + 1]
                else:
                    ghost_input(i)

        prev = 0.0
        change = math.inf
        propagate = True
        omega, stalled = 1.0, 0
        top_solved = None
        it = 0
        for it in range(1, cfg.eq_max_iter + 1):
            changes = []
            if top_solved is a[-1] and omega == 1.0:
                pass
            else:
                new = output(a[-1])
                if omega < 1.0:
                    new = u[-1] + omega * (new - u[-1])
                changes.append((new - u[-1]).abs().max())
                u[-1] = new
                r[-1] = tr(L - 1, u[-1])
            for i in range(L - 2, -1, -1):
                if mech == "replicate" and not hold:
                    v[i] = u[i + 1]
                g[i] = g_start[i] if it == 1 and g_start is not None else gr(i, v[i])
                if mech in ("copy", "replicate"):
                    d = r[i + 1] - g[i]
                    t[i] = self.down(i, d, P.B[i])
                    if e is not None:
                        e[i + 1] = d
                else:
                    t[i] = self.down(i, r[i + 1], P.B[i]) - self.down(i, g[i], P.H[i])
                new = with_noise(i, a[i]) + t[i]
                if omega < 1.0:
                    new = u[i] + omega * (new - u[i])
                changes.append((new - u[i]).abs().max())
                u[i] = new
                r[i] = tr(i, u[i])
            stats = torch.stack(changes + [x.abs().max() for x in u]).tolist()  # one sync
            change = max(stats[:len(changes)]) if changes else 0.0
            size = max(1.0, max(stats[len(changes):]))
            if not (math.isfinite(change) and size <= BLOWUP):
                raise BlowUpError(
                    f"equilibrium iteration diverged (potentials beyond {BLOWUP:g} or non-finite) "
                    f"in the {'free' if y is None else 'nudged'} phase; with learned ghosts try "
                    f"smaller eta_g / eta_h, in a nudged phase a smaller beta")
            tol = max(cfg.eq_tol, 10 * eps * size)
            rho = change / prev if prev > 0 else 1.0
            if change < tol or (rho < 0.5 and rho / (1.0 - rho) * change < tol):
                return self._done(keep, a, t, u, r, g, e if omega == 1.0 else None, it, True,
                                  change)
            if it > 1 and rho > 0.25:
                propagate = False
            if not propagate and rho > 0.95:
                stalled += 1
                if stalled >= 5 and omega > 0.125:
                    omega, stalled = omega / 2, 0
            else:
                stalled = 0
            prev = change
            if it == cfg.eq_max_iter:
                break
            for i in range(1, L):
                a[i] = self.up(i, r[i - 1], W[i], b[i])
                if not hold and mech != "replicate":
                    ghost_input(i - 1)
                if propagate:
                    u[i] = output(a[i]) if i == L - 1 else with_noise(i, a[i]) + t[i]
                    r[i] = tr(i, u[i])
                    if i == L - 1:
                        top_solved = a[i]
                    if mech == "replicate" and not hold:
                        v[i - 1] = u[i]
        return self._done(keep, a, t, u, r, g, e if omega == 1.0 else None, cfg.eq_max_iter,
                          False, change)

    def _done(self, keep, a, t, u, r, g, e, steps, converged, change) -> PhaseResult:
        t[-1] = u[-1] - a[-1]
        keep.update(a=a, t=t, r=r, g=g)
        if e is not None:
            e[0] = r[0] - self.rate(0, a[0])
            keep["e"] = e
        else:
            keep.pop("e", None)
        return PhaseResult(steps, converged, float(change), 0.0)


ENGINE = TorchEngine
