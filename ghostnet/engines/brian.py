"""The ghost-unit network of docs/model.md §2 in Brian2: an independent implementation of the dynamics
(§2) and of the local plasticity (§4), cross-validated against the Numba engine.

The network is written once, as Brian2 equations, from a :class:`~ghostnet.network.GhostNetwork`:

- a ``NeuronGroup`` per pyramidal layer (``u``, rate ``r = phi(u)``), one for the clamped input
  (``r = x``) and one per ghost population (``v``, rate ``g = phi(v)``);
- one ``Synapses`` object per projection, each summing into its own variable of the target group
  (Brian2 allows one summed-variable updater per target variable)::

      W_l : layer l-1 -> layer l      I_ff    = sum W r_pre       (bottom-up, a_l = I_ff + b)
      B_l : layer l+1 -> layer l      I_fb    = sum B r_pre       (top-down excitation)
      H_l : ghost l   -> layer l      I_ghost = sum H g_pre       (ghost inhibition)
      G_l : layer l   -> ghost l      I_gin   = sum G r_pre       (ghost input)

- the rate equations of docs/model.md §2, time in units of tau (one ghostnet time unit = 1 ms)::

      tau   du_l/dt = -u_l + I_ff + b + I_fb - I_ghost     (hidden layers: t_l = I_fb - I_ghost)
      tau   du_L/dt = -u_L + I_ff + b + nudge beta (y - r_L)    (output; nudge = 1 when nudged)
      tau_g dv_l/dt = -v_l + I_gin + c

Integration is forward Euler with ghostnet's step (``method = "euler"``), in the same order as
:func:`ghostnet.kernels.numba_kernels.integrate`: Brian2 runs every summed-variable update (``when='groups'``,
``order=-1``) before any state update (``order=0``), so all currents come from the pre-step state
and u and v are then updated together. The two engines therefore agree to roundoff.

The top-down input t of the *final* state (to read back, and for the local error
``e = phi(u) - phi(u - t)`` of docs/model.md §4) needs the top-down sums taken again after the state
update; each B and H projection has a second summed-variable updater for that, into ``I_fb_now`` and
``I_ghost_now``, scheduled at ``when='end'``. In the equations t is called ``td`` and e ``err``
(``t`` is Brian2's time, ``e`` Euler's number).

Plasticity (docs/model.md §4):

- end-of-phase: each synapse of a forward projection computes its own update
  ``dw = (1/beta) (err_post - err_free_post) r_pre`` (a synaptic subexpression; ``err_free`` is the
  error at the end of the free phase, the baseline, or 0 without ``config.baseline``); the batch
  mean over the independent copies is taken when reading it back (:meth:`BrianGhostNetwork.update`),
  as :meth:`GhostNetwork.update` does;
- continuous (``plastic=True``, one sample at a time): the synaptic equation
  ``dw/dt = lr_post err_post r_pre`` with ``lr = eta / (beta tau_w)``, integrated by Euler after
  each state update with the error of the new state (its updater is moved to ``when='end'``, after the
  ``I_*_now`` sums), the bias by ``b = b + dt lr err`` at the same point, then the slow copy of docs/model.md
  §5 (``G <- W``, ``c <- b``, ``H <- B``, and ``B <- W^T`` for symmetric feedback) as a network
  operation. This is the order of :meth:`GhostNetwork.continuous_phases`.

Supported: mechanism ``copy``, feedback ``symmetric`` or ``random``, output ``nudge``, any transfer
function, fixed-length phases. Brian2 always computes in float64 here (a float32 network's weights
are converted). Code generation: ``target="numpy"`` (default, no compiler) or ``"cython"``
(compiled, cached in ``~/.cython``; see :func:`cython_available`).

Example::

    from ghostnet import GhostNetwork, ModelConfig
    from ghostnet.engines.brian import BrianGhostNetwork

    net = GhostNetwork(ModelConfig(sizes=[10, 8, 6, 4], method="euler", dt=0.1, steps=40))
    bn = BrianGhostNetwork(net, batch=2)
    out = bn.phases(x, y)       # x (2 x 10), y (2 x 4): free then nudged phase, read back
    out.nudged.u[0]             # (2 x 8) potentials of layer 1 at the end of the nudged phase
    out.update.dW[0]            # (8 x 10) end-of-phase update (docs/model.md §4), as net.update(...)

    bp = BrianGhostNetwork(net, plastic=True)            # continuous plasticity, one sample at a time
    bp.continuous_phases(x[0], y[0], eta=0.5)            # as net.continuous_phases(...)
    bp.params().W                                        # the learned weights
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from ghostnet.model.config import ConfigError, ModelConfig
from ghostnet.model.state import State
from ghostnet.model.params import Params
from ghostnet.model.plasticity import Update, scale

TARGETS = ("numpy", "cython")
TIME_UNIT_MS = 1.0
"""One ghostnet time unit in Brian2 milliseconds."""


# numpy is pinned below 2.4 in pyproject.toml: Brian2 <= 2.9.0 wraps ndarray.ptp, which numpy 2.4
# removed (fixed upstream in brian-team/brian2#1705, not yet released).
import brian2 as b2  # noqa: E402
from brian2.equations.codestrings import Expression  # noqa: E402
from brian2.synapses.synapses import SummedVariableUpdater  # noqa: E402


def cython_available() -> bool:
    """Whether Brian2's Cython target can compile here (Cython and a C compiler present)."""
    try:
        from brian2.codegen.runtime.cython_rt import CythonCodeObject

        return bool(CythonCodeObject.is_available())
    except Exception:  # any failure to set up the compiler means: not available
        return False


