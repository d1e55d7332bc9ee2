"""How many threads a run's numerical libraries may use: BLAS and OpenMP (threadpoolctl), Numba's
parallel kernels and torch's intra-op pool.

Two busy ghostnet processes on one machine fight for the cores when each lets its libraries start
a thread per core (docs/sweeps.md, "Threads"); :func:`limit_threads` bounds them for the duration
of a run. ``0`` means the libraries' own default: every core, unless the process was started with
its pools bounded (``OMP_NUM_THREADS`` and the like, :func:`env_threads`), which is then kept. That
suits a single run; a sweep gives each of its single-threaded workers ``1``.

Numba cannot go above the thread count it started with (``NUMBA_NUM_THREADS``, by default the
number of cores), and a BLAS library that initialised single-threaded (``OPENBLAS_NUM_THREADS=1``
in its environment) may not go above it either; both are left at their ceiling then.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from ghostnet.model.config import ConfigError

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
              "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
"""Environment variables that fix the thread pools' sizes when a process starts."""


def cores() -> int:
    """The cores this process may run on (its CPU affinity, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def env_threads() -> int | None:
    """The thread bound this process's environment sets (the smallest positive integer among
    :data:`THREAD_ENV`'s variables), or None when it sets none."""
    values = []
    for k in THREAD_ENV:
        try:
            n = int(os.environ.get(k, ""))
        except ValueError:
            continue
        if n > 0:
            values.append(n)
    return min(values) if values else None


def resolve(threads: int) -> int:
    """``threads`` as a thread count: ``0`` -> the environment's bound (:func:`env_threads`),
    else every core; a negative or non-integer value is a :class:`ConfigError` on field
    ``threads``."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ConfigError("threads", f"must be an integer >= 0 (0: every core), got {threads!r}")
    return threads or env_threads() or cores()


def thread_env(threads: int) -> dict[str, str]:
    """The environment that makes a new process start its thread pools at ``threads`` threads
    (for worker processes, before they import numpy)."""
    n = str(resolve(threads))
    return {k: n for k in THREAD_ENV}


@contextmanager
def limit_threads(threads: int) -> Iterator[int]:
    """Bound BLAS/OpenMP, Numba and torch to ``threads`` threads (0: every core, or the bound the
    environment set, :func:`resolve`) inside the block;
    the previous limits come back after it. Yields the thread count applied."""
    import numba
    import torch
    from threadpoolctl import threadpool_limits

    n = resolve(threads)
    numba_before, torch_before = numba.get_num_threads(), torch.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield n
    finally:
        numba.set_num_threads(numba_before)
        torch.set_num_threads(torch_before)
