"""The ghost-unit network (docs/model.md §1-§5, §7): phases, local errors and learning.

A :class:`GhostNetwork` holds a configuration and parameters. Each sample of a batch is an
independent copy of the network, integrated in parallel (batch x units arrays).

Example::

    net = GhostNetwork(ModelConfig(sizes=[20, 30, 5], beta=1e-3))
    out = net.phases(x, y)          # free phase, then nudged phase
    upd = net.update(out)           # local plasticity (docs/model.md §4)
    net.apply(upd, lr=0.1)          # plain SGD step
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ghostnet.engines.base import Engine, engine_for
from ghostnet.model.config import ModelConfig
from ghostnet.model.params import Params
from ghostnet.model.plasticity import Update, scale, sgd_step
from ghostnet.model.state import Currents, PhaseResult, Recording, State, currents, prediction


@dataclass
class PhasePair:
    """Outcome of a free and a nudged phase on one batch."""

    x: np.ndarray
    y: np.ndarray
    beta: float
    free: State
    nudged: State
    free_result: PhaseResult
    nudged_result: PhaseResult
    free_currents: Currents
    nudged_currents: Currents
    update: Update | None = None
    """The local update taken from this pair (set by :meth:`GhostNetwork.step`)."""

    @property
    def prediction(self) -> np.ndarray:
        """The network's prediction at the end of the free phase (batch x n_L): the output
        rates, or with ``cost = 'cross_entropy'`` the probabilities ``softmax(u_L)``."""
        return self.free_currents.p


class GhostNetwork:
    """A ghost-unit network; see the module docstring."""

    def __init__(self, config: ModelConfig, params: Params | None = None):
        config.validate()
        self.config = config
        self.params = Params.init(config) if params is None else params
        self.params.check(config)
        self.params.tie(config)  # copies share their source's array; learned ones own theirs
        self.engine: Engine = engine_for(config)

    @property
    def first_order_from_start(self) -> bool:
        """Learned ghosts with one down pass a phase (``eq_max_iter = 1``, equilibrium mode): the
        free phase is then the feedforward pass plus one down pass, not a fixed point, and its
        uncancelled residual would differ between the phases by more than the nudge unless the
        nudged pass starts from the same feedforward rates (docs/model.md §8)."""
        c = self.config
        return c.mechanism == "learned" and c.mode == "equilibrium" and c.eq_max_iter == 1

    # ---- inputs -----------------------------------------------------------------------------
    def _inputs(self, x: np.ndarray, y: np.ndarray | None = None):
        cfg = self.config
        x = np.asarray(x, dtype=cfg.dtype)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim > 2 and x.shape[1:] == tuple(cfg.shapes[0]):
            x = x.reshape(x.shape[0], -1)  # images: flat rows, the engine shapes them
        if x.ndim != 2 or x.shape[1] != cfg.sizes[0]:
            raise ValueError(f"x must have shape (batch, {cfg.sizes[0]}), got {x.shape}")
        if y is not None:
            y = np.asarray(y, dtype=cfg.dtype)
            if y.ndim == 1:
                y = y[None, :]
            if y.shape != (x.shape[0], cfg.sizes[-1]):
                raise ValueError(f"y must have shape ({x.shape[0]}, {cfg.sizes[-1]}), got {y.shape}")
            if cfg.cost == "cross_entropy" and not (
                    np.all(y >= 0) and np.allclose(y.sum(axis=1), 1.0, rtol=0, atol=1e-6)):
                raise ValueError("with cost = 'cross_entropy' every row of y must be a probability "
                                 "vector (entries >= 0 summing to 1), e.g. one-hot")
        return x, y

    # ---- phases -----------------------------------------------------------------------------
    def free_phase(
        self, x: np.ndarray, state: State | None = None, record: Recording | None = None,
        on_step=None, n_steps: int | None = None, drive: np.ndarray | None = None,
        keep: dict | None = None,
    ) -> tuple[State, PhaseResult]:
        """Free phase (no target) from ``state`` (default: all potentials zero, so ghosts and their
        partners start matched, docs/model.md §3). Returns the final state and what the phase did.
        ``keep``: equilibrium mode's hand-over dict (:func:`ghostnet.engines.numba_equilibrium.settle`)."""
        x, _ = self._inputs(x)
        state = State.zeros(self.config, x.shape[0]) if state is None else state
        res = self.engine.settle(self.params, state, x, drive=drive, keep=keep, record=record,
                                 on_step=on_step, n_steps=n_steps)
        return state, res

    def nudged_phase(
        self, state: State, x: np.ndarray, y: np.ndarray, beta: float | None = None,
        record: Recording | None = None, on_step=None, n_steps: int | None = None,
        drive: np.ndarray | None = None, keep: dict | None = None,
    ) -> PhaseResult:
        """Nudged phase in place on ``state``: the target ``y`` drives the output with ``beta``.
        Ghosts of mechanism 'replicate' hold their last output (docs/model.md §5). ``keep``:
        equilibrium mode's hand-over dict (:func:`ghostnet.engines.numba_equilibrium.settle`)."""
        x, y = self._inputs(x, y)
        beta = self.config.beta if beta is None else beta
        hold = self.config.mechanism == "replicate"
        return self.engine.settle(self.params, state, x, y, beta, hold_ghosts=hold, drive=drive,
                                  keep=keep, record=record, on_step=on_step, n_steps=n_steps)

    def phases(self, x: np.ndarray, y: np.ndarray, beta: float | None = None,
               record: Recording | None = None) -> PhasePair:
        """A free phase then a nudged phase starting where the free one ended (docs/model.md §7)."""
        x, y = self._inputs(x, y)
        beta = self.config.beta if beta is None else beta
        eng, p = self.engine, self.params
        drive = eng.drive(p, x)  # W_1 x + b_1: once per presentation
        # an engine that hands over what it computed (equilibrium mode: the free phase's
        # bottom-up inputs start the nudged phase; rates, ghost rates and top-down inputs give the
        # errors) gets dicts to fill
        kf = {} if eng.hands_over else None
        free, fres = self.free_phase(x, record=record, drive=drive, keep=kf)
        fcur = eng.currents(p, free, None, 0.0, drive=drive, keep=kf)
        nudged = free.copy()
        kn = None if kf is None else {"a": kf["a"], "r": kf["r"], "g": kf["g"]}
        if kn is not None and self.first_order_from_start:
            # learned ghosts, one down pass a phase (eq_max_iter = 1): the nudged pass starts
            # where the free one did, so that the two differ by the nudge alone (docs/model.md §8)
            kn["r"] = kf.get("r_start", kf["r"])
        nres = self.nudged_phase(nudged, x, y, beta, record=record, drive=drive, keep=kn)
        ncur = eng.currents(p, nudged, y, beta, drive=drive, keep=kn)
        return PhasePair(x, y, beta, free, nudged, fres, nres, fcur, ncur)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The prediction without target (batch x n_L): the output rates ``phi(u_L)``, or with
        ``cost = 'cross_entropy'`` the probabilities ``softmax(u_L)`` (:func:`prediction`)."""
        x, _ = self._inputs(x)
        state, _ = self.free_phase(x)
        return prediction(self.config, state.u[-1])

    # ---- learning ---------------------------------------------------------------------------
    def update(self, pair: PhasePair) -> Update:
        """End-of-phase local update (docs/model.md §4) from a phase pair, eta = 1, batch mean.
        With ``config.baseline`` the error is taken relative to the free phase's."""
        pre = [pair.x] + pair.nudged_currents.r[:-1]
        e_free = pair.free_currents.e if self.config.baseline else None
        return self.engine.weight_update(pair.nudged_currents.e, pre, pair.beta, e_free)

    def apply(self, update: Update, lr: float | list[float]) -> None:
        """Plain SGD step along ``update`` (in place), then keep derived weights in step."""
        sgd_step(self.config, self.params, update, lr)

    def step(self, x: np.ndarray, y: np.ndarray, lr: float | list[float],
             apply=None) -> PhasePair:
        """One training step on a batch: phases, local update, SGD. Returns the phase pair.
        Mechanism 'learned': the ghosts learn from the free phase (docs/model.md §5), and from the
        nudged phase too when ``gate_ghosts`` is off. ``apply(update, lr)``, if given, replaces
        the plain SGD step (an optimizer; it must keep the derived weights in step)."""
        pair = self.phases(x, y)
        pair.update = self.update(pair)
        (apply or self.apply)(pair.update, lr)
        if self.config.mechanism == "learned":
            from ghostnet.network.mechanisms import ghost_plasticity

            ghost_plasticity(self, pair.free, pair.x)
            ghost_plasticity(self, pair.nudged, pair.x, pair.y, pair.beta)  # gated: no-op
        return pair

    def continuous_phases(
        self, x: np.ndarray, y: np.ndarray, eta: float, tau_w: float = 1.0,
        beta: float | None = None, plastic_free: bool = True,
    ) -> PhasePair:
        """Free and nudged phase with the continuous plasticity of docs/model.md §4 integrated alongside
        the dynamics (Euler on the weights, the network's step): after every step
        ``W_l += (dt / tau_w) (eta / beta) mean_batch[e_l(t) r_{l-1}(t)^T]`` (and b), then the derived
        weights are kept in step. With ``plastic_free`` the plasticity is also on during the free
        phase, where it must learn nothing (e = 0 without target). Dynamics mode only."""
        if self.config.mode != "dynamics":
            raise ValueError("continuous plasticity integrates the dynamics: use mode = 'dynamics'")
        x, y = self._inputs(x, y)
        beta = self.config.beta if beta is None else beta
        k = scale(self.config, beta)
        cfg, p = self.config, self.params
        h = cfg.dt / tau_w * eta * k

        def plastic(target):
            def on_step(state: State) -> None:
                cur = currents(cfg, p, state, target, beta if target is not None else 0.0, x)
                pre = [x] + cur.r[:-1]
                n = x.shape[0]
                for i in range(len(p.W)):
                    p.W[i] += h * (cur.e[i].T @ pre[i]) / n
                    p.b[i] += h * cur.e[i].mean(axis=0)
                p.sync(cfg)
            return on_step

        free, fres = self.free_phase(x, on_step=plastic(None) if plastic_free else None)
        fcur = currents(cfg, p, free, None, 0.0, x)
        nudged = free.copy()
        nres = self.nudged_phase(nudged, x, y, beta, on_step=plastic(y))
        ncur = currents(cfg, p, nudged, y, beta, x)
        return PhasePair(x, y, beta, free, nudged, fres, nres, fcur, ncur)

    # ---- storage ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Parameters and configuration as one .npz (atomic write)."""
        return self.params.save(path, self.config)

    @classmethod
    def load(cls, path: str | Path) -> "GhostNetwork":
        params, config = Params.load(path)
        return cls(config, params)
