"""The Numba engine: dynamics mode integrates the ODEs with Numba kernels
(:mod:`ghostnet.engines.numba_dynamics`); equilibrium mode solves for their fixed points
(:mod:`ghostnet.engines.numba_equilibrium`). Arrays are numpy, batch x units, on the CPU."""
from __future__ import annotations

import numpy as np

from ghostnet.engines import numba_equilibrium as equilibrium
from ghostnet.engines.base import Engine
from ghostnet.engines.numba_dynamics import Integrator
from ghostnet.model.params import Params
from ghostnet.model.state import PhaseResult, Recording, State


class NumbaEngine(Engine):
    """See the module docstring."""

    name = "numba"

    def __init__(self, config):
        super().__init__(config)
        self.integrator = Integrator(config)

    @property
    def hands_over(self) -> bool:
        return self.config.mode == "equilibrium"

    def drive(self, params: Params, x: np.ndarray) -> np.ndarray:
        return self.integrator.drive(params, x)

    def settle(self, params: Params, state: State, x: np.ndarray, y: np.ndarray | None = None,
               beta: float = 0.0, *, hold_ghosts: bool = False, drive: np.ndarray | None = None,
               keep: dict | None = None, record: Recording | None = None, on_step=None,
               n_steps: int | None = None) -> PhaseResult:
        if self.config.mode == "equilibrium":
            if record is not None or on_step is not None or n_steps is not None:
                raise ValueError("equilibrium mode does not integrate in time: record, on_step and "
                                 "n_steps need mode = 'dynamics'")
            return equilibrium.settle(self.config, params, state, x, y, beta,
                                      hold_ghosts=hold_ghosts, drive=drive, keep=keep)
        if drive is None or on_step is not None:
            drive = self.integrator.drive(params, x)
        return self.integrator.run(params, state, drive, y, beta, hold_ghosts=hold_ghosts,
                                   record=record, on_step=on_step, n_steps=n_steps, x=x)


ENGINE = NumbaEngine
