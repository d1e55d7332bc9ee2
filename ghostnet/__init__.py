"""ghostnet: biologically plausible deep learning with ghost units (see MODEL.md)."""
import os as _os

# The kernels alternate Numba's OpenMP threads with BLAS's own threads; with the default active
# waiting the idle pool spins on the cores the other needs (measured: 4.5x slower on 2 cores).
# Set before the OpenMP runtime loads; a user's own setting is kept.
OMP_PASSIVE_SET_BY_GHOSTNET = "OMP_WAIT_POLICY" not in _os.environ
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Likewise OpenBLAS's idle threads spin for 2^28 cycles (~0.1 s) after each call, taking the cores
# from Numba's threads between the products of a dynamics step; 2^4 lets them sleep at once
# (784-500-500-10, 50 steps: 57 instead of 69 ms in float32, 74 instead of 91 ms in float64; no
# change in equilibrium mode). Read when OpenBLAS first starts its threads, so this works as long
# as no threaded BLAS call ran before ghostnet was imported; a user's own setting is kept.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
from ghostnet.config import ConfigError, ModelConfig
from ghostnet.dynamics import BlowUpError, Integrator, PhaseResult, Recording, State, currents
from ghostnet.gradcheck import gradcheck, random_batch
from ghostnet.metrics import angle_deg, layer_alignment, norm_ratio
from ghostnet.network import GhostNetwork, PhasePair
from ghostnet.params import Params
from ghostnet.plasticity import Update, end_of_phase, sgd_step

__version__ = "0.1.0"

__all__ = [
    "BlowUpError", "ConfigError", "GhostNetwork", "Integrator", "ModelConfig", "Params",
    "PhasePair", "PhaseResult", "Recording", "State", "Update", "angle_deg", "currents",
    "end_of_phase", "gradcheck", "layer_alignment", "norm_ratio", "random_batch", "sgd_step",
    "__version__",
]
