"""Sweeps: the points are the cross product the sweep file states, every point is validated before
any work, a sweep on a local Dask cluster gives the runs that ``train`` gives alone, bit for bit
(a worker killed mid-point included), a rerun skips finished points, a failed point does not stop
the others, the report is the mean and sd of the run directories' metrics, and ``threads`` bounds
every thread pool. A tiny dataset made here: no network needed."""
from __future__ import annotations

import csv
import dataclasses
import os
import re
import shutil
import signal
import threading
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from ghostnet.cli import main as cli_main
from ghostnet.learning import sweep as sw
from ghostnet.learning.settings import TrainConfig, TrainSettings
from ghostnet.learning.threads import limit_threads
from ghostnet.learning.training import train
from ghostnet.model.config import ConfigError


@pytest.fixture
def tiny(tmp_path):
    """A learnable 28 x 28 dataset (.npz, 200/100 images) and a base config for it."""
    rng = np.random.default_rng(7)
    protos = rng.uniform(0, 1, (10, 784))

    def draw(n):
        y = rng.integers(0, 10, n)
        x = np.clip(protos[y] + rng.normal(0, 0.2, (n, 784)), 0, 1)
        return (x * 255).astype(np.uint8).reshape(n, 28, 28), y.astype(np.uint8)

    (xt, yt), (xs, ys) = draw(200), draw(100)
    npz = tmp_path / "tiny.npz"
    np.savez(npz, x_train=xt, y_train=yt, x_test=xs, y_test=ys)
    base = tmp_path / "base.toml"
    base.write_text(f"""
[model]
sizes = [784, 12, 10]
mode = "equilibrium"
dtype = "float64"
[train]
dataset = "mnist"
data_source = "{npz}"
epochs = 2
batch_size = 10
lr = 0.5
probe_size = 10
""")
    return tmp_path


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _same_run(a: Path, b: Path, skip: tuple = ()) -> None:
    """Two run directories hold the same run: final weights bit for bit, every metric but time
    (and the checkpoint's entries in ``skip``)."""
    with np.load(a / "checkpoint.npz") as za, np.load(b / "checkpoint.npz") as zb:
        drop = {"extra_json", *skip}
        weights = [k for k in za.files if k not in drop]
        assert weights and sorted(weights) == sorted(k for k in zb.files if k not in drop)
        for k in weights:
            assert np.array_equal(za[k], zb[k]), k
    ra, rb = (list(csv.DictReader(open(p / "metrics.csv"))) for p in (a, b))
    assert len(ra) == len(rb) > 0
    for x, y in zip(ra, rb):
        x.pop("seconds"), y.pop("seconds")
        assert x == y


# ---- the sweep file -----------------------------------------------------------------------------
def test_grid_is_the_cross_product_and_points_cross_it(tiny):
    s = sw.load_sweep(_write(tiny / "s.toml", """
base = "base.toml"
[grid]
seed = [0, 1, 2]
[grid.model]
beta = [0.01, 0.001]
[[points]]
name = "ghost"
[[points]]
name = "fa"
train.learner = "fa"
model.feedback = "random"
"""))
    assert len(s.points) == 2 * 3 * 2
    seen = {(p.label, p.config.model.beta, p.config.train.seed) for p in s.points}
    assert seen == {(n, b, k) for n in ("ghost", "fa") for b in (0.01, 0.001) for k in (0, 1, 2)}
    for p in s.points:
        assert p.config.model.seed == p.config.train.seed  # [grid] seed sets both
        assert p.config.train.learner == ("fa" if p.label == "fa" else "ghost")
        assert p.config.model.feedback == ("random" if p.label == "fa" else "symmetric")
        assert p.config.train.threads == 1  # one thread a sweep worker
        assert p.config.train.epochs == 2  # the rest from the base
    assert len({p.dirname for p in s.points}) == len(s.points)
    assert "fa,seed=2,beta=0.01" in {p.dirname for p in s.points}
    assert s.group_fields == ["name", "model.beta", "train.learner", "model.feedback"]


def test_dirname_template_and_overrides(tiny):
    path = _write(tiny / "s.toml", """
base = "base.toml"
dirname = "{name}-b{beta}-s{seed}"
[grid]
seed = [0, 1]
[grid.model]
beta = [0.5, 0.25]
[[points]]
name = "bp"
train.learner = "backprop"
""")
    s = sw.load_sweep(path)
    assert sorted(p.dirname for p in s.points) == sorted(
        f"bp-b{b}-s{k}" for b in (0.5, 0.25) for k in (0, 1))
    # --set: a field of every point; setting a grid axis leaves one value of it
    s = sw.load_sweep(path, sw.parse_overrides(["train.epochs=5", "seed=1"]))
    assert sorted(p.dirname for p in s.points) == ["bp-b0.25-s1", "bp-b0.5-s1"]
    assert {(p.config.train.epochs, p.config.model.seed) for p in s.points} == {(5, 1)}


