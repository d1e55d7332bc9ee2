"""Training: every learner learns, a small-beta ghost step is a backprop step, resume is
exact, Ctrl-C leaves a checkpoint, bad configs are refused. Synthetic data: no network needed."""
from __future__ import annotations

import csv
import dataclasses
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


@pytest.mark.parametrize("learner,opt", [
    ("ghost", {}),
    ("ghost", {"momentum": 0.9, "nesterov": True, "lr": 0.1, "schedule": "cosine",
               "warmup_epochs": 1.0, "standardize": "pixel", "val_size": 50}),
    ("backprop", {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.01, "schedule": "step",
                  "step_epochs": 1, "standardize": "global"}),
    ("ghost", {"augment_shift": 2, "augment_flip": True, "standardize": "pixel"}),
])
def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, monkeypatch, learner, opt):
    """Ctrl-C mid-epoch, then --resume: the weights of the run that was never interrupted, bit
    for bit (the optimizer's state, the schedule and the input statistics included)."""
    opt = {"lr": 1.0, **opt}
    cfg = TrainConfig(_cfg().model, TrainSettings(learner=learner, epochs=3, batch_size=10,
                                                  probe_size=10, **opt))
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
    full_rows = list(csv.DictReader(open(tmp_path / "full" / "metrics.csv")))
    for a, b in zip(rows, full_rows):
        a.pop("seconds"), b.pop("seconds")
        assert a == b


@pytest.mark.parametrize("section,field,value", [
    ("train", "learner", "hebb"), ("train", "epochs", 0), ("train", "lr", -1.0),
    ("train", "lr", [0.1, 0.1, 0.1]), ("train", "momentum", 1.0), ("train", "batch_size", 0),
    ("train", "pretrain_noise", -0.5), ("train", "pretrain_noise", float("nan")),
    ("train", "pretrain_loop", "half-open"),
])
def test_bad_train_settings_are_named(section, field, value):
    t = TrainSettings(**{field: value})
    with pytest.raises(ConfigError) as info:
        TrainConfig(ModelConfig(sizes=[64, 40, 10]), t).validate()
    assert info.value.field == field


def test_open_loop_pretraining_refuses_noise_and_runs_in_training(tmp_path):
    with pytest.raises(ConfigError, match="exploration noise needs pretrain_loop = 'closed'"):
        TrainConfig(ModelConfig(sizes=[64, 40, 10]),
                    TrainSettings(pretrain_loop="open", pretrain_noise=1.0)).validate()
    cfg = _cfg("ghost", mechanism="learned")
    cfg = TrainConfig(cfg.model, TrainSettings(epochs=1, batch_size=5, lr=1.0, probe_size=0,
                                               pretrain=400, pretrain_loop="open")).validate()
    train(cfg, tmp_path, data=_blobs(), progress=False)
    pre = json.loads((tmp_path / "meta.json").read_text())["pretrain"]
    assert pre["loop"] == "open" and 0 < pre["open_samples"] <= pre["samples"] <= 400


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

    root = Path(__file__).parents[1] / "experiments" / "configs"
    configs = sorted(root.rglob("*.toml"))  # the baselines' configurations too
    assert {p.name for p in configs} >= {"fashion_784-500-10.toml", "fashion_lenet_ce.toml",
                                         "cifar10_lenet.toml", "fashion_784-500-10_tanh_ce.toml"}
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


def test_standardised_inputs_use_the_training_split_only(tmp_path):
    """Per-pixel statistics from the training split left after the validation split is taken
    out (not from validation or test samples), stored in the run directory; a resumed run reads
    them from there."""
    from ghostnet.learning.training import Trainer, standardize

    data = _blobs()
    cfg = TrainConfig(_cfg("backprop").model, TrainSettings(
        learner="backprop", epochs=1, batch_size=20, lr=0.5, val_size=100,
        standardize="pixel")).validate()
    tr = Trainer(cfg, tmp_path, data=data, progress=False)
    raw = tr.data
    tr.run()
    with np.load(tmp_path / "standardize.npz") as z:
        np.testing.assert_allclose(z["mean"], raw.x_train.astype(np.float64).mean(0), rtol=1e-12)
        np.testing.assert_allclose(z["std"], raw.x_train.astype(np.float64).std(0), rtol=1e-12)
    x = tr.data.x_train.astype(np.float64)
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(x.std(0), 1, atol=1e-5)
    assert abs(tr.data.x_test.mean()) > 1e-4  # the test set is moved, not re-centred on itself
    g = standardize(raw, "global", tmp_path / "g.npz", resume=False)
    assert abs(g.x_train.astype(np.float64).mean()) < 1e-6
    assert abs(g.x_train.astype(np.float64).std() - 1) < 1e-5
    # resume: the stored statistics are used, even if the data handed in differ
    shifted = standardize(raw, "global", tmp_path / "g.npz", resume=True)
    other = dataclasses.replace(raw, x_train=raw.x_train + 1)
    again = standardize(other, "global", tmp_path / "g.npz", resume=True)
    np.testing.assert_allclose(again.x_test, shifted.x_test)
    with pytest.raises(ConfigError, match="standardize"):
        standardize(raw, "pixel", tmp_path / "g.npz", resume=True)


def test_summary_reports_the_test_error_at_the_best_validation_epoch(tmp_path):
    from ghostnet.learning.training import select_model

    rows = [{"epoch": 1, "val_acc": 0.5, "test_acc": 0.40}, {"epoch": 2, "val_acc": 0.7, "test_acc": 0.55},
            {"epoch": 3, "val_acc": 0.7, "test_acc": 0.90}, {"epoch": 4, "val_acc": 0.6, "test_acc": 0.95}]
    sel = select_model(rows)
    assert sel["selected"] == {"epoch": 2, "val_acc": 0.7, "test_acc": 0.55}  # first best, not test's
    assert (sel["last_epoch"], sel["last_test_acc"]) == (4, 0.95)
    assert select_model([{"epoch": 1, "val_acc": "", "test_acc": 0.4}])["selected"] is None
    cfg = TrainConfig(_cfg("backprop").model, TrainSettings(
        learner="backprop", epochs=3, batch_size=20, lr=0.5, val_size=100,
        eval_train=False)).validate()
    summary = train(cfg, tmp_path, data=_blobs(), progress=False)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    best = max(rows, key=lambda r: (float(r["val_acc"]), -int(r["epoch"])))
    assert summary["selected"]["epoch"] == int(best["epoch"])
    assert summary["selected"]["test_acc"] == float(best["test_acc"])
    assert summary["last_test_acc"] == float(rows[-1]["test_acc"])
    assert "best_test_acc" not in summary and rows[0]["train_acc"] == ""