@contextlib.contextmanager
def _target(target: str):
    """Brian2 generates its code objects at each ``run``; select the target for that time only."""
    old = b2.prefs.codegen.target
    b2.prefs.codegen.target = target
    try:
        yield
    finally:
        b2.prefs.codegen.target = old


# ---- equations ------------------------------------------------------------------------------------
PHI = {
    "logistic": "1.0 / (1.0 + exp(-({x})))",
    "tanh": "tanh({x})",
    "softplus": "clip({x}, 0, inf) + log(1.0 + exp(-abs({x})))",
    "relu": "clip({x}, 0, inf)",
}
"""phi (docs/model.md §1) as Brian2 expressions of ``{x}``; the same formulas as ghostnet.model.transfer."""


def _phi(name: str, x: str) -> str:
    return "(" + PHI[name].format(x=x) + ")"


def hidden_equations(transfer: str) -> str:
    """Pyramidal neurons of a hidden layer (docs/model.md §2): ``tau du/dt = -u + a + t``."""
    return f"""
    du/dt = (-u + I_ff + b + I_fb - I_ghost) / tau : 1
    r = {_phi(transfer, 'u')} : 1
    td = I_fb_now - I_ghost_now : 1
    err = r - {_phi(transfer, 'u - td')} : 1
    I_ff : 1
    I_fb : 1
    I_ghost : 1
    I_fb_now : 1
    I_ghost_now : 1
    b : 1
    err_free : 1
    lr : 1 / second (shared)
    tau : second (constant, shared)
    """


def output_equations(transfer: str) -> str:
    """Output neurons (docs/model.md §2): ``tau du_L/dt = -u_L + a_L + beta (y - r_L)`` when nudged."""
    return f"""
    du/dt = (-u + I_ff + b + nudge * beta * (y - r)) / tau : 1
    r = {_phi(transfer, 'u')} : 1
    td = nudge * beta * (y - r) : 1
    err = r - {_phi(transfer, 'u - td')} : 1
    I_ff : 1
    y : 1
    b : 1
    err_free : 1
    nudge : 1 (shared)
    beta : 1 (shared)
    lr : 1 / second (shared)
    tau : second (constant, shared)
    """


def ghost_equations(transfer: str) -> str:
    """Ghost units (docs/model.md §2): ``tau_g dv/dt = -v + G r + c``."""
    return f"""
    dv/dt = (-v + I_gin + c) / tau_g : 1
    g = {_phi(transfer, 'v')} : 1
    I_gin : 1
    c : 1
    tau_g : second (constant, shared)
    """


FORWARD_STATIC = """
w : 1
dw = k * (err_post - err_free_post) * r_pre : 1
k : 1 (shared)
"""
"""Forward synapse, end-of-phase rule (docs/model.md §4): its own update ``(1/beta)(e - e_free) r_pre``."""