@pytest.mark.parametrize("text,words", [
    ('[grid.model]\nbeta = [0.01, -1.0]', ["point 2", "beta=-1.0", "'beta'", ">= 0"]),
    ('[grid.train]\nlearner = ["ghost", "fa"]', ["point 2", "learner=fa", "'feedback'"]),
    ('[grid.model]\nbetta = [0.1]', ["unknown field 'model.betta'"]),
    ('[grid.train]\nepochs = 3', ["'train.epochs'", "non-empty list"]),
    ('[[points]]\ntrain.lr = 0', ["point 1", "'lr'"]),
    ('[[points]]\noptimizer = "adam"', ["[[points]] number 1", "unknown key 'optimizer'"]),
    ('dirname = "{nope}"\n[grid.model]\nbeta = [0.1, 0.2]', ["'dirname'", "nope"]),
    ('dirname = "fixed"\n[grid.model]\nbeta = [0.1, 0.2]', ["points 1 and 2", "'fixed'"]),
    ('[cluster]\ntype = "mesos"', ["[cluster] type", "slurm"]),
    ('wrkers = 2', ["unknown key 'wrkers'"]),
    ('[grid.model]\nbeta = [0.1, 0.2]\n[[points]]\nmodel.beta = 0.3', ["'model.beta'", "[grid]"]),
    ('[grid]\nseed = [0, 1]\n[grid.train]\nseed = [2]', ["'seed'", "'train.seed'"]),
])
def test_invalid_sweep_is_refused_before_any_work(tiny, text, words, capsys):
    path = _write(tiny / "bad.toml", 'base = "base.toml"\n' + text + "\n")
    with pytest.raises(sw.SweepError) as err:
        sw.load_sweep(path)
    for w in words:
        assert w in str(err.value)
    out = tiny / "out"
    assert cli_main(["sweep", str(path), "--out", str(out), "--workers", "2"]) == 2
    assert "ghostnet sweep: error:" in capsys.readouterr().err
    assert not out.exists()  # nothing started, not even the sweep directory


def test_a_point_may_start_from_its_own_base(tiny):
    other = _write(tiny / "other.toml", (tiny / "base.toml").read_text()
                   .replace("epochs = 2", "epochs = 3").replace("lr = 0.5", "lr = 0.25"))
    s = sw.load_sweep(_write(tiny / "s.toml", """
base = "base.toml"
dirname = "{name}-s{seed}"
[grid]
seed = [0, 1]
[[points]]
name = "plain"
[[points]]
name = "other"
base = "other.toml"
train.learner = "backprop"
"""))
    assert sorted(p.dirname for p in s.points) == ["other-s0", "other-s1", "plain-s0", "plain-s1"]
    for p in s.points:  # each point is its own base with the fields the sweep sets, nothing else
        b = TrainConfig.load(tiny / ("other.toml" if p.label == "other" else "base.toml"))
        want = TrainConfig(b.model.replace(seed=p.values["seed"]), dataclasses.replace(
            b.train, seed=p.values["seed"], threads=1,
            learner="backprop" if p.label == "other" else b.train.learner)).validate()
        assert p.config == want
    with pytest.raises(sw.SweepError, match=r"\[\[points\]\] number 1: base config 'gone.toml' not found"):
        sw.load_sweep(_write(tiny / "s.toml", 'base = "base.toml"\n[[points]]\nbase = "gone.toml"\n'))


def test_missing_base_and_bad_threads_are_refused(tiny):
    with pytest.raises(sw.SweepError, match="base config 'nowhere.toml' not found"):
        sw.load_sweep(_write(tiny / "s.toml", 'base = "nowhere.toml"\n'))
    with pytest.raises(ConfigError, match="threads"):
        sw.load_sweep(_write(tiny / "s.toml", 'base = "base.toml"\n'), threads=-1)


