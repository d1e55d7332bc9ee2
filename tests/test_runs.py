"""Run directories and interrupts: a run resumed after SIGINT or SIGTERM at any kind of point (in the
middle of the SGD update, during the checkpoint write, at an epoch boundary, before the first
batch, during evaluation, during pre-training, after kill -9) ends bit-identical to an
uninterrupted one, metrics.csv included (the seconds column aside); run directories are never
reused silently, shared, or resumed with another configuration.

Oracle: the uninterrupted run of the same configuration. Faults are injected from inside the run
(a patched function sends the signal to this process at its N-th call), not by timing."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from ghostnet import ModelConfig, Params
from ghostnet.errors import GhostnetWarning, RunDirError
from ghostnet.io import loads
from ghostnet.learning import runs
from ghostnet.learning import optim
from ghostnet.learning import training as training_mod
from ghostnet.learning.data import Dataset
from ghostnet.learning.learners import Learner
from ghostnet.learning.runs import RunLock, finished_runs, run_status
from ghostnet.learning.training import (
    Interrupted, TrainConfig, TrainSettings, Trainer, resume_run, train,
)
from ghostnet.model import plasticity

N_TRAIN, BATCH, EPOCHS = 60, 10, 3
BATCHES = N_TRAIN // BATCH


def blobs(seed=0, n_train=N_TRAIN, n_test=40, dim=12, classes=4) -> Dataset:
    """Four noisy prototypes in [0, 1]^12."""
    rng = np.random.default_rng(seed)
    protos = rng.uniform(0, 1, (classes, dim))

    def draw(n):
        y = rng.integers(0, classes, n)
        return np.clip(protos[y] + rng.normal(0, 0.15, (n, dim)), 0, 1).astype(np.float32), y

    (xt, yt), (xs, ys) = draw(n_train), draw(n_test)
    return Dataset("synthetic", xt, yt, xs, ys, classes, "test blobs")


def config(learner="ghost", epochs=EPOCHS, train=None, **model) -> TrainConfig:
    m = dict(sizes=[12, 10, 4], mode="equilibrium", beta=0.01, dtype="float64")
    m.update(model)
    if learner == "fa":
        m.setdefault("feedback", "random")
    t = dict(learner=learner, epochs=epochs, batch_size=BATCH, lr=1.0, probe_size=10)
    t.update(train or {})
    return TrainConfig(ModelConfig(**m), TrainSettings(**t)).validate()


def params_of(run: Path) -> Params:
    return Params.load(run / "checkpoint.npz")[0]


def metrics_without_seconds(run: Path) -> list[dict]:
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    for r in rows:
        del r["seconds"]
    return rows


def assert_same_run(a: Path, b: Path) -> None:
    pa, pb = params_of(a), params_of(b)
    for k in ("W", "b", "B", "G", "c", "H"):
        for x, y in zip(getattr(pa, k), getattr(pb, k)):
            assert np.array_equal(x, y), k
    assert metrics_without_seconds(a) == metrics_without_seconds(b)
    assert run_status(a) == run_status(b) == "finished"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted runs, one per configuration used below."""
    out = tmp_path_factory.mktemp("reference")
    cache = {}

    def get(name, cfg):
        if name not in cache:
            train(cfg, out / name, data=blobs(), progress=False)
            cache[name] = out / name
        return cache[name]

    return get


def _kill_at(n, sig=signal.SIGINT, times=1):
    """A callable that sends ``sig`` to this process (``times`` times) on its n-th call."""
    calls = {"n": 0}

    def hit():
        calls["n"] += 1
        if calls["n"] == n:
            for _ in range(times):
                os.kill(os.getpid(), sig)
    return hit


