"""Training: every learner learns, a small-beta ghost step is a backprop step, resume is
exact, Ctrl-C leaves a checkpoint, bad configs are refused. Synthetic data: no network needed."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from ghostnet import ConfigError, ModelConfig, Params
from ghostnet.learning.data import Dataset
from ghostnet.learning.training import Learner, TrainConfig, TrainSettings, train


def _blobs(seed=0, n_train=400, n_test=200, dim=64, classes=10) -> Dataset:
    """Ten noisy prototypes in [0, 1]^dim: learnable in a couple of epochs."""
    rng = np.random.default_rng(seed)
    protos = rng.uniform(0, 1, (classes, dim))

    def draw(n):
        y = rng.integers(0, classes, n)
        x = np.clip(protos[y] + rng.normal(0, 0.15, (n, dim)), 0, 1).astype(np.float32)
        return x, y

    (xt, yt), (xs, ys) = draw(n_train), draw(n_test)
    return Dataset("synthetic", xt, yt, xs, ys, classes, "test blobs")


def _cfg(learner="ghost", **model) -> TrainConfig:
    m = dict(sizes=[64, 40, 10], mode="equilibrium", beta=0.01, dtype="float64")
    m.update(model)
    if learner == "fa":
        m.setdefault("feedback", "random")
    return TrainConfig(ModelConfig(**m), TrainSettings(learner=learner, epochs=2, batch_size=5,
                                                       lr=1.0, probe_size=20)).validate()


@pytest.mark.parametrize("learner,model", [
    ("ghost", {}), ("ghost", {"feedback": "random"}), ("ghost", {"mechanism": "learned"}),
    ("backprop", {}), ("fa", {}), ("ghost", {"mode": "dynamics", "settle": "fixed", "steps": 30}),
])
def test_small_run_learns_above_chance(tmp_path, learner, model):
    summary = train(_cfg(learner, **model), tmp_path, data=_blobs(), progress=False)
    assert summary["final"]["test_acc"] > 0.25  # 2.5 x chance (0.1); FA is the slowest learner
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert {"ghostnet_version", "git_hash", "seed"} <= set(meta)
    assert TrainConfig.from_toml((tmp_path / "config.toml").read_text()) == _cfg(learner, **model)
    if learner == "ghost":
        assert float(rows[-1]["mean_angle_deg"]) >= 0


def test_learned_run_with_noisy_pretraining(tmp_path):
    cfg = _cfg("ghost", mechanism="learned")
    cfg = TrainConfig(cfg.model, TrainSettings(epochs=1, batch_size=5, lr=1.0, probe_size=20,
                                               pretrain=400, pretrain_noise=1.0)).validate()
    summary = train(cfg, tmp_path, data=_blobs(), progress=False)
    assert np.isfinite(summary["final"]["test_acc"])
    assert TrainConfig.from_toml((tmp_path / "config.toml").read_text()) == cfg


def test_small_beta_ghost_step_is_a_backprop_step():
    """Same initial weights, same batch: one ghost step (copy, symmetric, beta = 1e-5) and one
    backprop step (torch.autograd) give the same weights."""
    data = _blobs()
    x = data.x_train[:10].astype(np.float64)
    y = np.eye(10)[data.y_train[:10]]
    cfg_g, cfg_b = _cfg("ghost", beta=1e-5), _cfg("backprop")
    p0 = Params.init(cfg_g.model)
    g, b = Learner(cfg_g, p0.copy()), Learner(cfg_b, p0.copy())
    g.step(x, y, [1.0, 1.0])
    b.step(x, y, [1.0, 1.0])
    for wg, wb, w0 in zip(g.params.W + g.params.b, b.params.W + b.params.b, p0.W + p0.b):
        assert np.linalg.norm(wg - wb) <= 1e-4 * np.linalg.norm(wb)
        assert np.linalg.norm((wg - w0) - (wb - w0)) <= 1e-3 * np.linalg.norm(wb - w0)


class _Interrupt(Exception):
    pass


def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, monkeypatch):
    cfg = TrainConfig(_cfg().model, TrainSettings(learner="ghost", epochs=3, batch_size=10, lr=1.0,
                                                  probe_size=10))
    data = _blobs()
    train(cfg, tmp_path / "full", data=data, progress=False)
    full, _ = Params.load(tmp_path / "full" / "checkpoint.npz")

    calls = {"n": 0}
    original = Learner.step

    def flaky(self, x, y, lrs):  # a KeyboardInterrupt raised (not signalled) inside epoch 2
        calls["n"] += 1
        if calls["n"] == 40 + 17:
            raise KeyboardInterrupt
        return original(self, x, y, lrs)

    monkeypatch.setattr(Learner, "step", flaky)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", data=data, progress=False)
    with np.load(tmp_path / "cut" / "checkpoint.npz") as z:
        extra = json.loads(str(z["extra_json"]))
    # raised outside the deferred-signal handler, the step may be half-applied: no checkpoint is
    # written then, and the last consistent one (the end of epoch 1) stays
    assert (extra["epoch"], extra["batch"]) == (2, 0)
    monkeypatch.setattr(Learner, "step", original)
    train(cfg, tmp_path / "cut", data=data, progress=False, resume=True)
    resumed, _ = Params.load(tmp_path / "cut" / "checkpoint.npz")
    for a, b in zip(full.W + full.b, resumed.W + resumed.b):
        assert np.array_equal(a, b)
    rows = list(csv.DictReader(open(tmp_path / "cut" / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]


@pytest.mark.parametrize("section,field,value", [
    ("train", "learner", "hebb"), ("train", "epochs", 0), ("train", "lr", -1.0),
    ("train", "lr", [0.1, 0.1, 0.1]), ("train", "momentum", 0.9), ("train", "batch_size", 0),
    ("train", "pretrain_noise", -0.5), ("train", "pretrain_noise", float("nan")),
])
def test_bad_train_settings_are_named(section, field, value):
    t = TrainSettings(**{field: value})
    with pytest.raises(ConfigError) as info:
        TrainConfig(ModelConfig(sizes=[64, 40, 10]), t).validate()
    assert info.value.field == field


def test_fa_needs_random_feedback_and_sizes_must_fit(tmp_path):
    with pytest.raises(ConfigError, match="feedback"):
        TrainConfig(ModelConfig(sizes=[64, 40, 10]), TrainSettings(learner="fa")).validate()
    with pytest.raises(ConfigError, match="needs 64 inputs and 10 outputs"):
        train(TrainConfig(ModelConfig(sizes=[50, 40, 10]), TrainSettings()), tmp_path,
              data=_blobs(), progress=False)
    with pytest.raises(ConfigError, match="unknown field in \\[train\\]"):
        TrainConfig.from_toml("[train]\nepoch = 3\n")


def test_shipped_configs_are_valid():
    from pathlib import Path

    configs = sorted((Path(__file__).parents[1] / "experiments" / "configs").glob("*.toml"))
    assert len(configs) == 6
    for p in configs:
        cfg = TrainConfig.load(p)
        n_in = 3072 if cfg.train.dataset == "cifar10" else 784  # images flattened
        assert cfg.model.sizes[0] == n_in and cfg.model.sizes[-1] == 10


def test_probe_size_zero_skips_the_angle(tmp_path):
    cfg = _cfg()
    cfg = TrainConfig(cfg.model, TrainSettings(learner="ghost", epochs=1, batch_size=20, lr=1.0,
                                               probe_size=0)).validate()
    train(cfg, tmp_path, data=_blobs(), progress=False)
    row = next(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert row["mean_angle_deg"] == "" and row["angles_deg"] == "" and float(row["test_acc"]) > 0