def test_a_run_directory_with_another_configuration_is_refused(tiny):
    s = sw.load_sweep(_write(tiny / "s.toml", 'base = "base.toml"\n[grid.model]\nbeta = [0.1, 0.2]\n'))
    other = dataclasses.replace(s.points[1].config,
                                model=dataclasses.replace(s.points[1].config.model, beta=0.3))
    (tiny / "out" / s.points[1].dirname).mkdir(parents=True)
    (tiny / "out" / s.points[1].dirname / "config.toml").write_text(other.to_toml())
    with pytest.raises(sw.SweepError, match=r"point 2 \(beta=0.2\).*model.beta = 0.3"):
        sw.run_sweep(s, tiny / "out", workers=0, progress=False, log=lambda m: None)
    assert not (tiny / "out" / s.points[0].dirname).exists()


@pytest.mark.parametrize("learner,mechanism", [("ghost", "copy"), ("backprop", "learned"),
                                               ("fa", "copy")])
def test_fields_a_run_does_not_read_do_not_make_it_another_run(tiny, learner, mechanism):
    """The learned ghosts' rates and pre-training are not read by copy ghosts or the baselines:
    changing them gives the same bits, so a sweep accepts (and skips) such a finished run and
    the trainer resumes it; for learned ghosts the same change is another run, refused."""
    base = TrainConfig.load(tiny / "base.toml")
    feedback = "random" if learner == "fa" else "symmetric"
    cfg = TrainConfig(base.model.replace(mechanism=mechanism, feedback=feedback),
                      dataclasses.replace(base.train, learner=learner, probe_size=0)).validate()
    other = TrainConfig(cfg.model.replace(eta_g=0.01, eta_h=0.03),
                        dataclasses.replace(cfg.train, pretrain=50, pretrain_loop="open")).validate()
    assert cfg.differences(other) == []
    train(cfg, tiny / "a", progress=False, threads=1)
    train(other, tiny / "b", progress=False, threads=1)
    _same_run(tiny / "a", tiny / "b", skip=("config_toml",))  # the claim itself: those fields do not change the run
    learned = TrainConfig(cfg.model.replace(mechanism="learned"),
                          dataclasses.replace(cfg.train, learner="ghost")).validate()
    changed = TrainConfig(learned.model.replace(eta_g=0.01), learned.train).validate()
    assert [k for k, _, _ in learned.changes(changed)] == ["model.eta_g"]
    # a sweep over the finished run with the other values skips it
    path = _write(tiny / "s.toml", f"""
base = "base.toml"
dirname = "a"
[[points]]
train.learner = "{learner}"
train.probe_size = 0
train.pretrain = 50
train.pretrain_loop = "open"
model.mechanism = "{mechanism}"
model.feedback = "{feedback}"
model.eta_g = 0.01
model.eta_h = 0.03
""")
    s = sw.load_sweep(path)
    assert sw.run_sweep(s, tiny, workers=0, progress=False, log=lambda m: None)[0]["skipped"]


# ---- running -------------------------------------------------------------------------------------
def test_local_cluster_sweep_matches_runs_alone_and_reruns_skip(tiny):
    path = _write(tiny / "s.toml", """
base = "base.toml"
[grid.model]
beta = [0.1, 0.01]
[grid.train]
seed = [0, 1]
""")
    s = sw.load_sweep(path)
    out = tiny / "sweep"
    said = []
    results = sw.run_sweep(s, out, workers=2, progress=False, log=said.append)
    assert [r["status"] for r in results] == ["finished"] * 4
    assert not any(r["skipped"] for r in results)
    # the LocalCluster serves its dashboard (bokeh is a dependency) and the sweep names it
    assert any(re.search(r"dashboard http://[\w.:-]+:\d+/status", m) for m in said), said
    assert len({r["pid"] for r in results}) == 2  # both worker processes took points
    for p in s.points:  # the same run as train() gives alone, in this process
        alone = tiny / "alone" / p.dirname
        train(p.config, alone, progress=False)
        _same_run(out / p.dirname, alone)
    # the report: one row a point, groups over the seeds, from the run directories
    rows = list(csv.DictReader(open(out / "report.csv")))
    assert [r["dir"] for r in rows] == [p.dirname for p in s.points]
    md = (out / "report.md").read_text().splitlines()
    assert md[0].startswith("| model.beta | seeds |")
    for beta, line in zip(("0.1", "0.01"), md[2:]):
        errs = [100 * (1 - float(list(csv.DictReader(open(out / f"beta={beta},seed={k}" /
                                                          "metrics.csv")))[-1]["test_acc"]))
                for k in (0, 1)]
        assert line.split(" | ")[:4] == [f"| {beta}", "2", "2",
                                         f"{np.mean(errs):.2f} +- {np.std(errs, ddof=1):.2f}"]
    assert len(md) == 4
    # a rerun skips all four and changes nothing
    before = {p.dirname: (out / p.dirname / "checkpoint.npz").stat().st_mtime_ns for p in s.points}
    again = sw.run_sweep(s, out, workers=2, progress=False, log=lambda m: None)
    assert [r["skipped"] for r in again] == [True] * 4
    assert {p.dirname: (out / p.dirname / "checkpoint.npz").stat().st_mtime_ns for p in s.points} == before


