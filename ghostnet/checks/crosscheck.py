"""The Brian2 cross-check: the same random network in Brian2 and in the Numba engine
(:mod:`ghostnet.engines.brian`), compared state by state and update by update."""
from __future__ import annotations

import numpy as np

from ghostnet.engines.brian import BrianGhostNetwork, BrianPhase, _check_supported, rel_diff
from ghostnet.model.config import ConfigError, ModelConfig
from ghostnet.model.state import State


def crosscheck(config: ModelConfig, batch: int = 4, target: str = "numpy",
               continuous: int = 0, eta: float = 0.5, tau_w: float = 1.0,
               rng: np.random.Generator | None = None) -> dict:
    """Run one random network in Brian2 and in the Numba engine with the same Euler step.

    The network (``config``, its seed) gets random biases as well (so that no term is trivially
    zero); a batch of ``batch`` uniform inputs and one-hot targets is drawn from ``rng`` (default:
    seeded by ``config.seed``). Returns the largest relative differences (:func:`rel_diff`, Numba
    as the reference) of u and v per layer at the end of each phase, of the end-of-phase updates
    dW, db (docs/model.md §4), and, with ``continuous`` > 0, of the weights after that many samples of
    continuous plasticity (learning rate ``eta``, ``tau_w``); plus each engine's wall time in
    seconds (Numba after a warm-up run; Brian2 split into build and one run, whose code generation,
    and compilation for cython, is included).
    """
    import time

    from ghostnet.network import GhostNetwork

    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError("batch", f"must be an integer >= 1, got {batch!r}")
    if isinstance(continuous, bool) or not isinstance(continuous, int) or continuous < 0:
        raise ConfigError("continuous", f"must be an integer >= 0, got {continuous!r}")
    _check_supported(config)
    rng = np.random.default_rng(config.seed) if rng is None else rng
    net = GhostNetwork(config)
    p = net.params
    for i in range(len(p.b)):
        p.b[i][...] = rng.normal(0.0, 0.5, size=p.b[i].shape)
    p.sync(config)
    start = net.params.copy()
    n = config.sizes
    x = rng.uniform(0.0, 1.0, size=(batch, n[0]))
    y = np.eye(n[-1])[rng.integers(0, n[-1], size=batch)]

    net.update(net.phases(x, y))  # warm-up: Numba compilation and caches
    t0 = time.perf_counter()
    pair = net.phases(x, y)
    ref = net.update(pair)
    t_numba = time.perf_counter() - t0

    t0 = time.perf_counter()
    bn = BrianGhostNetwork(net, batch=batch, target=target)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = bn.phases(x, y)
    t_brian = time.perf_counter() - t0

    def phase(b: BrianPhase, s: State) -> dict:
        d = {"u": [rel_diff(a, r) for a, r in zip(b.u, s.u)],
             "v": [rel_diff(a, r) for a, r in zip(b.v, s.v)]}
        d["max"] = max(d["u"] + d["v"])
        return d

    result = {
        "settings": {"sizes": list(n), "beta": config.beta, "feedback": config.feedback,
                     "mechanism": config.mechanism, "transfer": config.transfer, "dt": config.dt,
                     "steps": config.steps, "batch": batch, "seed": config.seed,
                     "target": target, "brian_dtype": "float64", "numba_dtype": config.dtype},
        "free": phase(out.free, pair.free),
        "nudged": phase(out.nudged, pair.nudged),
    }
    upd = {"dW": [rel_diff(a, r) for a, r in zip(out.update.dW, ref.dW)],
           "db": [rel_diff(a, r) for a, r in zip(out.update.db, ref.db)]}
    upd["max"] = max(upd["dW"] + upd["db"])
    result["update"] = upd
    times = {"numba_s": t_numba, "brian_build_s": t_build, "brian_run_s": t_brian}

    if continuous:
        net_c = GhostNetwork(config, start.copy())
        bc = BrianGhostNetwork(net_c, batch=1, target=target, plastic=True)
        xs = rng.uniform(0.0, 1.0, size=(continuous, n[0]))
        ys = np.eye(n[-1])[rng.integers(0, n[-1], size=continuous)]
        t0 = time.perf_counter()
        for xi, yi in zip(xs, ys):
            net_c.continuous_phases(xi, yi, eta=eta, tau_w=tau_w)
        times["numba_continuous_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for xi, yi in zip(xs, ys):
            bc.continuous_phases(xi, yi, eta=eta, tau_w=tau_w)
        times["brian_continuous_s"] = time.perf_counter() - t0
        got, want = bc.params(), net_c.params
        cont = {"samples": continuous, "eta": eta, "tau_w": tau_w,
                "W": [rel_diff(a, r) for a, r in zip(got.W, want.W)],
                "b": [rel_diff(a, r) for a, r in zip(got.b, want.b)],
                "dW": [rel_diff(a - s, r - s) for a, r, s in zip(got.W, want.W, start.W)],
                "db": [rel_diff(a - s, r - s) for a, r, s in zip(got.b, want.b, start.b)]}
        cont["max"] = max(cont["W"] + cont["b"] + cont["dW"] + cont["db"])
        result["continuous"] = cont
    result["time"] = times
    result["max_rel_diff"] = max(result["free"]["max"], result["nudged"]["max"], upd["max"])
    return result
