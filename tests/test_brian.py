"""Brian2 backend against the Numba engine, an independent implementation of docs/model.md §2
and §4: same network, same forward Euler step, float64.

Oracles: the Numba engine (``GhostNetwork`` with ``method = "euler"``) for the trajectories and the
updates; docs/model.md §3 property 1 (no top-down input at the end of a free phase with the copy
mechanism) as an analytic check on the Brian2 side alone.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from ghostnet import ConfigError, GhostNetwork, ModelConfig
from ghostnet.engines.brian import BrianGhostNetwork, cython_available, rel_diff

SIZES = [10, 8, 6, 4]
TOL = 1e-6  # u, v and end-of-phase updates agree to this
TOL_CONTINUOUS = 1e-5  # weights after continuous plasticity agree to this


def _network(feedback: str, rng: np.random.Generator, steps: int = 30) -> GhostNetwork:
    cfg = ModelConfig(sizes=SIZES, method="euler", dt=0.1, steps=steps, beta=0.1,
                      feedback=feedback, mechanism="copy", seed=int(rng.integers(2**31)))
    net = GhostNetwork(cfg)
    # non-zero biases, so that the bias terms of both engines are exercised
    for b in net.params.b:
        b[...] = rng.normal(0.0, 0.5, size=b.shape)
    net.params.sync(cfg)
    return net


def _batch(rng: np.random.Generator, batch: int):
    x = rng.uniform(0.0, 1.0, size=(batch, SIZES[0]))
    y = np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], size=batch)]
    return x, y


@pytest.mark.parametrize("feedback", ["symmetric", "random"])
def test_phases_and_end_of_phase_update_agree_with_numba(feedback, rng):
    net = _network(feedback, rng)
    x, y = _batch(rng, 3)
    pair = net.phases(x, y)
    ref = net.update(pair)

    out = BrianGhostNetwork(net, batch=3).phases(x, y)

    for name, got, want, cur in (("free", out.free, pair.free, pair.free_currents),
                                 ("nudged", out.nudged, pair.nudged, pair.nudged_currents)):
        for i, (a, b) in enumerate(zip(got.u, want.u)):
            assert a.shape == b.shape
            assert rel_diff(a, b) < TOL, f"{name} u layer {i + 1}"
        for i, (a, b) in enumerate(zip(got.v, want.v)):
            assert rel_diff(a, b) < TOL, f"{name} v ghost {i + 1}"
        # top-down input and local error read back from Brian2 (absolute: t is ~0 when free)
        for i, (a, b) in enumerate(zip(got.t, cur.t)):
            assert np.abs(a - b).max() < 1e-12, f"{name} t layer {i + 1}"
        for i, (a, b) in enumerate(zip(got.e, cur.e)):
            assert np.abs(a - b).max() < 1e-12, f"{name} e layer {i + 1}"

    # docs/model.md §3 property 1: the ghosts cancel the top-down input when no target is given
    for t in out.free.t:
        assert np.abs(t).max() < 1e-12
    # the nudged phase moved the network (otherwise the update comparison would be empty)
    assert max(np.abs(d).max() for d in ref.dW) > 1e-3

    for i, (a, b) in enumerate(zip(out.update.dW, ref.dW)):
        assert rel_diff(a, b) < TOL, f"dW layer {i + 1}"
    for i, (a, b) in enumerate(zip(out.update.db, ref.db)):
        assert rel_diff(a, b) < TOL, f"db layer {i + 1}"


@pytest.mark.parametrize("feedback", ["symmetric", "random"])
def test_continuous_plasticity_agrees_with_numba(feedback, rng):
    """docs/model.md §4 continuous form, one sample at a time, plasticity on in both phases; then the
    copy of docs/model.md §5 (and B <- W^T for symmetric feedback) after every step."""
    net = _network(feedback, rng, steps=20)
    start = net.params.copy()
    brian = BrianGhostNetwork(net, batch=1, plastic=True)
    xs, ys = _batch(rng, 3)
    for x, y in zip(xs, ys):
        net.continuous_phases(x, y, eta=0.5, tau_w=2.0)
        brian.continuous_phases(x, y, eta=0.5, tau_w=2.0)
    got, want = brian.params(), net.params
    for i in range(len(SIZES) - 1):
        change = want.W[i] - start.W[i]
        assert np.abs(change).max() > 1e-4, "the samples must have taught the network something"
        assert rel_diff(got.W[i], want.W[i]) < TOL_CONTINUOUS
        assert rel_diff(got.b[i], want.b[i]) < TOL_CONTINUOUS
        # the change itself, a much stricter comparison than the weights
        assert rel_diff(got.W[i] - start.W[i], change) < TOL_CONTINUOUS
    for name in ("B", "G", "c", "H"):
        for a, b in zip(getattr(got, name), getattr(want, name)):
            assert rel_diff(a, b) < TOL_CONTINUOUS, name


def test_crosscheck_json(capsys):
    from ghostnet.cli import main

    rc = main(["crosscheck", "--json", "--steps", "10", "--batch", "2", "--continuous", "1",
               "--feedback", "random"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    for key in ("settings", "free", "nudged", "update", "time", "max_rel_diff", "agree", "tol",
                "continuous"):
        assert key in out
    assert len(out["free"]["u"]) == 3 and len(out["free"]["v"]) == 2
    assert len(out["update"]["dW"]) == 3 and len(out["update"]["db"]) == 3
    assert out["settings"]["feedback"] == "random" and out["settings"]["steps"] == 10
    assert out["time"]["numba_s"] > 0 and out["time"]["brian_run_s"] > 0
    assert out["agree"] is True and out["max_rel_diff"] < 1e-6
    assert out["continuous"]["max"] < 1e-5


def test_crosscheck_table(capsys):
    from ghostnet.cli import main

    rc = main(["crosscheck", "--steps", "5", "--batch", "1", "--sizes", "5,4,3"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "u nudged" in text and "dW end-of-phase" in text and "wall time" in text


@pytest.mark.parametrize("field,value", [("mechanism", "learned"), ("feedback", "plastic"),
                                         ("method", "expeuler"), ("output", "clamp")])
def test_unsupported_settings_name_the_field(field, value):
    base = dict(sizes=[4, 3, 2], method="euler", dt=0.1)
    base[field] = value
    net = GhostNetwork(ModelConfig(**base))
    with pytest.raises(ConfigError, match=field):
        BrianGhostNetwork(net)


def test_bad_arguments_name_themselves():
    net = GhostNetwork(ModelConfig(sizes=[4, 3, 2], method="euler", dt=0.1))
    with pytest.raises(ConfigError, match="target"):
        BrianGhostNetwork(net, target="cuda")
    with pytest.raises(ConfigError, match="batch"):
        BrianGhostNetwork(net, batch=0)
    with pytest.raises(ConfigError, match="batch"):
        BrianGhostNetwork(net, batch=2, plastic=True)
    bn = BrianGhostNetwork(net, batch=2)
    with pytest.raises(ValueError, match="x must have shape"):
        bn.phases(np.zeros((3, 4)), np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="steps"):
        bn.run_phase(np.zeros((2, 4)), n_steps=0)
    bn.phases(np.zeros((2, 4)), np.zeros((2, 2)), n_steps=1)  # run once: Brian2 warns otherwise


@pytest.mark.slow
@pytest.mark.skipif(not cython_available(), reason="Brian2's cython target needs a C compiler")
def test_cython_target_agrees_with_numba(rng):
    net = _network("symmetric", rng, steps=10)
    x, y = _batch(rng, 2)
    pair = net.phases(x, y)
    ref = net.update(pair)
    out = BrianGhostNetwork(net, batch=2, target="cython").phases(x, y)
    for a, b in zip(out.nudged.u, pair.nudged.u):
        assert rel_diff(a, b) < TOL
    for a, b in zip(out.nudged.v, pair.nudged.v):
        assert rel_diff(a, b) < TOL
    for a, b in zip(out.update.dW, ref.dW):
        assert rel_diff(a, b) < TOL