def _callback_times(server) -> dict[str, float]:
    """A Dask server's (worker, nanny, scheduler) periodic callbacks: name -> interval in ms."""
    return {k: v.callback_time for k, v in server.periodic_callbacks.items()}


def test_the_sweeps_local_cluster_keeps_dasks_housekeeping_rare():
    """The workers' sampling profiler is off and the periodic monitors run every 5 s, in the
    worker processes, their nannies and the scheduler (sweep.DASK_QUIET); Dask's own defaults
    (``config={}``) keep them, which shows the check looks where the settings act."""
    from distributed import Client

    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}
    for config, quiet in ((None, True), ({}, False)):
        with sw._local_cluster(1, 1, config) as cluster, Client(cluster) as client:
            assert os.environ["NUMBA_NUM_THREADS"] == "1"  # Dask's pre-spawn variables, here too
            (worker,) = client.run(lambda dask_worker: _callback_times(dask_worker)).values()
            (nanny,) = [_callback_times(n) for n in cluster.workers.values()]
            scheduler = cluster.scheduler
            assert ("profile" not in worker) is quiet
            assert ("stealing" not in scheduler.extensions) is quiet
            for cbs in (worker, nanny, _callback_times(scheduler)):
                assert (min(cbs[k] for k in ("tick", "monitor")) >= 5000) is quiet
            assert (min(worker["memory_monitor"], nanny["memory_monitor"]) >= 5000) is quiet
        # and this process's environment is as it was once the cluster is closed
        assert {k: os.environ.get(k) for k in env} == env


