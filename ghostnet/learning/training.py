"""Training on a classification dataset (docs/model.md §7, §11 E3): the ghost network and its baselines,
backprop and feedback alignment, on equal terms.

Every learner starts from the same parameters (``Params.init`` of the model configuration), sees the
same data order (a permutation drawn from ``numpy.random.default_rng([seed, epoch])``, so a resumed
run replays it exactly) and takes the same plain SGD step ``W += lr_l dW`` with per-layer learning
rates; ``dW`` is the ghost network's local update (docs/model.md §4) or minus the gradient computed by
torch.autograd (backprop) or sent back through the random B (feedback alignment, ``fa``; it needs
``feedback = "random"``). Cost: 0.5 |y - r_L|^2, batch mean, with one-hot targets.

A run directory (:mod:`ghostnet.learning.runs`; docs/runs.md) holds ``run.json`` (the manifest:
status and resolved configuration), ``config.toml`` (resolved), ``meta.json`` (ghostnet version, git
hash, seeds, start time, pre-training outcome), ``metrics.csv`` (one row per epoch),
``checkpoint.npz`` (atomic, after every epoch and on SIGINT or SIGTERM) and ``summary.json`` at
the end.

Interrupt safety: while the loop runs, SIGINT and SIGTERM are deferred to the next safe point,
between two steps or after an epoch's checkpoint, where a checkpoint of that consistent
(epoch, batch) state is written before the run stops; a second Ctrl-C stops at once, leaving the
last checkpoint. A resumed run therefore ends with the weights and metrics of an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import os
import platform
import signal
import threading
import time
import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ghostnet.checks.metrics import layer_alignment
from ghostnet.errors import CheckpointError, DivergenceError, GhostnetWarning, RunDirError
from ghostnet.io import atomic_write, atomic_write_text, loads, write_json
from ghostnet.learning import runs
from ghostnet.learning.augment import augment, batch_rngs
from ghostnet.learning.data import Dataset, load, one_hot
from ghostnet.learning.learners import Learner, evaluate
from ghostnet.learning.optim import Optimizer, lr_factor
from ghostnet.learning.settings import LEARNERS, TrainConfig, TrainSettings
from ghostnet.model.config import ConfigError
from ghostnet.model.params import Params
from ghostnet.model.state import BlowUpError
from ghostnet.network.network import GhostNetwork

__all__ = ["LEARNERS", "METRIC_FIELDS", "Interrupted", "Learner", "TrainConfig", "TrainSettings",
           "Trainer", "evaluate", "resume_run", "train"]

METRIC_FIELDS = ["epoch", "train_acc", "train_cost", "val_acc", "test_acc", "test_cost", "lr",
                 "seconds", "mean_angle_deg", "angles_deg", "mean_angle_fa_deg", "angles_fa_deg",
                 "unsettled_phases", "zero_updates"]
"""Columns of metrics.csv. ``mean_angle_deg``/``angles_deg``: the ghost learner's update against
backprop on the probe batch; ``*_fa_deg``: against feedback alignment (random feedback only);
``unsettled_phases``: phases of the epoch that did not settle; ``zero_updates``: steps whose update
was exactly zero; ``lr``: the first layer's learning rate at the epoch's last step (schedules)."""

FLOAT32_BETA = 1e-3
"""At or below this beta a float32 ghost run's update is dominated by rounding (measured with
``ghostnet gradcheck``: 0.5-0.7 degrees from backprop against 0.007 in float64)."""


class Interrupted(KeyboardInterrupt):
    """The run stopped on SIGINT or SIGTERM after writing a consistent checkpoint."""

    def __init__(self, signum: int, message: str):
        self.signum = signum
        super().__init__(message)


class _DeferredSignals:
    """SIGINT and SIGTERM handlers that only note the signal; the loop stops at its next safe
    point. A second SIGINT raises KeyboardInterrupt at once, and so does any signal inside
    :meth:`immediate` (ghost pre-training, which has no safe point short of its end). Installed
    only in the main thread (Python delivers signals there); elsewhere signals keep their
    handlers."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}
        self._immediate = False

    @contextlib.contextmanager
    def immediate(self):
        """Within: stop at once on a signal (one that came before stops on entry)."""
        if self.signum is not None:
            self._raise(self.signum)
        self._immediate = True
        try:
            yield
        finally:
            self._immediate = False

    @staticmethod
    def _raise(signum):
        raise Interrupted(signum, f"interrupted by {signal.Signals(signum).name} during ghost "
                                  "pre-training: no checkpoint yet; --resume starts the run over")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handler)
        return self

    def _handler(self, signum, frame):
        if self._immediate:
            self._raise(signum)
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now, the last checkpoint stays
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()


