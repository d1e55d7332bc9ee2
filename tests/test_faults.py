"""Faults a careless or unlucky user meets, each ending in correct behaviour or one clear line:
diverging learning rates, saturated units, phases that do not settle, bad and corrupt data,
corrupt and inconsistent parameter files, non-standard JSON, bad configurations and output
directories on the command line. The last test draws random configurations and corruptions
(hypothesis) and asserts that each either runs or ends in the project's own error type."""
from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ghostnet import GhostNetwork, ModelConfig, Params
from ghostnet.cli import main
from ghostnet.errors import (
    CheckpointError, DivergenceError, GhostnetError, GhostnetWarning, RunDirError,
)
from ghostnet.io import dumps, loads
from ghostnet.learning.data import DataError, load, write_idx
from ghostnet.learning.learners import Learner
from ghostnet.learning.runs import run_status
from ghostnet.learning.training import TrainConfig, train

from test_runs import BATCHES, blobs, config


def _warnings_of(fn):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(x.message) for x in w if issubclass(x.category, GhostnetWarning)]


# ---- divergence --------------------------------------------------------------------------------
@pytest.mark.parametrize("learner,model", [
    ("backprop", {"transfer": "relu"}), ("backprop", {"transfer": "softplus"}),
    ("fa", {"transfer": "relu"}),
])
def test_a_diverging_baseline_stops_and_is_marked_failed(tmp_path, learner, model):
    cfg = config(learner, train={"lr": 1e150}, **model)
    with pytest.raises(DivergenceError) as info:
        train(cfg, tmp_path, data=blobs(), progress=False)
    msg = str(info.value)
    assert f"{learner} learner diverged at epoch 1, batch " in msg
    assert "Likely cause: the learning rate (lr = 1e+150)" in msg
    assert run_status(tmp_path) == "failed" and not (tmp_path / "summary.json").exists()
    with pytest.raises(RunDirError, match="failed.*--overwrite"):
        train(cfg, tmp_path, resume=True, data=blobs(), progress=False)


@pytest.mark.parametrize("engine", ["numba", "torch"])
def test_a_ghost_blow_up_names_the_learning_rate_when_the_initial_weights_settle(tmp_path, engine):
    with pytest.raises(DivergenceError) as info:
        train(config(transfer="relu", engine=engine, train={"lr": 30.0}), tmp_path, data=blobs(),
              progress=False)
    msg = str(info.value)
    assert "ghost learner diverged at epoch 1, batch" in msg
    assert "Likely cause: the learning rate (lr = 30.0)" in msg and "reduce lr" in msg


CONV_NET = dict(engine="torch", input=[3, 2, 2], sizes=None, eq_max_iter=1,
                layers=[{"type": "conv", "channels": 3, "kernel": 3, "padding": 1, "pool": 2},
                        {"type": "dense", "units": 10}, {"type": "dense", "units": 4}])


@pytest.mark.parametrize("net", [{"engine": "numba"}, {"engine": "torch"}, CONV_NET],
                         ids=["numba", "torch", "torch-conv"])
def test_a_learned_ghost_blow_up_names_the_ghosts_rates(tmp_path, net):
    """Ghost rates far above their bounds (lr small): the ghosts blow the free phase up while
    the weights, with copy ghosts, still settle; the error names eta_g / eta_h, whether it
    happens in a step or in the evaluation after the epoch."""
    cfg = config(mechanism="learned", eta_g=50.0, eta_h=50.0, train={"lr": 0.01}, **net)
    with pytest.raises(DivergenceError) as info:
        train(cfg, tmp_path, data=blobs(), progress=False)
    msg = str(info.value)
    assert "ghost learner diverged at epoch 1" in msg
    assert "Likely cause: the learned ghosts' rates (eta_g = 50.0, eta_h = 50.0)" in msg
    assert run_status(tmp_path) == "failed"