FORWARD_PLASTIC = """
dw/dt = lr_post * err_post * r_pre : 1 (clock-driven)
"""
"""Forward synapse, continuous rule (docs/model.md §4): ``tau_w dW/dt = (eta / beta) e r_pre``; the rate
``lr = eta / (beta tau_w)`` is the postsynaptic layer's (it also drives that layer's bias)."""


# ---- results ----------------------------------------------------------------------------------------
@dataclass
class BrianPhase:
    """State read back at the end of a phase: potentials ``state.u[i]`` (batch x n_{i+1}) and
    ``state.v[i]`` (batch x n_{i+2}); top-down input ``t[i]`` (the nudging input for the output) and
    local error ``e[i] = phi(u) - phi(u - t)``, both batch x n_{i+1}; ``r[i]`` the rates."""

    state: State
    t: list[np.ndarray]
    e: list[np.ndarray]
    r: list[np.ndarray]

    @property
    def u(self) -> list[np.ndarray]:
        return self.state.u

    @property
    def v(self) -> list[np.ndarray]:
        return self.state.v


@dataclass
class BrianPhases:
    """A free and a nudged phase on one batch, as run by Brian2, with the synapses' own end-of-phase
    updates (``dW[i]`` batch-mean, like ``W[i]``; ``db[i]`` like ``b[i]``), eta = 1."""

    x: np.ndarray
    y: np.ndarray
    beta: float
    free: BrianPhase
    nudged: BrianPhase
    update: Update | None = None