def _inject(monkeypatch, point, sig=signal.SIGINT, times=1):
    """Patch the function where ``point`` happens to send the signal from inside it."""
    if point == "update":  # between W_0 += and W_1 +=: the first of step 9's four axpys
        hit = _kill_at(4 * 8 + 1, sig, times)  # (the optimizer's plain SGD: W_0, W_1, b_0, b_1)
        original = plasticity._add_scaled

        def add_scaled(y, a, x):
            original(y, a, x)
            hit()
        monkeypatch.setattr(plasticity, "_add_scaled", add_scaled)
        monkeypatch.setattr(optim, "_add_scaled", add_scaled)  # the trainer's optimizer's step
    elif point == "checkpoint":  # half-way through writing the end-of-epoch-1 checkpoint
        hit = _kill_at(1, sig, times)
        from ghostnet.model import params as params_mod

        original = params_mod.atomic_write

        def atomic_write(path, write, *a, **k):
            def half_then_signal(fh):
                write(fh)
                fh.flush()
                fh.truncate(fh.tell() // 2)  # the temporary file is half-written here
                hit()
                fh.seek(0)
                write(fh)
            return original(path, half_then_signal, *a, **k)
        monkeypatch.setattr(params_mod, "atomic_write", atomic_write)
    elif point == "epoch_end":  # right after the last step of epoch 1
        hit = _kill_at(BATCHES, sig, times)
        original = Learner.step

        def step(self, *a):
            out = original(self, *a)
            hit()
            return out
        monkeypatch.setattr(Learner, "step", step)
    elif point == "before_first_batch":
        hit = _kill_at(1, sig, times)
        original = Trainer._start

        def start(self, learner):
            original(self, learner)
            hit()
        monkeypatch.setattr(Trainer, "_start", start)
    elif point == "evaluation":  # the first evaluation of epoch 2
        hit = _kill_at(3, sig, times)
        original = training_mod.evaluate

        def evaluate(*a, **k):
            hit()
            return original(*a, **k)
        monkeypatch.setattr(training_mod, "evaluate", evaluate)
    else:
        raise AssertionError(point)


@pytest.mark.parametrize("point,signame,learner", [
    ("update", "SIGINT", "ghost"),
    ("update", "SIGTERM", "ghost"),
    ("update", "SIGINT", "backprop"),
    ("checkpoint", "SIGINT", "ghost"),
    ("epoch_end", "SIGINT", "ghost"),
    ("epoch_end", "SIGTERM", "fa"),
    ("before_first_batch", "SIGINT", "ghost"),
    ("evaluation", "SIGINT", "ghost"),
    ("evaluation", "SIGTERM", "backprop"),
    ("update", "SIGINT", "ghost-dynamics"),
])
def test_signal_at_any_point_then_resume_is_bit_identical(tmp_path, monkeypatch, reference, point,
                                                          signame, learner):
    sig = getattr(signal, signame)
    # ghost-dynamics: 10 fixed steps leave every phase unsettled, so the per-epoch counts in
    # metrics.csv must survive the interruption too
    cfg = (config(mode="dynamics", settle="fixed", steps=10) if learner == "ghost-dynamics"
           else config(learner))
    full = reference(learner, cfg)
    cut = tmp_path / "cut"
    _inject(monkeypatch, point, sig)
    with pytest.raises(Interrupted) as info:
        train(cfg, cut, data=blobs(), progress=False)
    assert info.value.signum == sig
    assert run_status(cut) == "interrupted"
    assert not (cut / "summary.json").exists()
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GhostnetWarning)
        resume_run(cut, progress=False, data=blobs())  # the stored configuration
    assert_same_run(full, cut)
    if learner == "ghost-dynamics":
        rows = metrics_without_seconds(cut)
        assert [int(r["unsettled_phases"]) for r in rows] == [2 * BATCHES] * EPOCHS