@pytest.mark.parametrize("mechanism,gain,dt,cause,advice", [
    ("copy", 20.0, 2.5, "the integration step", "reduce dt"),
    # with copy ghosts these weights settle (dt 1, gain 8): the random learned ghosts do not
    ("learned", 8.0, 1.0, "the untrained learned ghosts", "pre-train them"),
])
def test_a_ghost_blow_up_at_the_initial_weights_names_the_integration_or_the_ghosts(
        tmp_path, mechanism, gain, dt, cause, advice):
    cfg = config(mode="dynamics", method="expeuler", dt=dt, init_gain=gain, transfer="relu",
                 mechanism=mechanism, settle="fixed", steps=100, train={"lr": 0.1})
    with pytest.raises(DivergenceError) as info:
        train(cfg, tmp_path, data=blobs(), progress=False)
    msg = str(info.value)
    assert "at epoch 1, batch 0" in msg and f"Likely cause: {cause}" in msg
    assert advice in msg


def test_updates_all_zero_for_an_epoch_warn_once(tmp_path):
    """lr = 1000 saturates every logistic unit in the first step: from then on each local error
    phi(u) - phi(u - t) rounds to exactly zero."""
    _, warned = _warnings_of(lambda: train(config(train={"lr": 1e3}), tmp_path, data=blobs(),
                                           progress=False))
    zero = [w for w in warned if "exactly zero" in w]
    assert len(zero) == 1 and "ghost learner" in zero[0]
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [int(r["zero_updates"]) for r in rows[1:]] == [BATCHES] * (len(rows) - 1)
    assert zero[0] in loads((tmp_path / "summary.json").read_text())["warnings"]
    _, warned = _warnings_of(lambda: train(config(), tmp_path / "ok", data=blobs(), progress=False))
    assert warned == []  # a healthy run warns of nothing


# ---- phases that do not settle ----------------------------------------------------------------
def test_unsettled_phases_are_counted_and_warned(tmp_path):
    """Forward Euler at dt = 1.99, just under its bound 2: the leak's error shrinks by
    |1 - dt| = 0.99 a step, so no phase settles to 1e-6 in 200 steps."""
    cfg = config(mode="dynamics", method="euler", dt=1.99, settle="tol", max_steps=200, epochs=2)
    _, warned = _warnings_of(lambda: train(cfg, tmp_path, data=blobs(), progress=False))
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [int(r["unsettled_phases"]) for r in rows] == [2 * BATCHES] * 2
    assert len([w for w in warned if "did not settle" in w]) == 1
    settled = config(mode="dynamics", settle="tol", max_steps=3000, tol=1e-8, epochs=1)
    _, warned = _warnings_of(lambda: train(settled, tmp_path / "b", data=blobs(), progress=False))
    rows = list(csv.DictReader(open(tmp_path / "b" / "metrics.csv")))
    assert rows[0]["unsettled_phases"] == "0" and not [w for w in warned if "settle" in w]


def test_pretraining_reports_its_residual_and_whether_it_met_the_tolerance(tmp_path, capsys):
    cfg = config(mechanism="learned", epochs=1, train={"pretrain": 100})
    _, warned = _warnings_of(lambda: train(cfg, tmp_path, data=blobs(), progress=False))
    pre = loads((tmp_path / "meta.json").read_text())["pretrain"]
    assert pre["reached"] is False and pre["samples"] == 100 and pre["tol"] == 0.05
    assert len(pre["final_residual"]) == 1 and pre["final_residual"][0] > pre["tol"]
    assert "NOT met" in capsys.readouterr().out
    assert any("pre-training stopped at its budget" in w for w in warned)


def test_random_feedback_ghosts_log_their_angle_to_feedback_alignment(tmp_path):
    """Copy ghosts with random feedback at small beta follow feedback alignment (docs/model.md):
    the logged angle to FA is small while the angle to backprop is not."""
    train(config(feedback="random", beta=1e-4, epochs=1), tmp_path, data=blobs(), progress=False)
    row = next(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert float(row["mean_angle_fa_deg"]) < 0.5 < float(row["mean_angle_deg"])
    assert len(row["angles_fa_deg"].split()) == 2
    train(config(epochs=1), tmp_path / "sym", data=blobs(), progress=False)
    assert next(csv.DictReader(open(tmp_path / "sym" / "metrics.csv")))["mean_angle_fa_deg"] == ""


def test_float32_at_small_beta_warns(tmp_path):
    _, warned = _warnings_of(lambda: train(config(dtype="float32", beta=1e-3, epochs=1), tmp_path,
                                           data=blobs(), progress=False))
    assert any("float32 at beta = 0.001" in w for w in warned)


# ---- data ----------------------------------------------------------------------------------------
def _npz(path, **over):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, 30), "x_test": rng.integers(0, 256, (20, 784)).astype(np.uint8),
              "y_test": rng.integers(0, 10, 20)}
    arrays.update(over)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("over,match", [
    ({"x_test": np.full((20, 784), np.nan, np.float32)}, "non-finite pixel"),
    ({"x_train": np.full((30, 784), 300, np.int32)}, "0..255"),
    ({"x_train": np.zeros((0, 784), np.uint8), "y_train": np.zeros(0, np.int64)}, "no images"),
    ({"x_test": np.full((20, 784), 2.0)}, r"\[0, 1\]"),
])
def test_bad_pixels_and_empty_splits_are_refused_naming_the_file(tmp_path, over, match):
    path = _npz(tmp_path / "d.npz", **over)
    with pytest.raises(DataError, match=match) as info:
        load("fashion-mnist", path)
    assert str(path) in str(info.value)