# ---- the network ------------------------------------------------------------------------------------
class BrianGhostNetwork:
    """A :class:`~ghostnet.network.GhostNetwork` built as Brian2 objects (see the module docstring).

    ``batch`` samples are independent copies of the network: unit j of sample s is neuron
    ``s * n + j`` of its group, and every projection connects units of the same sample only.
    ``plastic=True`` builds the continuous plasticity of docs/model.md §4 (batch 1: the weights are the
    sample's own synapses). The weights are copied from ``net.params`` at construction;
    :meth:`params` reads them back.
    """

    def __init__(self, net, batch: int = 1, target: str = "numpy", plastic: bool = False):
        cfg: ModelConfig = net.config
        _check_supported(cfg)
        if target not in TARGETS:
            raise ConfigError("target", f"unknown value {target!r}; allowed: {', '.join(TARGETS)}")
        if target == "cython" and not cython_available():
            raise ConfigError("target", "'cython' needs Cython and a C compiler, which Brian2 "
                                        "cannot use here; use target = 'numpy'")
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ConfigError("batch", f"must be an integer >= 1, got {batch!r}")
        if plastic and batch != 1:
            raise ConfigError("batch", "continuous plasticity runs one sample at a time: batch "
                                       f"must be 1, got {batch}")
        self.config = cfg
        self.batch = int(batch)
        self.target = target
        self.plastic = plastic
        # Brian2 generates code while building too (synapse creation); its default target 'auto'
        # would first probe for a compiler, which costs a compilation
        with _target(target):
            self._build()
        self.set_params(net.params)

    # ---- construction -------------------------------------------------------------------------
    def _build(self) -> None:
        cfg = self.config
        n = cfg.sizes
        L = len(n) - 1
        nb = self.batch
        ms = b2.ms * TIME_UNIT_MS
        self.dt = cfg.dt * ms
        clock = b2.Clock(dt=self.dt)
        self._clock = clock
        phi = cfg.transfer

        self.input = b2.NeuronGroup(nb * n[0], "r : 1", clock=clock)
        self.layers = []
        for i in range(L):
            eqs = output_equations(phi) if i == L - 1 else hidden_equations(phi)
            grp = b2.NeuronGroup(nb * n[i + 1], eqs, method="euler", clock=clock)
            grp.tau = cfg.tau * ms
            self.layers.append(grp)
        self.ghosts = []
        for i in range(L - 1):
            grp = b2.NeuronGroup(nb * n[i + 2], ghost_equations(phi), method="euler", clock=clock)
            grp.tau_g = cfg.tau_g * ms
            self.ghosts.append(grp)

        self.S_W, self.S_B, self.S_G, self.S_H = [], [], [], []
        extra = []
        forward = FORWARD_PLASTIC if self.plastic else FORWARD_STATIC
        for i in range(L):
            pre = self.input if i == 0 else self.layers[i - 1]
            S = self._project(pre, self.layers[i], n[i], n[i + 1],
                              forward + "I_ff_post = w * r_pre : 1 (summed)")
            self.S_W.append(S)
        for i in range(L - 1):
            lay, up, gh = self.layers[i], self.layers[i + 1], self.ghosts[i]
            SB = self._project(up, lay, n[i + 2], n[i + 1],
                               "w : 1\nI_fb_post = w * r_pre : 1 (summed)")
            SH = self._project(gh, lay, n[i + 2], n[i + 1],
                               "w : 1\nI_ghost_post = w * g_pre : 1 (summed)")
            SG = self._project(lay, gh, n[i + 1], n[i + 2],
                               "w : 1\nI_gin_post = w * r_pre : 1 (summed)")
            self.S_B.append(SB)
            self.S_H.append(SH)
            self.S_G.append(SG)
            # the same top-down sums after the state update: t of the new state (module docstring)
            for S, var, expr in ((SB, "I_fb_now_post", "w * r_pre"),
                                 (SH, "I_ghost_now_post", "w * g_pre")):
                upd = SummedVariableUpdater(Expression(expr), var, S, lay, "N_post",
                                            "_synaptic_post")
                upd.when, upd.order = "end", 0
                extra.append(upd)
        if self.plastic:
            for i, S in enumerate(self.S_W):
                S.state_updater.when, S.state_updater.order = "end", 1
                lay = self.layers[i]
                extra.append(lay.run_regularly("b = b + dt * lr * err", when="end", order=1))
            extra.append(b2.NetworkOperation(self._copy_weights, clock=clock, when="end",
                                             order=2))
        self.network = b2.Network(self.input, *self.layers, *self.ghosts, *self.S_W, *self.S_B,
                                  *self.S_H, *self.S_G, *extra)

    def _project(self, pre, post, n_pre: int, n_post: int, model: str):
        """All-to-all within each sample; synapse order (sample, post unit, pre unit), so that the
        weights of sample s are ``M.ravel()`` for the (n_post x n_pre) matrix M."""
        nb = self.batch
        s, j, m = np.meshgrid(np.arange(nb), np.arange(n_post), np.arange(n_pre), indexing="ij")
        i_pre = (s * n_pre + m).ravel()
        i_post = (s * n_post + j).ravel()
        S = b2.Synapses(pre, post, model, method="euler", clock=self._clock)
        S.connect(i=i_pre, j=i_post)
        if not (np.array_equal(S.i[:], i_pre) and np.array_equal(S.j[:], i_post)):
            raise RuntimeError("Brian2 reordered the synapses; weights could not be mapped")
        return S

    # ---- parameters ---------------------------------------------------------------------------
    def set_params(self, params: Params) -> None:
        """Copy W, b, B, G, c, H into the synapses and groups (float64)."""
        L = len(self.layers)
        for i in range(L):
            _values(self.S_W[i], "w")[:] = np.tile(np.asarray(params.W[i], float).ravel(), self.batch)
            _values(self.layers[i], "b")[:] = np.tile(np.asarray(params.b[i], float), self.batch)
        for i in range(L - 1):
            _values(self.S_B[i], "w")[:] = np.tile(np.asarray(params.B[i], float).ravel(), self.batch)
            _values(self.S_G[i], "w")[:] = np.tile(np.asarray(params.G[i], float).ravel(), self.batch)
            _values(self.S_H[i], "w")[:] = np.tile(np.asarray(params.H[i], float).ravel(), self.batch)
            _values(self.ghosts[i], "c")[:] = np.tile(np.asarray(params.c[i], float), self.batch)

    def params(self) -> Params:
        """The weights now in the synapses, as :class:`Params` (float64), read from sample 0's copy."""
        n = self.config.sizes
        L = len(self.layers)

        def mat(S, rows, cols):
            return _values(S, "w")[: rows * cols].reshape(rows, cols).copy()

        return Params(
            [mat(self.S_W[i], n[i + 1], n[i]) for i in range(L)],
            [_values(self.layers[i], "b")[: n[i + 1]].copy() for i in range(L)],
            [mat(self.S_B[i], n[i + 1], n[i + 2]) for i in range(L - 1)],
            [mat(self.S_G[i], n[i + 2], n[i + 1]) for i in range(L - 1)],
            [_values(self.ghosts[i], "c")[: n[i + 2]].copy() for i in range(L - 1)],
            [mat(self.S_H[i], n[i + 1], n[i + 2]) for i in range(L - 1)],
        )

    def _copy_weights(self) -> None:
        """The slow copy of docs/model.md §5 (mechanism copy) and §6 (symmetric feedback), after each
        continuous weight update, as :meth:`Params.sync` does."""
        n = self.config.sizes
        for i in range(len(self.layers) - 1):
            W = _values(self.S_W[i + 1], "w").reshape(n[i + 2], n[i + 1])
            if self.config.feedback == "symmetric":
                _values(self.S_B[i], "w")[:] = W.T.ravel()
            _values(self.S_H[i], "w")[:] = _values(self.S_B[i], "w")
            _values(self.S_G[i], "w")[:] = W.ravel()
            _values(self.ghosts[i], "c")[:] = _values(self.layers[i + 1], "b")

    # ---- running ------------------------------------------------------------------------------
    def reset(self) -> None:
        """All potentials to zero (ghosts and partners start matched, docs/model.md §3)."""
        for g in self.layers:
            _values(g, "u")[:] = 0.0
        for g in self.ghosts:
            _values(g, "v")[:] = 0.0

    def run_phase(self, x: np.ndarray, y: np.ndarray | None = None, beta: float = 0.0,
                  n_steps: int | None = None, lr: float = 0.0) -> BrianPhase:
        """Integrate one phase of ``n_steps`` Euler steps (default ``config.steps``) from the
        current state; ``y`` (batch x n_L) switches the target current on with strength ``beta``.
        ``lr`` (per ghostnet time unit) is the continuous learning rate ``eta / (beta tau_w)``."""
        cfg = self.config
        nb = self.batch
        steps = cfg.steps if n_steps is None else n_steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ConfigError("steps", f"must be an integer >= 1, got {steps!r}")
        x = _batch_array("x", x, nb, cfg.sizes[0])
        _values(self.input, "r")[:] = x.ravel()
        out = self.layers[-1]
        if y is None:
            _values(out, "nudge")[:] = 0.0
            _values(out, "beta")[:] = 0.0
        else:
            _values(out, "y")[:] = _batch_array("y", y, nb, cfg.sizes[-1]).ravel()
            _values(out, "nudge")[:] = 1.0
            _values(out, "beta")[:] = float(beta)
        if self.plastic:
            rate = lr / float(TIME_UNIT_MS * b2.ms)  # per second, the unit Brian2 stores
            for lay in self.layers:
                _values(lay, "lr")[:] = rate
        t0 = float(self.network.t / self.dt)
        with _target(self.target):
            self.network.run(int(steps) * self.dt, namespace={})
        done = int(round(float(self.network.t / self.dt) - t0))
        if done != steps:
            raise RuntimeError(f"Brian2 ran {done} steps instead of {steps}")
        return self.read()

    def read(self) -> BrianPhase:
        """The present state: u, v, t, e and r per layer (batch-major arrays)."""
        n = self.config.sizes
        nb = self.batch
        L = len(self.layers)
        u = [_values(self.layers[i], "u").reshape(nb, n[i + 1]).copy() for i in range(L)]
        v = [_values(self.ghosts[i], "v").reshape(nb, n[i + 2]).copy() for i in range(L - 1)]
        with _target("numpy"):
            t = [np.asarray(self.layers[i].td[:]).reshape(nb, n[i + 1]) for i in range(L)]
            e = [np.asarray(self.layers[i].err[:]).reshape(nb, n[i + 1]) for i in range(L)]
            r = [np.asarray(self.layers[i].r[:]).reshape(nb, n[i + 1]) for i in range(L)]
        return BrianPhase(State(u, v), t, e, r)

    def phases(self, x: np.ndarray, y: np.ndarray, beta: float | None = None,
               n_steps: int | None = None) -> BrianPhases:
        """Free phase from zero potentials, then the nudged phase from where it ended (docs/model.md
        §7), and the synapses' end-of-phase updates (docs/model.md §4, with the free-phase error as the
        baseline when ``config.baseline``). Not for a ``plastic`` network (see
        :meth:`continuous_phases`)."""
        if self.plastic:
            raise ValueError("this network was built with continuous plasticity: use "
                             "continuous_phases")
        beta = self.config.beta if beta is None else float(beta)
        k = scale(self.config, beta)
        self.reset()
        free = self.run_phase(x, None, 0.0, n_steps)
        for i, lay in enumerate(self.layers):
            _values(lay, "err_free")[:] = free.e[i].ravel() if self.config.baseline else 0.0
        nudged = self.run_phase(x, y, beta, n_steps)
        for S in self.S_W:
            _values(S, "k")[:] = k
        out = BrianPhases(np.asarray(x, float), np.asarray(y, float), beta, free, nudged)
        out.update = self.update()
        return out

    def update(self) -> Update:
        """Batch mean of the forward synapses' own end-of-phase updates ``dw`` and of
        ``db = (1/beta)(e - e_free)`` in the present state (after :meth:`phases`)."""
        n = self.config.sizes
        nb = self.batch
        dW, db = [], []
        with _target("numpy"):
            for i, S in enumerate(self.S_W):
                dw = np.asarray(S.dw[:]).reshape(nb, n[i + 1], n[i])
                dW.append(dw.mean(axis=0))
                lay = self.layers[i]
                err = np.asarray(lay.err[:]) - _values(lay, "err_free")
                db.append(float(_values(S, "k")[0]) * err.reshape(nb, n[i + 1]).mean(axis=0))
        return Update(dW, db, [])

    def continuous_phases(self, x: np.ndarray, y: np.ndarray, eta: float, tau_w: float = 1.0,
                          beta: float | None = None, plastic_free: bool = True,
                          n_steps: int | None = None) -> BrianPhases:
        """One sample (x: n_0 or 1 x n_0) with the continuous plasticity of docs/model.md §4 on, as
        :meth:`GhostNetwork.continuous_phases`: free phase from zero potentials (plastic when
        ``plastic_free``, where it must learn nothing) then nudged phase. The weights stay in the
        synapses; read them with :meth:`params`."""
        if not self.plastic:
            raise ValueError("build the network with plastic=True for continuous plasticity")
        beta = self.config.beta if beta is None else float(beta)
        lr = eta * scale(self.config, beta) / tau_w
        self.reset()
        free = self.run_phase(x, None, 0.0, n_steps, lr=lr if plastic_free else 0.0)
        nudged = self.run_phase(x, y, beta, n_steps, lr=lr)
        return BrianPhases(np.asarray(x, float), np.asarray(y, float), beta, free, nudged)


