"""Training on a classification dataset (docs/model.md §7, §11 E3): the ghost network and its baselines,
backprop and feedback alignment, on equal terms.

Every learner starts from the same parameters (``Params.init`` of the model configuration), sees the
same data order (a permutation drawn from ``numpy.random.default_rng([seed, epoch])``, so a resumed
run replays it exactly) and takes the same plain SGD step ``W += lr_l dW`` with per-layer learning
rates; ``dW`` is the ghost network's local update (docs/model.md §4) or minus the gradient computed by
torch.autograd (backprop) or sent back through the random B (feedback alignment, ``fa``; it needs
``feedback = "random"``). Cost: 0.5 |y - r_L|^2, batch mean, with one-hot targets.

A run directory holds ``config.toml`` (resolved), ``meta.json`` (ghostnet version, git hash, seeds,
start time), ``metrics.csv`` (one row per epoch), ``checkpoint.npz`` (atomic, after every epoch and
on Ctrl-C, mid-epoch included) and ``summary.json`` at the end.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ghostnet.checks.metrics import layer_alignment
from ghostnet.io import atomic_write, atomic_write_text
from ghostnet.learning.data import Dataset, load, one_hot
from ghostnet.learning.learners import Learner, evaluate
from ghostnet.learning.optim import Optimizer, lr_factor
from ghostnet.learning.settings import LEARNERS, TrainConfig, TrainSettings
from ghostnet.model.config import ConfigError
from ghostnet.model.params import Params
from ghostnet.network.network import GhostNetwork

__all__ = ["LEARNERS", "METRIC_FIELDS", "Learner", "TrainConfig", "TrainSettings", "Trainer",
           "evaluate", "train"]

METRIC_FIELDS = ["epoch", "train_acc", "train_cost", "val_acc", "test_acc", "test_cost", "lr",
                 "seconds", "mean_angle_deg", "angles_deg"]


def _git_hash() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ---- the run ------------------------------------------------------------------------------------
class Trainer:
    """One training run in ``out``; :meth:`run` trains, resuming from a checkpoint if asked."""

    def __init__(self, cfg: TrainConfig, out: str | Path, data: Dataset | None = None,
                 progress: bool = True):
        self.cfg = cfg.validate()
        self.out = Path(out)
        self.progress = progress
        t = cfg.train
        self.data = data if data is not None else load(t.dataset, t.data_source or None)
        if self.data.n_inputs != cfg.model.sizes[0] or self.data.n_classes != cfg.model.sizes[-1]:
            raise ConfigError("sizes", f"{cfg.model.sizes} does not fit {self.data.name}: it needs "
                                       f"{self.data.n_inputs} inputs and {self.data.n_classes} outputs")
        self.data = self.data.subset(t.train_size or None)
        self.data = self.data.split_validation(t.val_size, np.random.default_rng([t.seed, 10**6]))

    # checkpoints: parameters, epoch, the batch reached inside it, the metrics so far, and the
    # optimizer's state (its arrays beside the parameters')
    def _save_checkpoint(self, learner, epoch, batch_index, rows):
        extra = {"epoch": epoch, "batch": batch_index, "rows": rows}
        learner.params.save(self.out / "checkpoint.npz", self.cfg.model, extra,
                            arrays=learner.optimizer.state_arrays())

    def _load_checkpoint(self):
        path = self.out / "checkpoint.npz"
        if not path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {path}")
        params, model = Params.load(path)
        with np.load(path) as z:
            extra = json.loads(str(z["extra_json"]))
        return params, extra

    def run(self, resume: bool = False) -> dict:
        cfg, t, d = self.cfg, self.cfg.train, self.data
        self.out.mkdir(parents=True, exist_ok=True)
        base_lrs = t.lrs(cfg.model.n_layers)
        self.data = d = standardize(d, t.standardize, self.out / "standardize.npz", resume)
        if resume:
            params, extra = self._load_checkpoint()
            start_epoch, start_batch, rows = extra["epoch"], extra["batch"], extra["rows"]
        else:
            atomic_write_text(self.out / "config.toml", cfg.to_toml())
            from ghostnet.version import __version__

            atomic_write_text(self.out / "meta.json", json.dumps({
                "ghostnet_version": __version__, "git_hash": _git_hash(), "seed": t.seed,
                "model_seed": cfg.model.seed, "data_order": "numpy default_rng([seed, epoch])",
                "dataset": d.name, "data_source": d.source, "python": platform.python_version(),
                "started": datetime.now(timezone.utc).isoformat()}, indent=2))
            params, start_epoch, start_batch, rows = Params.init(cfg.model), 1, 0, []
        # ---- the optimizer (ghostnet.learning.optim), its state restored on resume ----
        self.optimizer = Optimizer(t, cfg.model, params)
        if resume:
            with np.load(self.out / "checkpoint.npz") as z:
                self.optimizer.load_state(z)
        learner = Learner(cfg, params, self.optimizer)
        if not resume and t.pretrain and cfg.model.mechanism == "learned" and t.learner == "ghost":
            from ghostnet.network.mechanisms import pretrain

            pretrain(learner.net, d.x_train, budget=t.pretrain, progress=self.progress,
                     rng=np.random.default_rng([t.seed, 0]), noise=float(t.pretrain_noise))
        dtype = cfg.model.dtype
        probe = slice(0, min(t.probe_size, len(d.x_train)))
        n_batches = -(-len(d.x_train) // t.batch_size)
        epoch_bar = tqdm(range(start_epoch, t.epochs + 1), desc="epochs", disable=not self.progress,
                         initial=start_epoch - 1, total=t.epochs)
        epoch, b = start_epoch, start_batch
        try:
            for epoch in epoch_bar:
                t0 = time.perf_counter()
                order = np.random.default_rng([t.seed, epoch]).permutation(len(d.x_train))
                first = start_batch if epoch == start_epoch else 0
                bar = tqdm(range(first, n_batches), desc=f"epoch {epoch}", leave=False,
                           disable=not self.progress, initial=first, total=n_batches)
                hits = seen = 0
                for b in bar:
                    idx = order[b * t.batch_size:(b + 1) * t.batch_size]
                    x = d.x_train[idx].astype(dtype, copy=False)
                    y = one_hot(d.y_train[idx], d.n_classes, dtype)
                    f = lr_factor(t, (epoch - 1) * n_batches + b, n_batches)
                    out = learner.step(x, y, [lr * f for lr in base_lrs])
                    if out is not None:  # ghost: the free phase's prediction came for free
                        hits += int(np.sum(np.argmax(out, 1) == d.y_train[idx]))
                        seen += len(idx)
                        bar.set_postfix(acc=f"{hits / seen:.3f}", refresh=False)
                b = n_batches
                row = self._epoch_row(learner, epoch, time.perf_counter() - t0, probe)
                row["lr"] = base_lrs[0] * lr_factor(t, epoch * n_batches - 1, n_batches)
                rows.append(row)
                self._save_checkpoint(learner, epoch + 1, 0, rows)
                self._write_metrics(rows)
                epoch_bar.set_postfix(test_acc=f"{row['test_acc']:.4f}", refresh=False)
        except KeyboardInterrupt:
            self._save_checkpoint(learner, epoch, b, rows)
            print(f"\ninterrupted: checkpoint written to {self.out / 'checkpoint.npz'} "
                  f"(epoch {epoch}, batch {b}); continue with --resume")
            raise
        summary = {"learner": t.learner, "epochs": t.epochs, "final": rows[-1] if rows else None,
                   **select_model(rows), "finished": datetime.now(timezone.utc).isoformat()}
        atomic_write_text(self.out / "summary.json", json.dumps(summary, indent=2))
        self.learner = learner
        return summary

    def _epoch_row(self, learner, epoch, seconds, probe) -> dict:
        d, m = self.data, self.cfg.model
        tr_acc, tr_cost = (evaluate(learner, d.x_train, d.y_train, d.n_classes)
                           if self.cfg.train.eval_train else ("", ""))
        te_acc, te_cost = evaluate(learner, d.x_test, d.y_test, d.n_classes)
        val_acc = evaluate(learner, d.x_val, d.y_val, d.n_classes)[0] if d.x_val is not None else ""
        angles = ""
        mean = ""
        if self.cfg.train.learner == "ghost" and self.cfg.train.probe_size > 0:
            x = d.x_train[probe].astype(m.dtype)
            y = one_hot(d.y_train[probe], d.n_classes, m.dtype)
            probe_net = GhostNetwork(m, learner.params.copy())  # no side effect on the run
            upd = probe_net.update(probe_net.phases(x, y))
            from ghostnet.checks.reference import backprop_gradients

            gW, gb, _ = backprop_gradients(m, learner.params, x, y)
            a = [r["angle_deg"] for r in layer_alignment(upd, gW, gb)]
            angles, mean = " ".join(f"{v:.4f}" for v in a), float(np.mean(a))
        return {"epoch": epoch, "train_acc": tr_acc, "train_cost": tr_cost, "val_acc": val_acc,
                "test_acc": te_acc, "test_cost": te_cost, "seconds": round(seconds, 3),
                "mean_angle_deg": mean, "angles_deg": angles}

    def _write_metrics(self, rows) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS)
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(self.out / "metrics.csv", buf.getvalue())


def select_model(rows: list[dict]) -> dict:
    """Model selection on the validation split: the epoch of the best validation accuracy (the
    first such) and the test accuracy there, beside the last epoch's; nothing is chosen on the
    test set. Without a validation split only the last epoch is reported."""
    if not rows:
        return {"selected": None}
    last = {"last_epoch": rows[-1]["epoch"], "last_test_acc": rows[-1]["test_acc"],
            "last_val_acc": rows[-1]["val_acc"]}
    if rows[-1]["val_acc"] == "":
        return {"selected": None, **last}
    best = max(rows, key=lambda r: (r["val_acc"], -r["epoch"]))
    return {"selected": {"epoch": best["epoch"], "val_acc": best["val_acc"],
                         "test_acc": best["test_acc"]}, **last}


def standardize(d: Dataset, how: str, path: Path, resume: bool) -> Dataset:
    """``d`` with inputs ``(x - mean) / std``, the statistics from its training split: per pixel
    (``how = 'pixel'``; a constant pixel keeps std 1) or one number each (``'global'``). They are
    written to ``path`` (the run directory's ``standardize.npz``), and read from there on resume,
    so that a resumed run and a later evaluation use the same."""
    if how == "none":
        return d
    if resume and path.exists():
        with np.load(path) as z:
            if str(z["how"]) != how:
                raise ConfigError("standardize", f"{path} holds {str(z['how'])!r} statistics, "
                                                 f"the configuration says {how!r}")
            mean, std = z["mean"], z["std"]
    else:
        x = d.x_train.astype(np.float64)
        axis = 0 if how == "pixel" else None
        mean, std = x.mean(axis=axis), x.std(axis=axis)
        std = np.where(std > 1e-8, std, 1.0)
        buf = io.BytesIO()
        np.savez(buf, how=np.array(how), mean=mean, std=std)
        atomic_write(path, lambda fh: fh.write(buf.getvalue()))

    def f(x):
        return None if x is None else ((x - mean) / std).astype(np.float32)

    return dataclasses.replace(d, x_train=f(d.x_train), x_test=f(d.x_test), x_val=f(d.x_val),
                               source=d.source)


def train(cfg: TrainConfig, out: str | Path, resume: bool = False, data: Dataset | None = None,
          progress: bool = True) -> dict:
    """Train per ``cfg`` into run directory ``out``; returns the summary."""
    return Trainer(cfg, out, data=data, progress=progress).run(resume=resume)
