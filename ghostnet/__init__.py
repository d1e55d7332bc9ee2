"""ghostnet: biologically plausible deep learning with ghost units (see docs/model.md)."""
import os as _os

# The kernels alternate Numba's OpenMP threads with BLAS's own threads; with the default active
# waiting the idle pool spins on the cores the other needs (measured: 4.5x slower on 2 cores).
# Set before the OpenMP runtime loads; a user's own setting is kept.
OMP_PASSIVE_SET_BY_GHOSTNET = "OMP_WAIT_POLICY" not in _os.environ
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
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