# ---- helpers ------------------------------------------------------------------------------------------
def _values(group, name: str) -> np.ndarray:
    """The array behind a Brian2 variable (runtime device): reads and in-place writes, no copy."""
    return group.variables[name].get_value()


def _batch_array(name: str, a, batch: int, width: int) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.ndim == 1:
        a = a[None, :]
    if a.shape != (batch, width):
        raise ValueError(f"{name} must have shape ({batch}, {width}), got {a.shape}")
    return a


def _check_supported(cfg: ModelConfig) -> None:
    """The Brian2 backend covers docs/model.md §2 with the copy mechanism; name what it does not."""
    wants = {"mechanism": ("copy",), "feedback": ("symmetric", "random"), "output": ("nudge",),
             "cost": ("mse",), "method": ("euler",), "mode": ("dynamics",)}
    for field_name, allowed in wants.items():
        value = getattr(cfg, field_name)
        if value not in allowed:
            raise ConfigError(field_name, f"the Brian2 backend supports {', '.join(allowed)}, "
                                          f"got {value!r}")


# ---- cross-validation against the Numba engine -----------------------------------------------------
def rel_diff(a: np.ndarray, ref: np.ndarray) -> float:
    """Largest absolute difference relative to the largest magnitude of the reference:
    ``max|a - ref| / max|ref|`` (0 when both are zero)."""
    a, ref = np.asarray(a, float), np.asarray(ref, float)
    scale_ = np.abs(ref).max(initial=0.0)
    diff = np.abs(a - ref).max(initial=0.0)
    if scale_ == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return float(diff / scale_)
