"""experiments/ghost_rate_bounds.py against its oracle: the largest eigenvalue of each learned-ghost
rule's update map, written out here as an explicit matrix (every basis kernel through torch's own
conv, pooling and transpose ops, or the input correlation of a dense layer) and diagonalised by
numpy, on rates computed here from the network's weights."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ghostnet.model.config import ModelConfig
from ghostnet.model.params import Params

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "ghost_rate_bounds.py"
LAYERS = [
    {"type": "conv", "channels": 3, "kernel": 3, "padding": 1},
    {"type": "conv", "channels": 4, "kernel": 3, "padding": 1, "pool": 2},
    {"type": "dense", "units": 5},
    {"type": "dense", "units": 3},
]


def _script():
    spec = importlib.util.spec_from_file_location("ghost_rate_bounds", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _matrix(fmap, shape) -> np.ndarray:
    """The linear map ``K -> fmap(K)`` (all samples, flattened) as a matrix, column by column."""
    cols = []
    for k in range(int(np.prod(shape))):
        e = torch.zeros(int(np.prod(shape)), dtype=torch.float64)
        e[k] = 1.0
        cols.append(fmap(e.reshape(shape)).reshape(-1))
    return torch.stack(cols, dim=1).numpy()


def _top(J: np.ndarray, n: int) -> float:
    return float(np.linalg.eigvalsh(J.T @ J / n)[-1])


@pytest.mark.parametrize("transfer,given", [("tanh", False), ("logistic", False), ("tanh", True)])
def test_bounds_are_the_top_eigenvalues_of_the_update_maps(transfer, given):
    """At the initial weights, or at weights given (as a trained network's)."""
    model = ModelConfig(engine="torch", device="cpu", dtype="float64", input=[2, 6, 6],
                        layers=LAYERS, transfer=transfer, mechanism="learned", seed=3)
    n = 7
    x = np.random.default_rng(0).normal(size=(n, 72))
    P = Params.init(model.validate())
    if given:  # other weights than the initial ones
        rng = np.random.default_rng(5)
        P.W = [2 * w + rng.normal(0, 0.1, w.shape) for w in P.W]
        P.b = [v + rng.normal(0, 0.3, v.shape) for v in P.b]
        rows = _script().bounds(model, x, weights={"W": P.W, "b": P.b})
    else:
        rows = _script().bounds(model, x)

    W = [torch.as_tensor(w, dtype=torch.float64) for w in P.W]
    b = [torch.as_tensor(v, dtype=torch.float64) for v in P.b]
    phi = torch.tanh if transfer == "tanh" else torch.sigmoid
    x0 = torch.as_tensor(x).reshape(n, 2, 6, 6)
    r1 = phi(F.conv2d(x0, W[0], padding=1) + b[0].view(1, -1, 1, 1))
    r2 = phi(F.avg_pool2d(F.conv2d(r1, W[1], padding=1), 2) + b[1].view(1, -1, 1, 1))
    r3 = phi(r2.reshape(n, -1) @ W[2].T + b[2])
    a4 = r3 @ W[3].T + b[3]  # the output's potentials

    def unpool(d):
        return d.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3) / 4

    shape = tuple(W[1].shape)
    want = [
        (_top(_matrix(lambda K: F.avg_pool2d(F.conv2d(r1, K, padding=1), 2), shape), n),
         _top(_matrix(lambda K: F.conv_transpose2d(unpool(r2), K, padding=1), shape), n)),
        (_top(r2.reshape(n, -1).numpy(), n), _top(r3.numpy(), n)),
        (_top(r3.numpy(), n), _top(a4.numpy(), n)),
    ]
    assert [w["layer"] for w in rows] == [1, 2, 3]
    for got, (lam_g, lam_h) in zip(rows, want):
        assert got["lambda_g"] == pytest.approx(lam_g, rel=1e-6)
        assert got["lambda_h"] == pytest.approx(lam_h, rel=1e-6)
        assert got["bound_g"] == pytest.approx(2 / lam_g, rel=1e-6)
        assert got["bound_h"] == pytest.approx(2 / lam_h, rel=1e-6)


def test_the_command_prints_rates_for_the_config(tmp_path, capsys):
    from ghostnet.learning.settings import TrainConfig

    rng = np.random.default_rng(1)
    src = tmp_path / "tiny.npz"
    np.savez(src, x_train=rng.uniform(0, 255, (40, 784)).astype(np.uint8),
             y_train=rng.integers(0, 10, 40), x_test=rng.uniform(0, 255, (10, 784)).astype(np.uint8),
             y_test=rng.integers(0, 10, 10))
    cfg = tmp_path / "net.toml"
    cfg.write_text('[model]\nengine = "torch"\ninput = [1, 28, 28]\nlayers = [\n'
                   '  {type = "conv", channels = 2, kernel = 5, pool = 4},\n'
                   '  {type = "conv", channels = 3, kernel = 3, padding = 1},\n'
                   '  {type = "dense", units = 4},\n  {type = "dense", units = 10},\n]\n'
                   '[train]\ndataset = "fashion-mnist"\nstandardize = "global"\n')
    rows = _script().main(["--config", str(cfg), "--images", "20", "--data-source", str(src),
                           "--fraction", "0.5"])
    out = capsys.readouterr().out
    n_hidden = len(TrainConfig.load(cfg).model.sizes) - 2
    assert len(rows) == n_hidden
    assert all(w["lambda_g"] > 0 and w["lambda_h"] > 0 for w in rows)
    eta_g = [float(v) for v in out.split("eta_g = [")[1].split("]")[0].split(",")]
    assert eta_g == pytest.approx([0.5 * w["bound_g"] for w in rows], rel=1e-2)


def test_the_command_measures_at_a_runs_weights(tmp_path, capsys):
    """``--run DIR``: the bounds at the run's checkpoint (its config, its trained weights), not
    at the initial weights."""
    from ghostnet.learning.data import load
    from ghostnet.learning.settings import TrainConfig
    from ghostnet.learning.training import train

    rng = np.random.default_rng(2)
    src = tmp_path / "tiny.npz"
    np.savez(src, x_train=rng.uniform(0, 255, (60, 784)).astype(np.uint8),
             y_train=rng.integers(0, 10, 60), x_test=rng.uniform(0, 255, (10, 784)).astype(np.uint8),
             y_test=rng.integers(0, 10, 10))
    cfg = TrainConfig.from_toml(
        '[model]\nengine = "torch"\ninput = [1, 28, 28]\nlayers = [\n'
        '  {type = "conv", channels = 2, kernel = 5, pool = 4},\n'
        '  {type = "dense", units = 6},\n  {type = "dense", units = 10},\n]\n'
        '[train]\nlearner = "backprop"\ndataset = "fashion-mnist"\nstandardize = "global"\n'
        'epochs = 3\nbatch_size = 10\nlr = 0.5\nprobe_size = 0\n').validate()
    run = tmp_path / "run"
    train(cfg, run, data=load("fashion-mnist", str(src)), progress=False)
    rows = _script().main(["--run", str(run), "--images", "30", "--data-source", str(src)])
    capsys.readouterr()
    P = Params.load(run / "checkpoint.npz")[0]
    x = _script()._inputs(cfg, 30, str(src))
    assert rows == _script().bounds(cfg.model, x, weights={"W": P.W, "b": P.b})
    assert rows != _script().bounds(cfg.model, x)  # the run's weights are not the initial ones
    with pytest.raises(SystemExit):
        _script().main(["--run", str(tmp_path), "--data-source", str(src)])  # no checkpoint
