"""Contracts of the configuration and parameter storage."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ghostnet import ConfigError, GhostNetwork, ModelConfig, Params
from ghostnet.errors import CheckpointError

INVALID = [
    ("sizes", [20, 0, 5]),
    ("sizes", [20, -3, 5]),
    ("sizes", [20]),
    ("sizes", [20, 2.5, 5]),
    ("sizes", "20,30"),
    ("transfer", "sigmoidal"),
    ("tau", 0.0),
    ("tau", -1.0),
    ("tau_g", 0.0),
    ("beta", -0.1),
    ("beta", float("nan")),
    ("dt", 0.0),
    ("method", "rk45"),
    ("settle", "forever"),
    ("steps", 0),
    ("tol", -1e-3),
    ("max_steps", 0),
    ("mode", "static"),
    ("mechanism", "magic"),
    ("feedback", "transpose"),
    ("output", "hold"),
    ("dtype", "float16"),
    ("seed", -1),
    ("seed", 1.5),
    ("baseline", "yes"),
    ("eta_g", 0.0),
    ("init_gain", -1.0),
    ("eq_max_iter", 0),
]


@pytest.mark.parametrize("field,value", INVALID)
def test_invalid_field_names_itself(field, value):
    with pytest.raises(ConfigError) as info:
        ModelConfig(**{field: value})
    assert info.value.field == field
    assert f"'{field}'" in str(info.value)


def test_choice_errors_list_allowed_values():
    with pytest.raises(ConfigError, match="allowed: logistic, tanh, softplus, relu"):
        ModelConfig(transfer="sigmoidal")


def test_unstable_euler_step_is_refused_with_its_bound():
    # forward Euler on tau du/dt = -u is unstable beyond dt = 2 tau (docs/model.md §2 leak term)
    with pytest.raises(ConfigError, match=r"dt.*below 2"):
        ModelConfig(method="euler", dt=2.5, tau=1.0, beta=0.0)
    with pytest.raises(ConfigError, match="dt"):
        ModelConfig(method="euler", dt=1.0, tau=1.0, tau_g=0.4)  # ghosts: dt < 2 tau_g
    # the nudging term stiffens the output: bound 2 tau / (1 + beta max phi')
    bound = 2.0 / (1.0 + 8.0 * 1.0)
    with pytest.raises(ConfigError, match="dt"):
        ModelConfig(method="euler", transfer="tanh", beta=8.0, dt=bound * 1.01)
    ModelConfig(method="euler", transfer="tanh", beta=8.0, dt=bound * 0.99)
    # exponential Euler is exact on the leak: any dt while beta max phi' < 1
    ModelConfig(method="expeuler", dt=50.0, beta=0.5, transfer="tanh")
    with pytest.raises(ConfigError, match="dt"):
        ModelConfig(method="expeuler", dt=50.0, beta=3.0, transfer="tanh")
    # equilibrium mode does not integrate: the step is not checked
    ModelConfig(method="euler", dt=5.0, mode="equilibrium")


def test_stability_bound_formula():
    cfg = ModelConfig(method="expeuler", transfer="relu", beta=3.0, dt=0.1)
    k = 3.0
    assert cfg.stability_bound() == pytest.approx(math.log((k + 1) / (k - 1)))


def test_unknown_toml_field_is_named(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[model]\nsizes = [3, 2]\nbetta = 0.1\n")
    with pytest.raises(ConfigError, match="betta"):
        ModelConfig.load(p)


def test_toml_round_trip(tmp_path):
    cfg = ModelConfig(sizes=[7, 5, 3], transfer="tanh", beta=0.25, dt=0.05, method="euler",
                      settle="tol", feedback="random", dtype="float32", seed=11)
    p = tmp_path / "model.toml"
    cfg.save(p)
    assert ModelConfig.load(p) == cfg


@pytest.mark.parametrize("mechanism,feedback,dtype", [
    ("copy", "symmetric", "float64"), ("learned", "random", "float32"),
])
def test_npz_round_trip_is_exact(tmp_path, mechanism, feedback, dtype):
    cfg = ModelConfig(sizes=[6, 5, 4, 3], mechanism=mechanism, feedback=feedback, dtype=dtype, seed=4)
    net = GhostNetwork(cfg)
    path = net.save(tmp_path / "net.npz")
    params, cfg2 = Params.load(path)
    assert cfg2 == cfg
    for name in ("W", "b", "B", "G", "c", "H"):
        a, b = getattr(net.params, name), getattr(params, name)
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert x.dtype == y.dtype and x.shape == y.shape
            assert np.array_equal(x, y)


def test_load_rejects_foreign_file(tmp_path):
    p = tmp_path / "other.npz"
    np.savez(p, foo=np.zeros(3))
    with pytest.raises(ValueError, match="not a ghostnet parameter file"):
        Params.load(p)
    with pytest.raises(CheckpointError, match="no parameter file"):
        Params.load(tmp_path / "missing.npz")


def test_initialisation_is_documented_glorot_and_copies():
    cfg = ModelConfig(sizes=[400, 300, 200], seed=2)
    p = Params.init(cfg)
    s = math.sqrt(6.0 / (400 + 300))
    assert np.abs(p.W[0]).max() <= s
    # uniform on [-s, s]: variance s^2 / 3 (to sampling error on 120,000 draws)
    assert p.W[0].var() == pytest.approx(s * s / 3, rel=0.02)
    assert np.array_equal(p.B[0], p.W[1].T)           # symmetric feedback
    assert np.array_equal(p.G[0], p.W[1])             # copy mechanism (docs/model.md §5)
    assert np.array_equal(p.H[0], p.B[0])
    rnd = Params.init(cfg.replace(feedback="random"))
    assert not np.allclose(rnd.B[0], rnd.W[1].T)
    assert np.array_equal(Params.init(cfg).W[0], p.W[0])  # the seed decides everything


def test_atomic_writes_leave_no_temporary_and_a_normal_mode(tmp_path):
    import os

    from ghostnet.io import atomic_write_text

    path = atomic_write_text(tmp_path / "sub" / "a.txt", "hello")
    umask = os.umask(0)
    os.umask(umask)
    assert path.read_text() == "hello"
    assert (path.stat().st_mode & 0o777) == 0o666 & ~umask  # not mkstemp's 0600
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]
