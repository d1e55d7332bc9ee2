"""The project's error types: one base class, :class:`GhostnetError`, for every failure that
ghostnet expects and explains (a bad configuration, bad data, a corrupt file, a run directory in
the wrong state, a diverging run). The command line turns each into one line naming the file or
field and an exit status (``exit_status``: 2, or 1 for a run that failed); any other exception is
a bug and keeps its traceback.

Each class also keeps the built-in base it had before (``ValueError``, ``FloatingPointError``,
``RuntimeError``), so code that catches those still works. :class:`ghostnet.model.config.ConfigError`,
:class:`ghostnet.learning.data.DataError`, :class:`ghostnet.model.state.BlowUpError` and
:class:`ghostnet.figures.figures.ResultsError` derive from :class:`GhostnetError` too.
"""
from __future__ import annotations


class GhostnetError(Exception):
    """An expected failure with a message that says what is wrong and where."""

    exit_status = 2


class CheckpointError(GhostnetError, ValueError):
    """A parameter file or checkpoint is missing, truncated, corrupt or inconsistent with its
    configuration (non-finite values, ties that the configuration defines broken)."""


class RunDirError(GhostnetError, RuntimeError):
    """A run directory cannot be used as asked: it holds another run, another process holds it,
    the stored configuration differs from the one given, or it cannot be written."""


class DivergenceError(GhostnetError, FloatingPointError):
    """A training run produced non-finite weights, outputs or updates; the message names the
    epoch, batch, learner and the likely cause. The run is marked failed."""

    exit_status = 1


class GhostnetWarning(UserWarning):
    """Something that makes results doubtful without stopping the run (phases that do not settle,
    updates that are all zero, float32 rounding at small beta, pre-training short of its
    tolerance)."""