def test_a_dataset_given_in_code_is_checked_too(tmp_path):
    d = blobs()
    d.x_train[3, 5] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        train(config(), tmp_path / "run", data=d, progress=False)
    assert not (tmp_path / "run").exists()  # refused before the run directory is made


def test_gzip_corrupt_inside_its_deflate_data_is_a_data_error(tmp_path):
    for stem in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        write_idx(tmp_path / f"{stem}.gz", np.zeros((5, 28, 28), np.uint8))
    for stem in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        write_idx(tmp_path / f"{stem}.gz", np.zeros(5, np.uint8))
    f = tmp_path / "train-images-idx3-ubyte.gz"
    raw = bytearray(gzip.compress(os.urandom(4000)))  # incompressible: a long deflate stream
    raw[len(raw) // 2] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load("fashion-mnist", tmp_path)


# ---- parameter files ------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    cfg = ModelConfig(sizes=[6, 5, 4, 3], seed=1)
    return cfg, GhostNetwork(cfg).save(tmp_path / "net.npz")


def _rewrite(path, **changes):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    np.savez(path, **arrays)


def test_symmetric_feedback_that_is_not_w_transposed_is_refused(saved):
    cfg, path = saved
    with np.load(path) as z:
        B = z["B_0"] + 0.1
    _rewrite(path, B_0=B)
    with pytest.raises(CheckpointError, match="B_0 is not W_1\\^T.*symmetric"):
        Params.load(path)
    with pytest.raises(CheckpointError):
        GhostNetwork.load(path)


def test_copy_ghosts_that_differ_from_their_source_and_nan_weights_are_refused(saved):
    cfg, path = saved
    with np.load(path) as z:
        G, W = z["G_1"] * 2, z["W_0"].copy()
    _rewrite(path, G_1=G)
    with pytest.raises(CheckpointError, match="G_1 is not W_2.*copy"):
        Params.load(path)
    _rewrite(path, G_1=G / 2)
    Params.load(path)  # repaired: loads
    W[0, 0] = np.nan
    _rewrite(path, W_0=W)
    with pytest.raises(CheckpointError, match="W_0 holds non-finite"):
        Params.load(path)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_truncated_or_bit_flipped_checkpoint_is_a_clear_error(tmp_path, damage, capsys):
    train(config(epochs=1), tmp_path / "run", data=blobs(), progress=False)
    ck = tmp_path / "run" / "checkpoint.npz"
    raw = bytearray(ck.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw[len(raw) // 3] ^= 0x10  # inside the stored arrays: the zip CRC catches it
    ck.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checkpoint.npz"):
        Params.load(ck)


# ---- strict JSON ---------------------------------------------------------------------------------
def test_strict_json_writes_null_for_non_finite_numbers():
    obj = {"a": float("nan"), "b": [np.float32("inf"), np.float64(-np.inf), 1.5],
           "c": np.array([np.nan, 2.0]), "d": np.int64(3), "e": (np.float16(np.nan),)}
    text = dumps(obj)
    assert loads(text) == {"a": None, "b": [None, None, 1.5], "c": [None, 2.0], "d": 3,
                           "e": [None]}
    with pytest.raises(ValueError, match="NaN"):
        loads(json.dumps(float("nan")))  # the standard library writes a bare NaN


def test_run_files_and_gradcheck_json_are_strict(tmp_path, capsys, monkeypatch):
    train(config(epochs=1), tmp_path, data=blobs(), progress=False)
    for name in ("summary.json", "meta.json", "run.json"):
        loads((tmp_path / name).read_text())
    from ghostnet.checks import gradcheck as gc

    original = gc.gradcheck

    def undefined_angle(*a, **k):  # a layer whose reference gradient is zero: angle undefined
        out = original(*a, **k)
        out["layers"][0]["angle_deg"] = np.float32("nan")
        out["layers"][0]["norm_ratio"] = float("inf")
        return out
    monkeypatch.setattr(gc, "gradcheck", undefined_angle)
    assert main(["gradcheck", "--sizes", "6,5,3", "--mode", "equilibrium", "--json"]) == 0
    row = loads(capsys.readouterr().out)["layers"][0]
    assert row["angle_deg"] is None and row["norm_ratio"] is None


# ---- the command line ----------------------------------------------------------------------------
@pytest.fixture
def cli_run(tmp_path):
    """A dataset .npz (784 inputs) beside a config that names it by a relative path."""
    d = tmp_path / "proj"
    d.mkdir()
    rng = np.random.default_rng(0)
    np.savez(d / "data.npz", x_train=rng.integers(0, 256, (40, 784), dtype=np.uint8),
             y_train=rng.integers(0, 10, 40), x_test=rng.integers(0, 256, (20, 784), dtype=np.uint8),
             y_test=rng.integers(0, 10, 20))
    (d / "c.toml").write_text(
        '[model]\nsizes = [784, 6, 10]\nmode = "equilibrium"\nbeta = 0.01\n'
        '[train]\ndataset = "fashion-mnist"\ndata_source = "data.npz"\nepochs = 1\n'
        'batch_size = 20\nlr = 0.5\nprobe_size = 5\n')
    return d


def test_cli_relative_data_source_is_resolved_against_the_config_file(cli_run, tmp_path,
                                                                      monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # not the config's folder
    assert main(["train", "--config", "proj/c.toml", "--out", "r", "--no-progress"]) == 0
    stored = TrainConfig.load(tmp_path / "r" / "config.toml")
    assert stored.train.data_source == str((cli_run / "data.npz").resolve())
    # a second run into the same directory is refused, in one line
    assert main(["train", "--config", "proj/c.toml", "--out", "r", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "already holds a finished run" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "--config", "proj/c.toml", "--out", "r", "--no-progress",
                 "--overwrite"]) == 0


def _signal_at_second_step(monkeypatch, sig):
    """Send ``sig`` to this process as the learner's second step begins."""
    hit = {"n": 0}
    original = Learner.step

    def step(self, *a):
        hit["n"] += 1
        if hit["n"] == 2:
            os.kill(os.getpid(), sig)
        return original(self, *a)
    monkeypatch.setattr(Learner, "step", step)


def test_cli_resume_needs_only_the_directory_and_names_changed_settings(cli_run, tmp_path,
                                                                        monkeypatch, capsys):
    out = tmp_path / "r"
    _signal_at_second_step(monkeypatch, signal.SIGTERM)
    argv = ["train", "--config", str(cli_run / "c.toml"), "--out", str(out), "--no-progress"]
    assert main(argv) == 128 + signal.SIGTERM
    monkeypatch.undo()
    assert run_status(out) == "interrupted"
    assert main(["train", "--resume", "--out", str(out), "--seed", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "model.seed (0 -> 3)" in err and "train.seed (0 -> 3)" in err
    assert main(["train", "--resume", "--out", str(out), "--no-progress"]) == 0
    assert run_status(out) == "finished"


@pytest.mark.parametrize("make,argv,needle", [
    (None, ["--data-source", ""], "'data-source'"),
    ("dir", [], "is a directory"),
    ("model5", [], "'model': must be a table"),
    ("beta0", [], "'beta'"),
    (None, ["--resume"], "'out'"),
])
def test_cli_configuration_errors_are_one_line(cli_run, tmp_path, make, argv, needle, capsys):
    cfg = cli_run / "c.toml"
    if make == "dir":
        cfg = tmp_path / "adir"
        cfg.mkdir()
    elif make == "model5":
        cfg = tmp_path / "m.toml"
        cfg.write_text("model = 5\n")
    elif make == "beta0":
        cfg = tmp_path / "b.toml"
        cfg.write_text((cli_run / "c.toml").read_text().replace("beta = 0.01", "beta = 0.0")
                       .replace('"data.npz"', f'"{cli_run / "data.npz"}"'))
    args = ["train", "--out", str(tmp_path / "out"), "--no-progress", *argv]
    if "--resume" not in argv:
        args += ["--config", str(cfg)]
    else:
        args.remove("--out")
        args.remove(str(tmp_path / "out"))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before the run directory is written


def test_cli_unwritable_output_and_divergence_exit_statuses(cli_run, tmp_path, monkeypatch,
                                                            capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    argv = ["train", "--config", str(cli_run / "c.toml"), "--no-progress"]
    if os.geteuid() != 0:
        ro.chmod(0o500)
    else:  # root writes anywhere: inject the operating system's refusal
        import ghostnet.io

        def refuse(*a, **k):
            raise PermissionError(13, "Permission denied", str(ro / "run" / "run.json"))
        monkeypatch.setattr(ghostnet.io.tempfile, "mkstemp", refuse)
    assert main([*argv, "--out", str(ro / "run")]) == 2
    err = capsys.readouterr().err
    assert "ro" in err and "ermission denied" in err and len(err.strip().splitlines()) == 1
    ro.chmod(0o700)
    monkeypatch.undo()
    rng = np.random.default_rng(0)  # data on which a relu network's first steps blow up
    np.savez(tmp_path / "dv.npz", x_train=rng.integers(0, 256, (40, 784)) / 255.0,
             y_train=rng.integers(0, 10, 40), x_test=rng.integers(0, 256, (20, 784)) / 255.0,
             y_test=rng.integers(0, 10, 20))
    diverge = tmp_path / "d.toml"
    diverge.write_text((cli_run / "c.toml").read_text().replace("lr = 0.5", "lr = 1e150")
                       .replace('"data.npz"', f'"{tmp_path / "dv.npz"}"')
                       .replace("[model]\n", '[model]\ntransfer = "relu"\n')
                       .replace("dataset =", 'learner = "backprop"\ndataset ='))
    assert main(["train", "--config", str(diverge), "--out", str(tmp_path / "dv"),
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "backprop learner diverged at epoch 1" in err and len(err.strip().splitlines()) == 1


def test_cli_corrupt_checkpoint_on_resume_is_one_line(cli_run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "r"
    _signal_at_second_step(monkeypatch, signal.SIGINT)
    assert main(["train", "--config", str(cli_run / "c.toml"), "--out", str(out),
                 "--no-progress"]) == 130
    monkeypatch.undo()
    ck = out / "checkpoint.npz"
    ck.write_bytes(ck.read_bytes()[:100])
    assert main(["train", "--resume", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.npz" in err and len(err.strip().splitlines()) == 1


# ---- random configurations and corruptions ---------------------------------------------------------
_GARBAGE = st.one_of(st.none(), st.text(max_size=5), st.integers(-3, 3),
                     st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                     st.lists(st.integers(-2, 30), max_size=4), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))

_MODEL = {
    "sizes": st.sampled_from([[12, 10, 4], [12, 4], [12, 6, 5, 4], [12, 0, 4], [3, 4]]),
    "transfer": st.sampled_from(["logistic", "tanh", "softplus", "relu", "sigmoid"]),
    "tau": st.floats(0.2, 3), "tau_g": st.floats(0.2, 3), "beta": st.floats(0, 2),
    "output": st.sampled_from(["nudge", "clamp", "x"]), "dt": st.floats(0.01, 3),
    "method": st.sampled_from(["euler", "expeuler", "rk4"]),
    "settle": st.sampled_from(["fixed", "tol"]), "steps": st.integers(0, 30),
    "tol": st.floats(1e-9, 1), "max_steps": st.integers(0, 60),
    "mode": st.sampled_from(["dynamics", "equilibrium", "x"]),
    "engine": st.sampled_from(["numba", "torch", "nope", "1x"]), "eq_tol": st.floats(1e-12, 1),
    "eq_max_iter": st.integers(0, 50), "mechanism": st.sampled_from(["copy", "learned", "replicate", "x"]),
    "feedback": st.sampled_from(["symmetric", "random", "plastic", "x"]),
    "baseline": st.booleans(), "eta_g": st.floats(0, 2), "eta_h": st.floats(0, 2),
    "gate_ghosts": st.booleans(), "weight_decay": st.floats(-1, 1), "init_gain": st.floats(0, 20),
    "seed": st.integers(-1, 5), "dtype": st.sampled_from(["float64", "float32", "int8"]),
    "cost": st.sampled_from(["mse", "cross_entropy", "x"]),
    "device": st.sampled_from(["auto", "cpu", "cuda", "tpu"]),
    "input": st.sampled_from([[], [1, 4, 3], [12], [0, 2, 2]]),
    "layers": st.sampled_from([[], [{"type": "dense", "units": 4}],
                               [{"type": "conv", "channels": 2, "kernel": 3}],
                               [{"type": "pool"}], ["x"]]),
}
_TRAIN = {
    "learner": st.sampled_from(["ghost", "backprop", "fa", "x"]),
    "dataset": st.sampled_from(["fashion-mnist", "mnist", "nope"]),
    "data_source": st.sampled_from(["", "/nonexistent.npz"]),
    "epochs": st.integers(0, 2), "batch_size": st.integers(0, 70), "lr": st.floats(0, 1e3),
    "momentum": st.sampled_from([0.0, 0.9]), "train_size": st.integers(0, 80),
    "val_size": st.integers(0, 70), "seed": st.integers(-1, 5), "probe_size": st.integers(0, 20),
    "pretrain": st.integers(0, 64), "pretrain_noise": st.floats(0, 2),
    "pretrain_loop": st.sampled_from(["closed", "open", "x"]),
    "optimizer": st.sampled_from(["sgd", "adam", "x"]), "nesterov": st.booleans(),
    "adam_betas": st.sampled_from([[0.9, 0.999], [0.5], [1.0, 0.9]]),
    "adam_eps": st.floats(-1e-8, 1e-3), "weight_decay": st.floats(-1, 1),
    "schedule": st.sampled_from(["constant", "step", "cosine", "x"]),
    "warmup_epochs": st.floats(-1, 3), "step_epochs": st.integers(0, 3),
    "step_gamma": st.floats(0, 2), "lr_min_ratio": st.floats(-1, 2),
    "standardize": st.sampled_from(["none", "pixel", "global", "x"]), "eval_train": st.booleans(),
    "threads": st.integers(-1, 2), "augment_shift": st.integers(-1, 3),
    "augment_flip": st.booleans(),
}


_MODEL_OK = {
    "sizes": st.sampled_from([[12, 10, 4], [12, 4], [12, 6, 5, 4]]),
    "transfer": st.sampled_from(["logistic", "tanh", "softplus", "relu"]),
    "tau": st.floats(0.5, 2), "tau_g": st.floats(0.5, 2), "beta": st.floats(1e-3, 1),
    "output": st.sampled_from(["nudge", "clamp"]), "dt": st.floats(0.01, 1.5),
    "method": st.sampled_from(["euler", "expeuler"]), "settle": st.sampled_from(["fixed", "tol"]),
    "steps": st.integers(1, 30), "tol": st.floats(1e-9, 1e-2), "max_steps": st.integers(1, 60),
    "mode": st.sampled_from(["dynamics", "equilibrium"]), "eq_tol": st.floats(1e-12, 1e-3),
    "eq_max_iter": st.integers(1, 50), "mechanism": st.sampled_from(["copy", "learned", "replicate"]),
    "feedback": st.sampled_from(["symmetric", "random", "plastic"]), "baseline": st.booleans(),
    "eta_g": st.floats(0.01, 0.5), "eta_h": st.floats(0.01, 0.5), "gate_ghosts": st.booleans(),
    "weight_decay": st.floats(0, 0.1), "init_gain": st.floats(0.1, 5), "seed": st.integers(0, 5),
    "dtype": st.sampled_from(["float64", "float32"]), "cost": st.sampled_from(["mse", "cross_entropy"]),
}
_TRAIN_OK = {
    "learner": st.sampled_from(["ghost", "backprop", "fa"]), "epochs": st.integers(1, 2),
    "batch_size": st.integers(1, 70), "lr": st.floats(0.01, 100), "train_size": st.integers(0, 60),
    "val_size": st.integers(0, 30), "seed": st.integers(0, 5), "probe_size": st.integers(0, 20),
    "pretrain": st.integers(0, 64), "pretrain_noise": st.floats(0, 1),
    "optimizer": st.sampled_from(["sgd", "adam"]), "momentum": st.sampled_from([0.0, 0.5]),
    "weight_decay": st.floats(0, 0.1), "schedule": st.sampled_from(["constant", "step", "cosine"]),
    "warmup_epochs": st.floats(0, 1), "standardize": st.sampled_from(["none", "pixel", "global"]),
    "eval_train": st.booleans(), "threads": st.integers(0, 1),
}


def _section(fields):
    """Each field left out, drawn from its range (valid or not), or garbage."""
    return st.fixed_dictionaries({}, optional={
        k: st.one_of(v, v, _GARBAGE) for k, v in fields.items()})


@st.composite
def _mostly_valid(draw):
    """Every field from its range, then at most one field replaced by garbage: most of these
    configurations pass validation, so training itself (settling, learning, checks) is
    exercised."""
    d = {"model": draw(st.fixed_dictionaries({}, optional=_MODEL_OK)),
         "train": draw(st.fixed_dictionaries({}, optional=_TRAIN_OK))}
    if d["train"].get("learner") == "fa":
        d["model"]["feedback"] = "random"
    if draw(st.integers(0, 3)) == 0:
        section = draw(st.sampled_from(["model", "train"]))
        d[section][draw(st.sampled_from(sorted((_MODEL if section == "model" else _TRAIN))))] = \
            draw(_GARBAGE)
    return d


def _run_or_ghostnet_error(tmp_path_factory, d):
    out = tmp_path_factory.mktemp("h")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            try:
                cfg = TrainConfig.from_dict(d)
                summary = train(cfg, out / "run", data=blobs(), progress=False)
            except GhostnetError as exc:
                event(type(exc).__name__)
                return
    event("ran")
    assert summary["final"]["epoch"] == cfg.train.epochs
    loads((out / "run" / "summary.json").read_text())


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(model=_section(_MODEL), train_=_section(_TRAIN))
def test_random_configurations_run_or_raise_a_ghostnet_error(tmp_path_factory, model, train_):
    _run_or_ghostnet_error(tmp_path_factory, {"model": model, "train": train_})


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(d=_mostly_valid())
def test_mostly_valid_random_configurations_run_or_raise_a_ghostnet_error(tmp_path_factory, d):
    _run_or_ghostnet_error(tmp_path_factory, d)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(["truncate", "flip", "zero", "append", "nan", "shape", "label",
                             "dtype"]),
       where=st.floats(0, 1), bit=st.integers(0, 7))
def test_random_corruptions_of_data_and_checkpoints_load_or_raise_a_ghostnet_error(
        tmp_path_factory, kind, where, bit):
    d = tmp_path_factory.mktemp("c")
    data = _npz(d / "d.npz")
    ck = GhostNetwork(ModelConfig(sizes=[6, 5, 4, 3])).save(d / "ck.npz")
    for path in (data, ck):
        raw = bytearray(path.read_bytes())
        i = min(int(where * len(raw)), len(raw) - 1)
        if kind == "truncate":
            raw = raw[:i]
        elif kind == "flip":
            raw[i] ^= 1 << bit
        elif kind == "zero":
            raw[i:i + 64] = bytes(len(raw[i:i + 64]))
        elif kind == "append":
            raw += os.urandom(bit + 1)
        path.write_bytes(bytes(raw))
    if kind == "nan":
        _npz(data, x_train=np.where(np.arange(784) == bit, np.nan, 0.5)[None].repeat(30, 0))
    elif kind == "shape":
        _npz(data, x_test=np.zeros((20, 10 + bit), np.uint8))
    elif kind == "label":
        _npz(data, y_train=np.full(30, 10 + bit))
    elif kind == "dtype":
        _npz(data, x_train=np.full((30, 784), "a"))
    for fn in (lambda: load("fashion-mnist", data), lambda: Params.load(ck)):
        try:
            fn()
        except GhostnetError:
            pass


def test_the_random_configurations_cover_every_field():
    import dataclasses

    from ghostnet.learning.settings import TrainSettings

    assert set(_MODEL) == {f.name for f in dataclasses.fields(ModelConfig)}
    assert set(_TRAIN) == {f.name for f in dataclasses.fields(TrainSettings)}
