"""The interface between the network and an engine.

An engine settles one phase of the network on a batch and hands back what the local learning
rule needs. :class:`ghostnet.network.GhostNetwork` talks to its engine through these three
methods only:

- :meth:`Engine.drive` -- the input drive ``W_1 x + b_1`` (batch x n_1), computed once per
  presentation and passed back to :meth:`Engine.settle`;
- :meth:`Engine.settle` -- one free (``y is None``) or nudged phase, in place on a
  :class:`~ghostnet.model.state.State`, returning a :class:`~ghostnet.model.state.PhaseResult`;
  the engine may fill ``keep``, a dict, with what it already computed (``"a"``, ``"r"``, ``"g"``,
  ``"t"``, ``"e"``: bottom-up inputs, rates, ghost rates, top-down inputs, local errors);
- :meth:`Engine.currents` -- the rates, top-down inputs and local errors of a settled state
  (:class:`~ghostnet.model.state.Currents`), taking what ``keep`` holds instead of recomputing it.

An engine is a module ``ghostnet.engines.<name>`` whose attribute ``ENGINE`` is an
:class:`Engine` subclass; ``[model] engine = "<name>"`` selects it (:func:`engine_for`). Adding an
engine is adding such a module; the network does not change.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod

import numpy as np

from ghostnet.kernels.linalg import affine
from ghostnet.model.config import ConfigError, ModelConfig
from ghostnet.model.params import Params
from ghostnet.model.plasticity import Update, end_of_phase
from ghostnet.model.state import Currents, PhaseResult, Recording, State, currents

HANDED = ("t", "r", "g", "e")
"""What :meth:`Engine.currents` takes from a phase's ``keep`` dict."""


class Engine(ABC):
    """Runs the phases of one configuration's network (see the module docstring)."""

    name: str = ""

    def __init__(self, config: ModelConfig):
        self.config = config

    @abstractmethod
    def drive(self, params: Params, x: np.ndarray) -> np.ndarray:
        """``W_1 x + b_1`` for inputs ``x`` (batch x n_0): batch x n_1."""

    @abstractmethod
    def settle(
        self, params: Params, state: State, x: np.ndarray, y: np.ndarray | None = None,
        beta: float = 0.0, *, hold_ghosts: bool = False, drive: np.ndarray | None = None,
        keep: dict | None = None, record: Recording | None = None, on_step=None,
        n_steps: int | None = None,
    ) -> PhaseResult:
        """Settle one phase in place on ``state``: free without ``y``, nudged towards ``y``
        (batch x n_L) with strength ``beta`` otherwise. ``hold_ghosts``: the ghosts keep their
        potentials (mechanism 'replicate' in the nudged phase). ``drive``: from :meth:`drive`.
        ``keep``: a dict the engine may fill (module docstring) or read (a nudged phase may start
        from the free phase's ``"a"``, ``"r"``, ``"g"``). ``record``, ``on_step`` and
        ``n_steps`` apply to engines that integrate in time; others refuse them."""

    def currents(
        self, params: Params, state: State, y: np.ndarray | None, beta: float, *,
        x: np.ndarray | None = None, drive: np.ndarray | None = None, keep: dict | None = None,
    ) -> Currents:
        """Rates, top-down inputs and local errors of a settled ``state`` (docs/model.md, "Local
        errors"), using whatever ``keep`` holds."""
        handed = {} if keep is None else {k: keep[k] for k in HANDED if keep.get(k) is not None}
        return currents(self.config, params, state, y, beta, x=x, drive=drive, **handed)

    @property
    def hands_over(self) -> bool:
        """Whether :meth:`settle` fills ``keep`` (then the network passes it dicts)."""
        return False

    # ---- the layers' maps, for learning and checks (dense numpy versions here) ----------------
    def weight_update(self, e: list[np.ndarray], pre: list[np.ndarray], beta: float,
                      e_free: list[np.ndarray] | None = None) -> Update:
        """The end-of-phase update of docs/model.md §4 from the errors ``e``, the pre-synaptic
        rates ``pre`` (the input first) and the free phase's errors (the baseline)."""
        return end_of_phase(self.config, e, pre, beta, e_free)

    def ghost_update(self, params: Params, cur: Currents):
        """The learned ghosts' updates of docs/model.md §5 before their learning rates, batch
        means: lists ``(dG, dc, dH)`` shaped like ``G``, ``c``, ``H``."""
        n = cur.r[0].shape[0]
        dG, dc, dH = [], [], []
        for i in range(len(params.G)):
            pred_err = cur.r[i + 1] - cur.ghost_rate[i]  # partner's rate minus the ghost's
            dG.append((pred_err.T @ cur.r[i]) / n)
            dc.append(pred_err.mean(axis=0))
            dH.append((cur.t[i].T @ cur.ghost_rate[i]) / n)
        return dG, dc, dH

    def feedback_input(self, params: Params, i: int, r_above: np.ndarray) -> np.ndarray:
        """The feedback ``B r_{i+2}`` into hidden layer i+1 (what the ghosts cancel)."""
        return r_above @ params.B[i].T

    def ghost_drive(self, params: Params, i: int, r: np.ndarray) -> np.ndarray:
        """The learned ghosts' potentials ``G_l r_l + c_l`` of hidden layer l = i+1 given its
        rates ``r`` (batch x n_l): batch x n_{l+1}."""
        return affine(r.reshape(len(r), -1), params.G[i], params.c[i])  # as the solver's ghosts

    def feedforward(self, params: Params, x: np.ndarray) -> np.ndarray:
        """The feedforward network's prediction (batch x n_L): the output rates, or the softmax
        probabilities with ``cost = 'cross_entropy'``."""
        from ghostnet.engines.numba_equilibrium import forward
        from ghostnet.model.state import prediction

        return prediction(self.config,
                          forward(self.config, params, np.asarray(x, self.config.dtype))[-1])


def available() -> list[str]:
    """Names of the engine modules in this package."""
    import pkgutil

    import ghostnet.engines as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)
                  if not m.name.startswith("_") and m.name not in ("base",)
                  and hasattr(importlib.import_module(f"ghostnet.engines.{m.name}"), "ENGINE"))


def engine_for(config: ModelConfig) -> Engine:
    """The engine ``config.engine`` names, set up for ``config``."""
    name = config.engine
    try:
        module = importlib.import_module(f"ghostnet.engines.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"ghostnet.engines.{name}":
            raise
        module = None
    cls = getattr(module, "ENGINE", None)
    if cls is None:
        raise ConfigError("engine", f"unknown engine {name!r}; available: {', '.join(available())}")
    return cls(config)
