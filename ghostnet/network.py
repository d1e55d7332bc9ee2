"""The ghost-unit network (MODEL.md §1-§5, §7): phases, local errors and learning.

A :class:`GhostNetwork` holds a configuration and parameters. Each sample of a batch is an
independent copy of the network, integrated in parallel (batch x units arrays).

Example::

    net = GhostNetwork(ModelConfig(sizes=[20, 30, 5], beta=1e-3))
    out = net.phases(x, y)          # free phase, then nudged phase
    upd = net.update(out)           # local plasticity (MODEL.md §4)
    net.apply(upd, lr=0.1)          # plain SGD step
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ghostnet import equilibrium
from ghostnet.config import ModelConfig
from ghostnet.dynamics import Currents, Integrator, PhaseResult, Recording, State, currents
from ghostnet.params import Params
from ghostnet.plasticity import Update, end_of_phase, scale, sgd_step
from ghostnet.transfer import phi


def _handed(keep: dict | None) -> dict:
    """What an equilibrium phase handed over, as :func:`currents` takes it (nothing otherwise)."""
    if keep is None:
        return {}
    return {k: keep[k] for k in ("t", "r", "g", "e") if keep.get(k) is not None}


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

    @property
    def prediction(self) -> np.ndarray:
        """Output rates at the end of the free phase (batch x n_L)."""
        return self.free_currents.r[-1]


class GhostNetwork:
    """A ghost-unit network; see the module docstring."""

    def __init__(self, config: ModelConfig, params: Params | None = None):
        config.validate()
        self.config = config
        self.params = Params.init(config) if params is None else params
        self.params.check(config)
        self.params.tie(config)  # copies share their source's array; learned ones own theirs
        self.integrator = Integrator(config)

    # ---- inputs -----------------------------------------------------------------------------
    def _inputs(self, x: np.ndarray, y: np.ndarray | None = None):
        cfg = self.config
        x = np.asarray(x, dtype=cfg.dtype)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != cfg.sizes[0]:
            raise ValueError(f"x must have shape (batch, {cfg.sizes[0]}), got {x.shape}")
        if y is not None:
            y = np.asarray(y, dtype=cfg.dtype)
            if y.ndim == 1:
                y = y[None, :]
            if y.shape != (x.shape[0], cfg.sizes[-1]):
                raise ValueError(f"y must have shape ({x.shape[0]}, {cfg.sizes[-1]}), got {y.shape}")
        return x, y

    # ---- phases -----------------------------------------------------------------------------
    def free_phase(
        self, x: np.ndarray, state: State | None = None, record: Recording | None = None,
        on_step=None, n_steps: int | None = None, drive: np.ndarray | None = None,
        keep: dict | None = None,
    ) -> tuple[State, PhaseResult]:
        """Free phase (no target) from ``state`` (default: all potentials zero, so ghosts and their
        partners start matched, MODEL.md §3). Returns the final state and what the phase did.
        ``keep``: equilibrium mode's hand-over dict (:func:`ghostnet.equilibrium.settle`)."""
        x, _ = self._inputs(x)
        state = State.zeros(self.config, x.shape[0]) if state is None else state
        if self.config.mode == "equilibrium":
            res = equilibrium.settle(self.config, self.params, state, x, drive=drive, keep=keep)
        else:
            if drive is None or on_step is not None:
                drive = self.integrator.drive(self.params, x)
            res = self.integrator.run(self.params, state, drive, record=record, on_step=on_step,
                                      n_steps=n_steps, x=x)
        return state, res

    def nudged_phase(
        self, state: State, x: np.ndarray, y: np.ndarray, beta: float | None = None,
        record: Recording | None = None, on_step=None, n_steps: int | None = None,
        drive: np.ndarray | None = None, keep: dict | None = None,
    ) -> PhaseResult:
        """Nudged phase in place on ``state``: the target ``y`` drives the output with ``beta``.
        Ghosts of mechanism 'replicate' hold their last output (MODEL.md §5). ``keep``:
        equilibrium mode's hand-over dict (:func:`ghostnet.equilibrium.settle`)."""
        x, y = self._inputs(x, y)
        beta = self.config.beta if beta is None else beta
        hold = self.config.mechanism == "replicate"
        if self.config.mode == "equilibrium":
            return equilibrium.settle(self.config, self.params, state, x, y, beta, hold_ghosts=hold,
                                      drive=drive, keep=keep)
        if drive is None or on_step is not None:
            drive = self.integrator.drive(self.params, x)
        return self.integrator.run(self.params, state, drive, y, beta, hold_ghosts=hold,
                                   record=record, on_step=on_step, n_steps=n_steps, x=x)

    def phases(self, x: np.ndarray, y: np.ndarray, beta: float | None = None,
               record: Recording | None = None) -> PhasePair:
        """A free phase then a nudged phase starting where the free one ended (MODEL.md §7)."""
        x, y = self._inputs(x, y)
        beta = self.config.beta if beta is None else beta
        drive = self.integrator.drive(self.params, x)  # W_1 x + b_1: once per presentation
        cfg, p = self.config, self.params
        # equilibrium mode: the solver hands over what it computed (the free phase's bottom-up
        # inputs start the nudged phase; rates, ghost rates and top-down inputs give the errors)
        kf = {} if cfg.mode == "equilibrium" else None
        free, fres = self.free_phase(x, record=record, drive=drive, keep=kf)
        fcur = currents(cfg, p, free, None, 0.0, drive=drive, **_handed(kf))
        nudged = free.copy()
        kn = None if kf is None else {"a": kf["a"], "r": kf["r"], "g": kf["g"]}
        nres = self.nudged_phase(nudged, x, y, beta, record=record, drive=drive, keep=kn)
        ncur = currents(cfg, p, nudged, y, beta, drive=drive, **_handed(kn))
        return PhasePair(x, y, beta, free, nudged, fres, nres, fcur, ncur)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Output rates without target (batch x n_L)."""
        x, _ = self._inputs(x)
        state, _ = self.free_phase(x)
        return phi(state.u[-1], self.config.transfer)

    # ---- learning ---------------------------------------------------------------------------
    def update(self, pair: PhasePair) -> Update:
        """End-of-phase local update (MODEL.md §4) from a phase pair, eta = 1, batch mean.
        With ``config.baseline`` the error is taken relative to the free phase's."""
        pre = [pair.x] + pair.nudged_currents.r[:-1]
        e_free = pair.free_currents.e if self.config.baseline else None
        return end_of_phase(self.config, pair.nudged_currents.e, pre, pair.beta, e_free)

    def apply(self, update: Update, lr: float | list[float]) -> None:
        """Plain SGD step along ``update`` (in place), then keep derived weights in step."""
        sgd_step(self.config, self.params, update, lr)

    def step(self, x: np.ndarray, y: np.ndarray, lr: float | list[float]) -> PhasePair:
        """One training step on a batch: phases, local update, SGD. Returns the phase pair.
        Mechanism 'learned': the ghosts learn from the free phase (MODEL.md §5), and from the
        nudged phase too when ``gate_ghosts`` is off."""
        pair = self.phases(x, y)
        self.apply(self.update(pair), lr)
        if self.config.mechanism == "learned":
            from ghostnet.mechanisms import ghost_plasticity

            ghost_plasticity(self, pair.free, pair.x)
            ghost_plasticity(self, pair.nudged, pair.x, pair.y, pair.beta)  # gated: no-op
        return pair

    def continuous_phases(
        self, x: np.ndarray, y: np.ndarray, eta: float, tau_w: float = 1.0,
        beta: float | None = None, plastic_free: bool = True,
    ) -> PhasePair:
        """Free and nudged phase with the continuous plasticity of MODEL.md §4 integrated alongside
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