def test_second_ctrl_c_stops_at_once_and_the_last_checkpoint_still_resumes(tmp_path, monkeypatch,
                                                                            reference):
    cfg = config()
    full = reference("ghost", cfg)
    _inject(monkeypatch, "update", signal.SIGINT, times=2)
    with pytest.raises(KeyboardInterrupt) as info:
        train(cfg, tmp_path, data=blobs(), progress=False)
    assert not isinstance(info.value, Interrupted)  # no checkpoint of the half-applied step
    _, _, extra = Params.load(tmp_path / "checkpoint.npz", extra=True)
    assert (extra["epoch"], extra["batch"]) == (2, 0)  # the end of epoch 1
    monkeypatch.undo()
    train(cfg, tmp_path, resume=True, data=blobs(), progress=False)
    assert_same_run(full, tmp_path)


def test_interrupt_during_pretraining_restarts_it_identically(tmp_path, monkeypatch, reference):
    cfg = config(mechanism="learned", epochs=2, train={"pretrain": 200})
    full = reference("learned", cfg)
    from ghostnet.network import mechanisms

    hit, original = _kill_at(3), mechanisms.ghost_plasticity

    def plastic(*a, **k):
        hit()
        return original(*a, **k)
    monkeypatch.setattr(mechanisms, "ghost_plasticity", plastic)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path, data=blobs(), progress=False)
    assert run_status(tmp_path) == "interrupted" and not (tmp_path / "checkpoint.npz").exists()
    monkeypatch.undo()
    resume_run(tmp_path, progress=False, data=blobs())
    assert_same_run(full, tmp_path)
    meta = loads((tmp_path / "meta.json").read_text())
    assert meta["pretrain"] == loads((full / "meta.json").read_text())["pretrain"]