def test_rerun_resumes_an_interrupted_point_from_its_checkpoint(tiny, monkeypatch):
    """A point whose run was stopped by Ctrl-C right after its first epoch: the sweep's rerun
    resumes it and ends where the uninterrupted run ends."""
    import os
    import signal

    from ghostnet.learning import training as training_mod

    s = sw.load_sweep(_write(tiny / "s.toml", 'base = "base.toml"\n[grid.train]\nseed = [5]\n'
                                              "epochs = [3]\n"))
    (p,) = s.points
    out = tiny / "sweep"
    original = training_mod.Trainer._write_metrics

    def write_then_interrupt(self, rows):  # Ctrl-C once epoch 1's metrics are written
        original(self, rows)
        if len(rows) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(training_mod.Trainer, "_write_metrics", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(p.config, out / p.dirname, progress=False)
    monkeypatch.setattr(training_mod.Trainer, "_write_metrics", original)
    assert sw._point_status(out / p.dirname) == "interrupted"
    epoch1 = list(csv.DictReader(open(out / p.dirname / "metrics.csv")))
    assert len(epoch1) == 1
    # another thread count would change the resumed run's bits: refused before any work
    with pytest.raises(sw.SweepError, match=r"threads = 1, this sweep gives 2; rerun with "
                                            r"--threads 1"):
        sw.run_sweep(sw.load_sweep(s.path, threads=2), out, workers=0, progress=False,
                     log=lambda m: None)
    assert list(csv.DictReader(open(out / p.dirname / "metrics.csv"))) == epoch1
    assert sw._point_status(out / p.dirname) == "interrupted"
    (r,) = sw.run_sweep(s, out, workers=0, progress=False, log=lambda m: None)
    assert r["status"] == "finished" and r["resumed"]
    assert list(csv.DictReader(open(out / p.dirname / "metrics.csv")))[0] == epoch1[0]  # not redone
    train(p.config, tiny / "alone", progress=False)
    _same_run(out / p.dirname, tiny / "alone")


def test_failed_point_is_reported_and_the_others_finish(tiny, capsys):
    path = _write(tiny / "s.toml", f"""
base = "base.toml"
[grid.train]
data_source = ["{tiny / 'tiny.npz'}", "{tiny / 'missing.npz'}"]
""")
    out = tiny / "sweep"
    assert cli_main(["sweep", str(path), "--out", str(out), "--workers", "0",
                     "--no-progress"]) == 1
    s = sw.load_sweep(path)
    ok, bad = s.points
    assert sw._point_status(out / ok.dirname) == "finished"
    assert (out / bad.dirname / "error.txt").is_file()
    rows = {r["dir"]: r for r in csv.DictReader(open(out / "report.csv"))}
    assert rows[ok.dirname]["status"] == "finished"
    assert rows[bad.dirname]["status"] == "failed" and "missing.npz" in rows[bad.dirname]["error"]
    assert "missing.npz" in capsys.readouterr().out


def test_report_takes_the_test_error_at_the_best_validation_epoch(tiny):
    path = _write(tiny / "s.toml", """
base = "base.toml"
[grid.train]
seed = [0, 1]
epochs = [4]
val_size = [40]
""")
    s = sw.load_sweep(path)
    out = tiny / "sweep"
    sw.run_sweep(s, out, workers=0, progress=False, log=lambda m: None)
    # point 0's accuracies made to disagree: validation best at epochs 2 and 3 (a tie: the first
    # counts), test best at epoch 4
    metrics = out / s.points[0].dirname / "metrics.csv"
    m = list(csv.DictReader(open(metrics)))
    for r, v, t in zip(m, (0.5, 0.9, 0.9, 0.8), (0.5, 0.7, 0.8, 0.95)):
        r["val_acc"], r["test_acc"] = str(v), str(t)
    with open(metrics, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(m[0]))
        w.writeheader()
        w.writerows(m)
    sw.write_report(out)
    rows = list(csv.DictReader(open(out / "report.csv")))
    assert rows[0]["selected_epoch"] == "2"
    assert float(rows[0]["selected_test_error_pct"]) == pytest.approx(30.0)
    assert float(rows[0]["selected_val_error_pct"]) == pytest.approx(10.0)
    assert float(rows[0]["best_test_error_pct"]) == pytest.approx(5.0)
    sel, vsel = [], []
    for p, row in zip(s.points, rows):
        m = list(csv.DictReader(open(out / p.dirname / "metrics.csv")))
        val = [float(r["val_acc"]) for r in m]
        k = val.index(max(val))  # the first epoch with the best validation accuracy
        err = 100 * (1 - float(m[k]["test_acc"]))
        assert int(row["selected_epoch"]) == k + 1
        assert float(row["selected_test_error_pct"]) == pytest.approx(err, abs=1e-4)
        vsel.append(100 * (1 - val[k]))
        assert float(row["selected_val_error_pct"]) == pytest.approx(vsel[-1], abs=1e-4)
        assert float(row["best_test_error_pct"]) == pytest.approx(
            min(100 * (1 - float(r["test_acc"])) for r in m), abs=1e-4)
        sel.append(err)
    md = (out / "report.md").read_text().splitlines()
    head = [c.strip() for c in md[0].strip("|").split("|")]
    cells = [c.strip() for c in md[2].strip("|").split("|")]
    col = head.index("test error % at best validation epoch")
    assert cells[col] == f"{np.mean(sel):.2f} +- {np.std(sel, ddof=1):.2f}"
    col = head.index("best validation error %")
    assert cells[col] == f"{np.mean(vsel):.2f} +- {np.std(vsel, ddof=1):.2f}"


def _final_errors(runs: list[Path]) -> list[float]:
    return [100 * (1 - float(list(csv.DictReader(open(r / "metrics.csv")))[-1]["test_acc"]))
            for r in runs]


def test_combined_report_groups_more_seeds_from_another_sweep(tiny, capsys):
    a = _write(tiny / "a.toml", """
base = "base.toml"
[grid]
seed = [0, 1]
[grid.train]
lr = [0.5, 0.05]
""")
    # more seeds at the base's rate, from a sweep that varies the seed only
    b = _write(tiny / "b.toml", 'base = "base.toml"\n[grid]\nseed = [2, 3]\n')
    for path, out in ((a, tiny / "A"), (b, tiny / "B")):
        sw.run_sweep(sw.load_sweep(path), out, workers=0, progress=False, log=lambda m: None)
    # one point of B not run yet: it still falls in its group, as not finished
    shutil.rmtree(tiny / "B" / "seed=3")
    dest = tiny / "both"
    assert cli_main(["sweep", "--report", str(tiny / "A"), str(tiny / "B"),
                     "--out", str(dest)]) == 0
    assert "6 points" in capsys.readouterr().out
    runs = ([tiny / "A" / p.dirname for p in sw.load_sweep(a).points]
            + [tiny / "B" / p.dirname for p in sw.load_sweep(b).points])
    rows = list(csv.DictReader(open(dest / "report.csv")))
    assert [(dest / r["dir"]).resolve() for r in rows] == [r.resolve() for r in runs]
    assert [r["train.lr"] for r in rows[4:]] == ["0.5", "0.5"]  # from B's configs
    assert [r["status"] for r in rows] == ["finished"] * 5 + ["not started"]
    md = (dest / "report.md").read_text().splitlines()
    head = [c.strip() for c in md[0].strip("|").split("|")]
    assert head[:2] == ["train.lr", "seeds"] and len(md) == 4
    col = head.index("final test error % (mean +- sd)")

    def config(run):
        return tomllib.loads((run / "config.toml").read_text())["train"]

    by_lr = {lr: [r for r in runs[:5] if config(r)["lr"] == lr] for lr in (0.5, 0.05)}
    assert [len(v) for v in by_lr.values()] == [3, 2]
    cells = {line.split(" | ")[0][2:]: [c.strip() for c in line.strip("|").split("|")]
             for line in md[2:]}
    for lr, done in by_lr.items():
        errs = _final_errors(done)
        assert cells[str(lr)][1] == str(len(done))
        assert cells[str(lr)][col] == f"{np.mean(errs):.2f} +- {np.std(errs, ddof=1):.2f}"
        assert cells[str(lr)][-1] == ("1" if lr == 0.5 else "")
    # the sweeps' own reports are left as they were
    assert "seed=2" not in (tiny / "A" / "report.csv").read_text()
    # paired by seed: lr 0.5 less lr 0.05 for seeds 0 and 1; B's seed 2 has no lr 0.05 run
    assert cli_main(["sweep", "--report", str(tiny / "A"), str(tiny / "B"), "--out", str(dest),
                     "--versus", "train.lr=0.05"]) == 0
    md = (dest / "report.md").read_text().splitlines()
    col = [c.strip() for c in md[0].strip("|").split("|")].index(
        "test error - 0.05's, same seeds (points)")
    hi, lo = by_lr[0.5][:2], by_lr[0.05]
    assert [config(r)["seed"] for r in hi] == [config(r)["seed"] for r in lo] == [0, 1]
    diffs = np.subtract(_final_errors(hi), _final_errors(lo))
    assert np.all(diffs != 0)  # the two rates learn differently: a pairing with itself shows
    cells = {line.split(" | ")[0][2:]: [c.strip() for c in line.strip("|").split("|")]
             for line in md[2:]}
    assert cells["0.5"][col] == f"{diffs.mean():+.2f} +- {diffs.std(ddof=1):.2f} (2)"
    assert cells["0.05"][col] == ""
    rows = list(csv.DictReader(open(dest / "report.csv")))
    assert [float(r["versus_diff_pct:train.lr=0.05"]) for r in rows if r["versus_diff_pct:train.lr=0.05"]] == \
        pytest.approx(list(diffs), abs=1e-4)
    # two references: a column each; the other way round the pairs change sign
    rows = sw.combine_reports([tiny / "A", tiny / "B"], dest, versus=["train.lr=0.05",
                                                                      "train.lr=0.5"])
    back = [r["versus_diff_pct:train.lr=0.5"] for r in rows if r["train.lr"] == "0.05"]
    assert back == pytest.approx(list(-diffs), abs=1e-9)
    assert "0.5's, same seeds" in (dest / "report.md").read_text().splitlines()[0]
    assert cli_main(["sweep", "--report", str(tiny / "A"), "--versus", "train.lr=0.1"]) == 2
    assert "no point has train.lr = 0.1" in capsys.readouterr().err


def test_paired_report_with_named_points(tiny, capsys):
    path = _write(tiny / "s.toml", """
base = "base.toml"
dirname = "{name}-s{seed}"
[grid]
seed = [0, 1]
[[points]]
name = "bp"
train.learner = "backprop"
[[points]]
name = "g1"
train.learner = "ghost"
[[points]]
name = "g2"
train.learner = "ghost"
train.lr = 0.05
""")
    out = tiny / "sweep"
    sw.run_sweep(sw.load_sweep(path), out, workers=0, progress=False, log=lambda m: None)
    # by a field the names tell: every ghost point against backprop on its seed
    sw.write_report(out, versus="train.learner=backprop")
    md = (out / "report.md").read_text().splitlines()
    col = [c.strip() for c in md[0].strip("|").split("|")].index(
        "test error - backprop's, same seeds (points)")
    cells = {line.split(" | ")[0][2:]: [c.strip() for c in line.strip("|").split("|")]
             for line in md[2:]}
    for name in ("g1", "g2"):
        diffs = np.subtract(_final_errors([out / f"{name}-s{k}" for k in (0, 1)]),
                            _final_errors([out / f"bp-s{k}" for k in (0, 1)]))
        assert cells[name][col] == f"{diffs.mean():+.2f} +- {diffs.std(ddof=1):.2f}"
    assert np.all(diffs != 0)  # g2 learns at another rate
    assert cells["bp"][col] == ""
    # two points with the value on one seed: which one is meant is asked for, not guessed
    with pytest.raises(sw.SweepError, match="g1-s0 and g2-s0 both have train.learner = ghost"):
        sw.write_report(out, versus="train.learner=ghost")


def test_combined_report_refuses_other_configurations_and_runs_twice(tiny, capsys):
    a = _write(tiny / "a.toml", 'base = "base.toml"\n[grid]\nseed = [0]\n')
    c = _write(tiny / "c.toml", 'base = "base.toml"\n[grid]\nseed = [1]\n'
                                '[grid.train]\nepochs = [1]\n')
    for path, out in ((a, tiny / "A"), (c, tiny / "C")):
        sw.run_sweep(sw.load_sweep(path), out, workers=0, progress=False, log=lambda m: None)
    with pytest.raises(sw.SweepError, match=r"differ in train\.epochs \(2 and 1\)"):
        sw.combine_reports([tiny / "A", tiny / "C"], tiny / "both")
    with pytest.raises(sw.SweepError, match="same seeds twice"):
        sw.combine_reports([tiny / "A", tiny / "A"], tiny / "both")
    with pytest.raises(sw.SweepError, match="another --out"):
        sw.combine_reports([tiny / "A", tiny / "C"], tiny / "A")
    assert not (tiny / "both").exists()
    # another thread count is where a run ran, not what it computed: the runs group
    t = _write(tiny / "t.toml", 'base = "base.toml"\n[grid]\nseed = [1]\n')
    st = sw.load_sweep(t, threads=2)
    sw.run_sweep(st, tiny / "T", threads=2, workers=0, progress=False, log=lambda m: None)
    # a config.toml written before a field existed reads as its default: still one configuration
    saved = tiny / "T" / st.points[0].dirname / "config.toml"
    text = saved.read_text()
    assert 'cost = "mse"\n' in text
    saved.write_text(text.replace('cost = "mse"\n', ""))
    rows = sw.combine_reports([tiny / "A", tiny / "T"], tiny / "both")
    assert [r["status"] for r in rows] == ["finished"] * 2
    assert "| 2 | 2 |" in (tiny / "both" / "report.md").read_text()
    assert cli_main(["sweep", "--report", str(tiny / "A"), str(tiny / "T")]) == 2  # no --out
    assert "needs --out" in capsys.readouterr().err


def test_dry_run_lists_points_and_states(tiny, capsys):
    path = _write(tiny / "s.toml", 'base = "base.toml"\n[grid.train]\nseed = [3, 4]\n')
    out = tiny / "sweep"
    finished = out / "seed=4"
    train(sw.load_sweep(path).points[1].config, finished, progress=False)
    assert cli_main(["sweep", str(path), "--out", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("2 points")
    assert lines[1].split() == ["1", "seed=3", "to", "run"]
    assert lines[2].split() == ["2", "seed=4", "finished"]
    assert sorted(p.name for p in out.iterdir()) == ["seed=4"]  # nothing else written


@pytest.mark.slow
def test_killed_worker_point_reruns_and_matches_run_alone(tiny):
    """SIGKILL the worker process running a point after its first epoch: Dask reruns the point
    on a worker, it resumes from its epoch checkpoint, and every run equals the run alone."""
    from distributed import Client

    path = _write(tiny / "s.toml", """
base = "base.toml"
[grid.train]
seed = [0, 1]
batch_size = [1]
epochs = [4]
""")
    s = sw.load_sweep(path)
    out = tiny / "sweep"
    victim = out / s.points[0].dirname
    killed = []

    def kill_when_checkpointed(client):
        while not (victim / "metrics.csv").exists():
            time.sleep(0.005)
        pids = client.run(lambda dask_worker: (os.getpid(), [
            ts.key for ts in dask_worker.state.tasks.values() if ts.state == "executing"]))
        for pid, keys in pids.values():
            if any(s.points[0].dirname in str(k) for k in keys):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    with sw._local_cluster(2, 1) as cluster, Client(cluster) as client:  # the sweep's own
        killer = threading.Thread(target=kill_when_checkpointed, args=(client,), daemon=True)
        killer.start()
        results = sw.run_sweep(s, out, client=client, progress=False, log=lambda m: None)
        killer.join(5)
    assert killed, "the point finished before it could be killed"
    assert [r["status"] for r in results] == ["finished"] * 2
    assert results[0]["resumed"] and results[0]["pid"] != killed[0]
    for p in s.points:
        alone = tiny / "alone" / p.dirname
        train(p.config, alone, progress=False)
        _same_run(out / p.dirname, alone)


# ---- threads ---------------------------------------------------------------------------------------
def test_limit_threads_bounds_every_pool_and_restores_them():
    import numba
    import torch
    from threadpoolctl import threadpool_info

    before = (numba.get_num_threads(), torch.get_num_threads(),
              [p["num_threads"] for p in threadpool_info()])
    with limit_threads(1) as n:
        assert n == 1
        assert numba.get_num_threads() == 1 and torch.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert (numba.get_num_threads(), torch.get_num_threads(),
            [p["num_threads"] for p in threadpool_info()]) == before
    with pytest.raises(ConfigError, match="threads"):
        TrainConfig(train=TrainSettings(threads=-2)).validate()


def test_threads_zero_keeps_the_bound_the_environment_set(monkeypatch):
    from ghostnet.learning.threads import THREAD_ENV, cores, resolve

    for k in THREAD_ENV:
        monkeypatch.delenv(k, raising=False)
    assert resolve(0) == cores() and resolve(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "not a number")  # ignored, as the libraries do
    assert resolve(0) == 1 and resolve(2) == 2  # an explicit count still wins
    monkeypatch.setenv("NUMBA_NUM_THREADS", "0")
    assert resolve(0) == 1


def test_train_cli_threads_option(tiny):
    assert cli_main(["train", "--config", str(tiny / "base.toml"), "--threads", "1", "--epochs", "1",
                     "--out", str(tiny / "run"), "--no-progress"]) == 0
    assert TrainConfig.load(tiny / "run" / "config.toml").train.threads == 1


# ---- batch schedulers -------------------------------------------------------------------------------
def test_slurm_cluster_job_script(tiny):
    s = sw.load_sweep(_write(tiny / "s.toml", """
base = "base.toml"
[grid.train]
seed = [0, 1]
[cluster]
type = "slurm"
jobs = 3
cores = 8
memory = "16GB"
walltime = "02:00:00"
queue = "compute"
account = "ghost-lab"
job_script_prologue = ["module load python/3.11"]
"""))
    cluster = sw.jobqueue_cluster(s)
    try:
        script = cluster.job_script()
        # the scheduler runs in this process, with the sweep's Dask housekeeping
        callbacks = _callback_times(cluster.scheduler)
        assert "stealing" not in cluster.scheduler.extensions
        assert min(callbacks["tick"], callbacks["monitor"]) >= 5000
    finally:
        cluster.close()
    lines = script.splitlines()
    for line in ("#SBATCH -p compute", "#SBATCH -A ghost-lab", "#SBATCH -n 1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH -t 02:00:00", "export OMP_NUM_THREADS=1",
                 "export OPENBLAS_NUM_THREADS=1", "export NUMBA_NUM_THREADS=1",
                 "module load python/3.11"):
        assert line in lines, line
    assert lines.index("export OMP_NUM_THREADS=1") < lines.index("module load python/3.11")
    # the workers read Dask's housekeeping settings from the environment the script exports
    env = dict(ln[len("export "):].split("=", 1) for ln in lines if ln.startswith("export DASK_"))
    assert env == sw.dask_env()
    import dask

    for key, value in sw.DASK_QUIET.items():
        assert dask.config.get(key, config=dask.config.collect_env(env)) == value, key
    worker = next(ln for ln in lines if "distributed.cli.dask_worker" in ln)
    # one single-threaded worker process per core
    assert "--nworkers 8" in worker and "--nthreads 1" in worker


def test_dask_malloc_trim_is_undone_but_a_users_is_kept(monkeypatch):
    """Dask's MALLOC_TRIM_THRESHOLD_ (its pre-spawn default) stops ghostnet's glibc tuning; a
    point on a Dask worker sets it again, unless the value is the user's own."""
    import dask
    import distributed  # noqa: F401  (its configuration)

    dask_value = str(dask.config.get("distributed.nanny.pre-spawn-environ")["MALLOC_TRIM_THRESHOLD_"])
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", dask_value)
    assert sw._undo_dask_malloc_trim()
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", dask_value + "0")
    assert not sw._undo_dask_malloc_trim()
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    assert not sw._undo_dask_malloc_trim()