def _fingerprint(d: Dataset) -> str:
    """A hash of the data a run trains and is evaluated on (after subset and validation split)."""
    h = hashlib.blake2b(digest_size=16)
    for a in (d.x_train, d.y_train, d.x_test, d.y_test, d.x_val, d.y_val):
        if a is not None:
            a = np.ascontiguousarray(a)
            h.update(str((a.shape, a.dtype.str)).encode())
            h.update(a.data)
    return h.hexdigest()


def _warn(message: str, notes: list | None = None) -> None:
    warnings.warn(message, GhostnetWarning, stacklevel=3)
    if notes is not None and message not in notes:
        notes.append(message)


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
        self.data.check()
        if self.data.n_inputs != cfg.model.sizes[0] or self.data.n_classes != cfg.model.sizes[-1]:
            raise ConfigError("sizes", f"{cfg.model.sizes} does not fit {self.data.name}: it needs "
                                       f"{self.data.n_inputs} inputs and {self.data.n_classes} outputs")
        self.data = self.data.subset(t.train_size or None)
        self.data = self.data.split_validation(t.val_size, np.random.default_rng([t.seed, 10**6]))
        self.notes: list[str] = []

    # checkpoints: parameters, epoch, the batch reached inside it, the metrics so far, the
    # epoch's counts, and the optimizer's state (its arrays beside the parameters')
    def _save_checkpoint(self, learner, epoch, batch_index, rows):
        extra = {"epoch": epoch, "batch": batch_index, "rows": rows, "counts": learner.counts(),
                 "warned": sorted(self._warned)}
        learner.params.save(self.out / "checkpoint.npz", self.cfg.model, extra,
                            arrays=learner.optimizer.state_arrays())

    def _load_checkpoint(self):
        path = self.out / "checkpoint.npz"
        params, model, extra = Params.load(path, extra=True)
        if model != self.cfg.model:
            raise CheckpointError(f"{path}: its model configuration differs from the run's "
                                  "config (the run directory was mixed)")
        if not {"epoch", "batch", "rows"} <= set(extra):
            raise CheckpointError(f"{path} is a parameter file, not a training checkpoint")
        return params, extra

    def run(self, resume: bool = False, overwrite: bool = False) -> dict:
        lock = runs.open_run_dir(self.out, resume, overwrite)
        manifest = None
        try:
            if resume:
                manifest = runs.read_manifest(self.out)
                stored = _config_of(self.out, manifest)
                diffs = stored.differences(self.cfg)
                if diffs:
                    raise RunDirError(
                        f"--resume: {self.out} was run with another configuration; changed: "
                        + "; ".join(diffs) + ". Resume with the stored settings (ghostnet train "
                        "--resume --out DIR) or start a new run elsewhere")
                fp = _fingerprint(self.data)
                if manifest is not None and manifest.get("data_fingerprint", fp) != fp:
                    raise RunDirError(f"--resume: the data differ from those {self.out} was "
                                      "trained on (another data source, file or subset)")
                if runs._status(self.out, lock_held_here=True) == "finished":
                    self.learner = None
                    return loads((self.out / "summary.json").read_text())
            return self._run(resume, manifest, lock)
        finally:
            lock.release()

    def _new_manifest(self) -> dict:
        from ghostnet.version import __version__

        now = runs.now()
        return {"status": "running", "config": self.cfg.to_dict(), "ghostnet_version": __version__,
                "git_hash": runs.git_hash(), "created": now, "updated": now, "pid": os.getpid(),
                "data_fingerprint": _fingerprint(self.data), "warnings": []}

    def _run(self, resume, manifest, lock) -> dict:
        cfg = self.cfg
        has_checkpoint = resume and (self.out / "checkpoint.npz").exists()
        if has_checkpoint:
            params, extra = self._load_checkpoint()
            start_epoch, start_batch, rows = extra["epoch"], extra["batch"], extra["rows"]
            counts, self._warned = extra.get("counts"), set(extra.get("warned", []))
        else:  # a fresh run, or one stopped before its first checkpoint: start from scratch
            params, start_epoch, start_batch, rows, counts = Params.init(cfg.model), 1, 0, [], None
            self._warned = set()
        if manifest is None:
            manifest = self._new_manifest()
        manifest.update(status="running", pid=os.getpid())
        manifest.pop("message", None)
        self.notes = manifest.setdefault("warnings", [])
        runs.write_manifest(self.out, manifest)
        self.manifest = manifest
        # inputs standardised by the training split's statistics (stored, reused on resume)
        raw_train = self.data.x_train
        scale = standardizer(self.data, cfg.train.standardize, self.out / "standardize.npz",
                             has_checkpoint)
        self.data = _apply(scale, self.data)
        # training-time augmentation (ghostnet.learning.augment) works on the raw images, then
        # standardises them as above
        self._augment = None
        shape = cfg.train.check_augment(cfg.model, self.data.n_inputs)
        if shape is not None:
            self._augment = (raw_train, shape, scale)
        # the optimizer (ghostnet.learning.optim), its state restored on resume
        self.optimizer = Optimizer(cfg.train, cfg.model, params)
        if has_checkpoint:
            with np.load(self.out / "checkpoint.npz") as z:
                self.optimizer.load_state(z)
        learner = Learner(cfg, params, self.optimizer)
        self.learner = learner
        try:
            with _DeferredSignals() as self._sig:
                if not has_checkpoint:
                    self._start(learner)
                summary = self._loop(learner, start_epoch, start_batch, rows, counts)
        except KeyboardInterrupt as exc:
            manifest["status"] = "interrupted"
            runs.write_manifest(self.out, manifest)
            if not isinstance(exc, Interrupted):
                print(f"\ninterrupted: no new checkpoint; {self.out} resumes from its last one "
                      f"(ghostnet train --resume --out {self.out})")
            raise
        except BaseException as exc:
            manifest.update(status="failed", message=f"{type(exc).__name__}: {exc}")
            try:
                runs.write_manifest(self.out, manifest)
            except OSError:
                pass
            raise
        write_json(self.out / "summary.json", summary)
        manifest["status"] = "finished"
        runs.write_manifest(self.out, manifest)
        return summary

    def _start(self, learner) -> None:
        """A fresh start: config and meta files, warnings on the settings, ghost pre-training."""
        cfg, t, d = self.cfg, self.cfg.train, self.data
        m = cfg.model
        atomic_write_text(self.out / "config.toml", cfg.to_toml())
        meta = {"ghostnet_version": self.manifest["ghostnet_version"],
                "git_hash": self.manifest["git_hash"], "seed": t.seed, "model_seed": m.seed,
                "data_order": "numpy default_rng([seed, epoch])", "dataset": d.name,
                "data_source": d.source, "python": platform.python_version(),
                "started": runs.now()}
        write_json(self.out / "meta.json", meta)
        if (t.learner == "ghost" and m.dtype == "float32" and m.output == "nudge"
                and m.beta <= FLOAT32_BETA):
            _warn(f"float32 at beta = {m.beta:g}: rounding dominates the local update (about "
                  f"0.5-0.7 degrees from backprop, against 0.007 in float64); use dtype = "
                  f"'float64' or beta > {FLOAT32_BETA:g}", self.notes)
        if t.pretrain and m.mechanism == "learned" and t.learner == "ghost":
            from ghostnet.network.mechanisms import pretrain

            with self._sig.immediate():
                info = pretrain(learner.net, d.x_train, budget=t.pretrain, progress=self.progress,
                                rng=np.random.default_rng([t.seed, 0]),
                                noise=float(t.pretrain_noise), loop=t.pretrain_loop)
            res = " ".join(f"{r:.4f}" for r in info["final_residual"])
            verdict = ("met" if info["reached"] else
                       f"NOT met: the budget of {t.pretrain} samples ran out first")
            print(f"ghost pre-training: {info['samples']} samples, final residual per hidden "
                  f"layer {res} (tolerance {info['tol']}: {verdict})")
            meta["pretrain"] = {k: info[k] for k in ("samples", "reached", "tol", "final_residual",
                                                     "noise", "noise_samples", "loop",
                                                     "open_samples")}
            write_json(self.out / "meta.json", meta)
            if not info["reached"]:
                _warn(f"ghost pre-training stopped at its budget ({info['samples']} samples) with "
                      f"residual {res} above its tolerance {info['tol']}: the ghosts do not yet "
                      "cancel the feedback; raise [train] pretrain", self.notes)

    def _loop(self, learner, start_epoch, start_batch, rows, counts) -> dict:
        cfg, t, d = self.cfg, self.cfg.train, self.data
        dtype = cfg.model.dtype
        base_lrs = t.lrs(cfg.model.n_layers)
        probe = slice(0, min(t.probe_size, len(d.x_train)))
        n_batches = -(-len(d.x_train) // t.batch_size)
        self._w0 = max(float(np.max(np.abs(w))) for w in Params.init(cfg.model).W)
        epoch_bar = tqdm(range(start_epoch, t.epochs + 1), desc="epochs", disable=not self.progress,
                         initial=start_epoch - 1, total=t.epochs)
        sig = self._sig
        self._safe_point(sig, learner, start_epoch, start_batch, rows)  # before the first batch
        for epoch in epoch_bar:
            t0 = time.perf_counter()
            order = np.random.default_rng([t.seed, epoch]).permutation(len(d.x_train))
            first = start_batch if epoch == start_epoch else 0
            learner.reset_counts(counts if epoch == start_epoch else None)
            bar = tqdm(range(first, n_batches), desc=f"epoch {epoch}", leave=False,
                       disable=not self.progress, initial=first, total=n_batches)
            hits = seen = 0
            for b in bar:
                idx = order[b * t.batch_size:(b + 1) * t.batch_size]
                if self._augment is None:
                    x = d.x_train[idx].astype(dtype, copy=False)
                else:
                    raw, shape, restandardize = self._augment
                    x = augment(raw[idx], shape, t.augment_shift, t.augment_flip,
                                batch_rngs(t.seed, epoch, b))
                    x = restandardize(x).astype(dtype, copy=False)
                y = one_hot(d.y_train[idx], d.n_classes, dtype)
                f = lr_factor(t, (epoch - 1) * n_batches + b, n_batches)
                try:
                    out = learner.step(x, y, [lr * f for lr in base_lrs])
                except BlowUpError as exc:
                    raise self._divergence(learner, epoch, b, x, y, str(exc)) from None
                if learner.nonfinite:
                    raise self._divergence(learner, epoch, b, x, y,
                                           "non-finite outputs or updates")
                if out is not None:  # ghost: the free phase's prediction came for free
                    hits += int(np.sum(np.argmax(out, 1) == d.y_train[idx]))
                    seen += len(idx)
                    bar.set_postfix(acc=f"{hits / seen:.3f}", refresh=False)
                self._safe_point(sig, learner, epoch, b + 1, rows)
            self._check_weights(learner, epoch, n_batches)
            try:
                row = self._epoch_row(learner, epoch, time.perf_counter() - t0, probe)
            except BlowUpError as exc:  # the free phase of the evaluation
                x = d.x_train[:t.batch_size].astype(dtype, copy=False)
                y = one_hot(d.y_train[:t.batch_size], d.n_classes, dtype)
                raise self._divergence(learner, epoch, None, x, y,
                                       f"the evaluation after it: {exc}") from None
            row["lr"] = base_lrs[0] * lr_factor(t, epoch * n_batches - 1, n_batches)
            self._check_epoch(learner, epoch, row)
            rows.append(row)
            learner.reset_counts()
            self._save_checkpoint(learner, epoch + 1, 0, rows)
            self._write_metrics(rows)
            epoch_bar.set_postfix(test_acc=f"{row['test_acc']:.4f}", refresh=False)
            self._safe_point(sig, learner, epoch + 1, 0, rows, saved=True)
        return {"learner": t.learner, "epochs": t.epochs, "final": rows[-1] if rows else None,
                **select_model(rows), "warnings": list(self.notes), "finished": runs.now()}

    def _safe_point(self, sig, learner, epoch, batch, rows, saved=False) -> None:
        """Between steps: if a signal arrived, checkpoint this consistent state and stop."""
        if sig.signum is None:
            return
        if not saved:
            self._save_checkpoint(learner, epoch, batch, rows)
        name = signal.Signals(sig.signum).name
        msg = (f"interrupted by {name}: checkpoint written to {self.out / 'checkpoint.npz'} "
               f"(epoch {epoch}, batch {batch}); continue with ghostnet train --resume --out "
               f"{self.out}")
        print("\n" + msg)
        raise Interrupted(sig.signum, msg)

    # ---- checks ---------------------------------------------------------------------------------
    def _check_weights(self, learner, epoch, n_batches) -> None:
        p = learner.params
        for k in ("W", "b", "B", "G", "c", "H"):
            for i, a in enumerate(getattr(p, k)):
                if not np.isfinite(a).all():
                    raise self._divergence(learner, epoch, n_batches - 1, None, None,
                                           f"parameter {k}_{i} became non-finite")

    def _check_epoch(self, learner, epoch, row) -> None:
        m, name = self.cfg.model, self.cfg.train.learner
        for key in ("train_cost", "test_cost"):
            if row[key] != "" and not np.isfinite(row[key]):
                raise self._divergence(learner, epoch, None, None, None, f"{key} is {row[key]}")
        row["unsettled_phases"] = learner.unsettled if name == "ghost" else ""
        row["zero_updates"] = learner.zero_updates
        if (learner.unsettled and "unsettled" not in self._warned
                and not (m.mode == "equilibrium" and m.eq_max_iter == 1)):
            self._warned.add("unsettled")
            how = (f"{m.steps} fixed steps of dt = {m.dt} ({m.method}) leave max|du/dt| above "
                   f"tol = {m.tol}" if m.mode == "dynamics" and m.settle == "fixed" else
                   f"max_steps = {m.max_steps} was reached" if m.mode == "dynamics" else
                   f"eq_max_iter = {m.eq_max_iter} iterations did not converge")
            _warn(f"epoch {epoch}: {learner.unsettled} of {2 * learner.steps} phases did not "
                  f"settle ({how}); the update then departs from the settled one: use more steps, "
                  "settle = 'tol'" + (", method = 'expeuler'" if m.method == "euler" else "")
                  + " or a smaller dt (metrics.csv: unsettled_phases)", self.notes)
        if learner.steps and learner.zero_updates == learner.steps and "zero" not in self._warned:
            self._warned.add("zero")
            _warn(f"epoch {epoch}: every update of the {name} learner was exactly zero "
                  f"({learner.steps} steps): nothing is learned (saturated units, e.g. a large "
                  f"init_gain, or a beta too small for {m.dtype})", self.notes)

    def _divergence(self, learner, epoch, batch, x, y, what) -> DivergenceError:
        """A DivergenceError naming epoch, batch, learner and the likely cause."""
        t, m = self.cfg.train, self.cfg.model
        where = f"epoch {epoch}" + (f", batch {batch}" if batch is not None else "")
        with np.errstate(all="ignore"):
            now = max(float(np.max(np.abs(w))) for w in learner.params.W)
        grew = (f"max |W| {self._w0:.3g} at the start, "
                + (f"{now:.3g} now" if np.isfinite(now) else "non-finite now"))
        lr = f"lr = {t.lr}"
        if t.learner != "ghost":
            cause = f"the learning rate ({lr}) is too large ({grew}): reduce lr"
        else:
            # is it the integration (the initial weights fail on this batch too), the learned
            # ghosts (the weights settle with copy ghosts, not with the learned ones) or learning
            # (the learned weights blow the phases up)?
            m_copy = m.replace(mechanism="copy")
            learned = m.mechanism == "learned"
            if self._fails(m, Params.init(m), x, y):
                if learned and not self._fails(m_copy, Params.init(m_copy), x, y):
                    cause = ("the untrained learned ghosts: the initial weights settle on this "
                             "batch with copy ghosts, not with the learned ghosts' initial "
                             "values; pre-train them ([train] pretrain)")
                else:
                    cause = (f"the integration step: the initial weights blow up on this batch "
                             f"too; reduce dt (dt = {m.dt}, {m.method}; stability bound "
                             f"{m.stability_bound():.4g}) or beta (beta = {m.beta})")
            elif learned and not self._fails(m_copy, learner.params, x, y):
                cause = (f"the learned ghosts' rates (eta_g = {m.eta_g}, eta_h = {m.eta_h}): "
                         f"the weights reached settle on this batch with copy ghosts, not with "
                         f"the learned ones; keep each rate below its layer's bound 2 / lambda, "
                         f"which shrinks as the network learns (docs/model.md §5)")
            else:
                cause = (f"the learning rate ({lr}): the initial weights settle on this batch, "
                         f"the learned ones do not ({grew}); reduce lr")
        what = what.rstrip(". ")
        return DivergenceError(f"{t.learner} learner diverged at {where}: {what}. Likely cause: "
                               f"{cause}. Run marked failed in {self.out}")

    @staticmethod
    def _fails(model, params, x, y) -> bool:
        """Do the phases of ``model`` with ``params`` blow up (or turn non-finite) on ``x``, ``y``?"""
        if x is None:
            return False
        try:
            with np.errstate(all="ignore"):
                pair = GhostNetwork(model, params).phases(x, y)
        except BlowUpError:
            return True
        return not all(np.all(np.isfinite(np.asarray(a))) for a in pair.nudged.u)

    def _epoch_row(self, learner, epoch, seconds, probe) -> dict:
        d, m = self.data, self.cfg.model
        with np.errstate(all="ignore"):
            tr_acc, tr_cost = (evaluate(learner, d.x_train, d.y_train, d.n_classes)
                               if self.cfg.train.eval_train else ("", ""))
            te_acc, te_cost = evaluate(learner, d.x_test, d.y_test, d.n_classes)
            val_acc = (evaluate(learner, d.x_val, d.y_val, d.n_classes)[0]
                       if d.x_val is not None else "")
        angles = mean = angles_fa = mean_fa = ""
        if self.cfg.train.learner == "ghost" and self.cfg.train.probe_size > 0:
            x = d.x_train[probe].astype(m.dtype)
            y = one_hot(d.y_train[probe], d.n_classes, m.dtype)
            probe_net = GhostNetwork(m, learner.params.copy())  # no side effect on the run
            upd = probe_net.update(probe_net.phases(x, y))
            from ghostnet.checks.reference import backprop_gradients, feedback_alignment_gradients

            gW, gb, _ = backprop_gradients(m, learner.params, x, y)
            a = [r["angle_deg"] for r in layer_alignment(upd, gW, gb)]
            angles, mean = " ".join(f"{v:.4f}" for v in a), float(np.mean(a))
            if m.feedback == "random":
                fW, fb, _ = feedback_alignment_gradients(m, learner.params, x, y)
                a = [r["angle_deg"] for r in layer_alignment(upd, fW, fb)]
                angles_fa, mean_fa = " ".join(f"{v:.4f}" for v in a), float(np.mean(a))
        return {"epoch": epoch, "train_acc": tr_acc, "train_cost": tr_cost, "val_acc": val_acc,
                "test_acc": te_acc, "test_cost": te_cost, "lr": "", "seconds": round(seconds, 3),
                "mean_angle_deg": mean, "angles_deg": angles, "mean_angle_fa_deg": mean_fa,
                "angles_fa_deg": angles_fa, "unsettled_phases": "", "zero_updates": ""}

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


def standardization(x_train: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """The mean and std of :func:`standardize` (``how`` 'pixel' or 'global'), in float64: per
    pixel or one number each, a constant pixel (std below 1e-8) keeping std 1."""
    x = x_train.astype(np.float64)
    axis = 0 if how == "pixel" else None
    mean, std = x.mean(axis=axis), x.std(axis=axis)
    return mean, np.where(std > 1e-8, std, 1.0)


def standardize(d: Dataset, how: str, path: Path, resume: bool) -> Dataset:
    """``d`` with inputs ``(x - mean) / std``, the statistics from its training split: per pixel
    (``how = 'pixel'``; a constant pixel keeps std 1) or one number each (``'global'``). They are
    written to ``path`` (the run directory's ``standardize.npz``), and read from there on resume,
    so that a resumed run and a later evaluation use the same."""
    return _apply(standardizer(d, how, path, resume), d)


def _apply(f, d: Dataset) -> Dataset:
    return dataclasses.replace(d, x_train=f(d.x_train), x_test=f(d.x_test), x_val=f(d.x_val),
                               source=d.source)


def standardizer(d: Dataset, how: str, path: Path, resume: bool):
    """The map ``x -> (x - mean) / std`` (float32) of :func:`standardize`: its statistics from
    ``d``'s training split, written to ``path``, or on ``resume`` read from there; the identity
    for ``how = 'none'``."""
    if how == "none":
        return lambda x: x
    if resume and path.exists():
        with np.load(path) as z:
            if str(z["how"]) != how:
                raise ConfigError("standardize", f"{path} holds {str(z['how'])!r} statistics, "
                                                 f"the configuration says {how!r}")
            mean, std = z["mean"], z["std"]
    else:
        mean, std = standardization(d.x_train, how)
        buf = io.BytesIO()
        np.savez(buf, how=np.array(how), mean=mean, std=std)
        atomic_write(path, lambda fh: fh.write(buf.getvalue()))

    def f(x):
        return None if x is None else ((x - mean) / std).astype(np.float32)

    return f


def train(cfg: TrainConfig, out: str | Path, resume: bool = False, data: Dataset | None = None,
          progress: bool = True, overwrite: bool = False, threads: int | None = None) -> dict:
    """Train per ``cfg`` into run directory ``out``; returns the summary. ``resume``: continue the
    interrupted run there (its stored configuration must equal ``cfg``; a finished run returns its
    summary); ``overwrite``: replace whatever run is there (docs/runs.md). ``threads`` bounds the
    numerical libraries' threads during the run (default: ``cfg.train.threads``; 0: every core)."""
    from ghostnet.learning.threads import limit_threads

    with limit_threads(cfg.train.threads if threads is None else threads):
        return Trainer(cfg, out, data=data, progress=progress).run(resume=resume,
                                                                    overwrite=overwrite)


def stored_config(out: str | Path) -> TrainConfig:
    """The resolved configuration a run directory was started with (its manifest, else its
    config.toml); :class:`RunDirError` when it holds no run."""
    out = Path(out)
    if runs.run_status(out) is None:
        raise RunDirError(f"{out} holds no run")
    return _config_of(out, runs.read_manifest(out))


def _config_of(out: Path, manifest: dict | None) -> TrainConfig:
    if manifest is not None and "config" in manifest:
        try:
            return TrainConfig.from_dict(manifest["config"])
        except ConfigError as exc:
            raise RunDirError(f"{out / runs.MANIFEST}: stored configuration is invalid "
                              f"({exc})") from None
    return TrainConfig.load(out / "config.toml")  # a run from before manifests


def resume_run(out: str | Path, progress: bool = True, data: Dataset | None = None,
               threads: int | None = None) -> dict:
    """Continue the run in ``out`` with the configuration stored there (a finished run returns
    its summary)."""
    return train(stored_config(out), out, resume=True, data=data, progress=progress,
                 threads=threads)
