"""ghostnet: biologically plausible deep learning with ghost units (see docs/model.md)."""
import os as _os

# OMP_WAIT_POLICY is left as the user has it. No Numba kernel runs threads any more, so nothing of
# ghostnet's own spins against BLAS; setting PASSIVE (as this package did until 2026-11-30) made
# torch's OpenMP threads sleep between operations: a plain torch training epoch (784-500-10, batch
# 100, 10,000 samples) took 0.37-0.45 s instead of 0.23-0.26 s, while the ghost epochs did not
# change beyond the noise (equilibrium 0.32-0.41 s, dynamics 1.60-1.79 s either way).
# OpenBLAS's idle threads are left to spin for their default time (OPENBLAS_THREAD_TIMEOUT 2^28
# cycles): letting them sleep at once (2^4; this package's setting until 2026-11-26) no longer helps
# the dynamics kernels (784-500-500-10, 50 steps, float32: 48 against 46 ms, medians of 5
# alternating processes) and costs equilibrium mode up to ~5% (each product then wakes a
# sleeping thread).


def _keep_freed_memory() -> bool:
    """:func:`ghostnet.runtime.set_malloc_thresholds` at import, unless the user set
    MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_, or GHOSTNET_KEEP_MALLOC=1, or off Linux."""
    import sys

    from ghostnet.runtime import set_malloc_thresholds

    if not sys.platform.startswith("linux") or _os.environ.get("GHOSTNET_KEEP_MALLOC") == "1":
        return False
    if any(k in _os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    return set_malloc_thresholds()


MALLOC_TUNED_BY_GHOSTNET = _keep_freed_memory()
from ghostnet.errors import (CheckpointError, DivergenceError, GhostnetError, GhostnetWarning,
                             RunDirError)
from ghostnet.model.config import ConfigError, ModelConfig
from ghostnet.engines.numba_dynamics import Integrator
from ghostnet.model.state import BlowUpError, PhaseResult, Recording, State, currents
from ghostnet.checks.gradcheck import gradcheck, random_batch
from ghostnet.checks.metrics import angle_deg, layer_alignment, norm_ratio
from ghostnet.network.network import GhostNetwork, PhasePair
from ghostnet.model.params import Params
from ghostnet.model.plasticity import Update, end_of_phase, sgd_step

from ghostnet.version import __version__  # noqa: E402

__all__ = [
    "BlowUpError", "CheckpointError", "ConfigError", "DivergenceError", "GhostnetError",
    "GhostnetWarning", "RunDirError", "GhostNetwork", "Integrator", "ModelConfig", "Params",
    "PhasePair", "PhaseResult", "Recording", "State", "Update", "angle_deg", "currents",
    "end_of_phase", "gradcheck", "layer_alignment", "norm_ratio", "random_batch", "sgd_step",
    "__version__",
]