def test_kill_9_then_resume_is_bit_identical(tmp_path, reference):
    """A process killed by SIGKILL (no handler runs) inside epoch 2's update: its manifest still
    says running, nobody holds the lock, so it reads as interrupted and resumes exactly."""
    cfg = config()
    full = reference("ghost", cfg)
    data = tmp_path / "data.npz"
    d = blobs()
    np.savez(data, x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, y_test=d.y_test)
    script = textwrap.dedent(f"""
        import os, signal, sys
        import numpy as np
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_runs import blobs, config
        from ghostnet.model import plasticity
        from ghostnet.learning import optim
        from ghostnet.learning.training import train
        calls = [0]
        original = plasticity._add_scaled
        def add_scaled(y, a, x):
            original(y, a, x)
            calls[0] += 1
            if calls[0] == 4 * 8 + 1:  # inside step 9's update, as above
                os.kill(os.getpid(), signal.SIGKILL)
        plasticity._add_scaled = optim._add_scaled = add_scaled
        train(config(), {str(tmp_path / 'run')!r}, data=blobs(), progress=False)
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run = tmp_path / "run"
    assert runs.read_manifest(run)["status"] == "running"
    assert run_status(run) == "interrupted"
    resume_run(run, progress=False, data=blobs())
    assert_same_run(full, run)


# ---- run directories -------------------------------------------------------------------------
def _snapshot(path: Path) -> dict:
    return {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}


def test_a_new_run_refuses_a_finished_run_directory_and_overwrite_replaces_it(tmp_path):
    cfg = config(epochs=1)
    train(cfg, tmp_path, data=blobs(), progress=False)
    before = _snapshot(tmp_path)
    other = config(epochs=1, train={"lr": 0.5})
    with pytest.raises(RunDirError, match="already holds a finished run.*--overwrite"):
        train(other, tmp_path, data=blobs(), progress=False)
    assert _snapshot(tmp_path) == before  # config.toml, metrics.csv, summary.json untouched
    train(other, tmp_path, data=blobs(), progress=False, overwrite=True)
    assert TrainConfig.load(tmp_path / "config.toml") == other
    assert run_status(tmp_path) == "finished"


def test_a_new_run_refuses_a_directory_of_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not a ghostnet run.*notes.txt"):
        train(config(epochs=1), tmp_path, data=blobs(), progress=False)
    train(config(epochs=1), tmp_path, data=blobs(), progress=False, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"  # only the run's own files are replaced


def test_an_overwriting_run_killed_in_a_finished_directory_is_not_reported_finished(tmp_path,
                                                                                     monkeypatch):
    train(config(epochs=1), tmp_path, data=blobs(), progress=False)
    hit, original = _kill_at(3), Learner.step

    def step(self, *a):
        hit()
        return original(self, *a)
    monkeypatch.setattr(Learner, "step", step)
    with pytest.raises(Interrupted):
        train(config(epochs=2), tmp_path, data=blobs(), progress=False, overwrite=True)
    assert run_status(tmp_path) == "interrupted" and not (tmp_path / "summary.json").exists()
    assert finished_runs([tmp_path]) == ([], [(tmp_path, "interrupted")])
    with pytest.raises(RunDirError, match="interrupted run.*--resume"):
        train(config(epochs=2), tmp_path, data=blobs(), progress=False)


def test_two_processes_cannot_share_a_run_directory(tmp_path):
    cfg = config(epochs=1)
    tmp_path.mkdir(exist_ok=True)
    with RunLock(tmp_path):  # another process's lock: flock locks open file descriptions
        with pytest.raises(RunDirError, match="in use by another ghostnet process"):
            train(cfg, tmp_path, data=blobs(), progress=False)
        with pytest.raises(RunDirError, match="in use"):
            train(cfg, tmp_path, data=blobs(), progress=False, overwrite=True)
    train(cfg, tmp_path, data=blobs(), progress=False)
    assert run_status(tmp_path) == "finished"


def test_the_lock_keeps_out_a_second_process(tmp_path):
    """A real second process holds the directory's lock: a run here is refused, naming its pid
    from the manifest, until that process ends (its lock goes with it, however it ends)."""
    run = tmp_path / "run"
    train(config(epochs=1), run, data=blobs(), progress=False, overwrite=True)
    code = ("import sys; from ghostnet.learning.runs import RunLock; "
            "RunLock(sys.argv[1]).acquire(); print('locked', flush=True); sys.stdin.read()")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    holder = subprocess.Popen([sys.executable, "-c", code, str(run)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        pid = runs.read_manifest(run)["pid"]
        with pytest.raises(RunDirError, match=rf"in use by another ghostnet process \(pid {pid}\)"):
            train(config(epochs=1), run, data=blobs(), progress=False, overwrite=True)
        assert run_status(run) == "finished"
    finally:
        holder.kill()
        holder.wait()
    train(config(epochs=1), run, data=blobs(), progress=False, overwrite=True)


def test_run_status_reads_a_live_run_as_running(tmp_path, monkeypatch):
    seen = []
    original = Learner.step

    def step(self, *a):
        if not seen:  # look from outside while the run holds its directory
            seen.append(run_status(tmp_path))
        return original(self, *a)
    monkeypatch.setattr(Learner, "step", step)
    train(config(epochs=1), tmp_path, data=blobs(), progress=False)
    assert seen == ["running"] and run_status(tmp_path) == "finished"
    m = runs.read_manifest(tmp_path)
    assert m["status"] == "finished" and TrainConfig.from_dict(m["config"]) == config(epochs=1)
    assert {"ghostnet_version", "git_hash", "created", "updated", "pid"} <= set(m)


def test_legacy_directories_and_empty_ones(tmp_path):
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "config.toml").write_text(config(epochs=1).to_toml())
    (legacy / "metrics.csv").write_text("epoch,test_acc\n1,0.5\n")
    assert run_status(legacy) == "interrupted"
    (legacy / "summary.json").write_text("{}")
    assert run_status(legacy) == "finished"  # committed results from before manifests
    assert run_status(tmp_path / "nothing") is None
    (tmp_path / "empty").mkdir()
    assert run_status(tmp_path / "empty") is None
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.json").write_text("{not json")
    with pytest.raises(RunDirError, match="not a run manifest"):
        run_status(bad)
    assert finished_runs([legacy, bad]) == ([legacy], [(bad, "unreadable")])


# ---- resuming --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("interrupted") / "run"
    mp = pytest.MonkeyPatch()
    _inject(mp, "update")
    try:
        with pytest.raises(Interrupted):
            train(config(), out, data=blobs(), progress=False)
    finally:
        mp.undo()
    return out


@pytest.mark.parametrize("section,name,value", [
    ("train", "lr", 0.5), ("model", "beta", 0.02), ("model", "mode", "dynamics"),
    ("train", "learner", "backprop"), ("model", "feedback", "random"),
    ("model", "mechanism", "replicate"), ("train", "batch_size", 20), ("train", "seed", 3),
    ("model", "seed", 3), ("train", "train_size", 50), ("model", "transfer", "tanh"),
    ("train", "data_source", "/elsewhere/data.npz"), ("train", "epochs", 5),
])
def test_resume_refuses_every_changed_setting_by_name(interrupted_run, section, name, value):
    d = config().to_dict()
    d[section][name] = value
    changed = TrainConfig.from_dict(d)
    before = _snapshot(interrupted_run)
    with pytest.raises(RunDirError, match=rf"changed: {section}\.{name} \("):
        train(changed, interrupted_run, resume=True, data=blobs(), progress=False)
    assert _snapshot(interrupted_run) == before


def test_resume_refuses_other_data_and_a_missing_or_failed_run(interrupted_run, tmp_path):
    with pytest.raises(RunDirError, match="data differ"):
        train(config(), interrupted_run, resume=True, data=blobs(seed=1), progress=False)
    with pytest.raises(RunDirError, match="holds no run"):
        train(config(), tmp_path / "none", resume=True, data=blobs(), progress=False)
    with pytest.raises(RunDirError, match="holds no run"):
        resume_run(tmp_path / "none", progress=False)


def test_resuming_a_finished_run_returns_its_summary_and_changes_nothing(tmp_path):
    summary = train(config(epochs=1), tmp_path, data=blobs(), progress=False)
    before = _snapshot(tmp_path)
    assert resume_run(tmp_path, progress=False, data=blobs()) == summary
    assert _snapshot(tmp_path) == before


def test_figures_draw_finished_runs_only_and_name_the_ones_skipped(tmp_path, monkeypatch, capsys):
    """The learning figure reads results/table/<config>/<variant>-s<seed>/metrics.csv: an
    interrupted run beside a finished one is left out, and the command says so."""
    from ghostnet.cli import main

    table = tmp_path / "results" / "table" / "small"
    train(config(epochs=2), table / "ghost-copy-symmetric-s0", data=blobs(), progress=False)
    train(config("backprop", epochs=2), table / "backprop-s0", data=blobs(), progress=False)
    _inject(monkeypatch, "epoch_end")
    with pytest.raises(Interrupted):
        train(config("backprop", epochs=2, train={"seed": 1}), table / "backprop-s1",
              data=blobs(), progress=False)
    monkeypatch.undo()
    assert main(["figures", "--results", str(tmp_path / "results"), "--out",
                 str(tmp_path / "fig"), "--only", "learning", "--format", "png"]) == 0
    err = capsys.readouterr().err
    assert f"skipped {table / 'backprop-s1'} (interrupted run" in err
    assert "backprop-s0" not in err and (tmp_path / "fig" / "learning.png").is_file()


def test_a_run_from_before_manifests_resumes_from_its_config_toml(tmp_path, monkeypatch, reference):
    cfg = config()
    full = reference("ghost", cfg)
    _inject(monkeypatch, "update")
    with pytest.raises(Interrupted):
        train(cfg, tmp_path, data=blobs(), progress=False)
    monkeypatch.undo()
    (tmp_path / "run.json").unlink()  # as the directories written before manifests
    assert run_status(tmp_path) == "interrupted"
    resume_run(tmp_path, progress=False, data=blobs())
    assert_same_run(full, tmp_path)
