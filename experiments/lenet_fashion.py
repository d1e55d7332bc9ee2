"""Fashion-MNIST on the LeNet-like network of experiments/configs/fashion_lenet.toml (torch engine):
ghost (copy, symmetric), ghost (copy, random), ghost (learned, symmetric), backprop and feedback
alignment, each from the same initial weights and data order per seed; 5,000 training images
held out for validation (the learning rate is chosen on it, never on the test set).

    python experiments/lenet_fashion.py [--config experiments/configs/fashion_lenet.toml]
                                        [--seeds 0 1 2] [--epochs E] [--lr LR] [--workers 2]
                                        [--train-size 0] [--out results/lenet_fashion]

``--epochs`` and ``--lr`` default to the configuration's. A finished run (summary.json) is kept,
an interrupted one resumes from its checkpoint. SIGTERM or SIGINT to this process stops it
cleanly: queued runs are cancelled, the running ones are passed the signal and write their
checkpoints, and the command waits for them before it exits (status 128 + the signal's number).

Each run writes its run directory (config.toml, metrics.csv, summary.json) under ``--out``;
``summary.json`` there collects the final validation and test accuracies per learner and seed
and their means. Runs go to ``--workers`` processes, each with one thread.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import signal
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "configs" / "fashion_lenet.toml"
VARIANTS = {
    "ghost-copy-symmetric": dict(learner="ghost", mechanism="copy", feedback="symmetric"),
    "ghost-copy-random": dict(learner="ghost", mechanism="copy", feedback="random"),
    "ghost-learned": dict(learner="ghost", mechanism="learned", feedback="symmetric"),
    "backprop": dict(learner="backprop", mechanism="copy", feedback="symmetric"),
    "fa": dict(learner="fa", mechanism="copy", feedback="random"),
}


def _default_signals() -> None:
    """Pool workers: SIGINT and SIGTERM as by default (the command's own handlers are not theirs);
    a running training run installs its own, which stop it at a checkpoint."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_one(job: dict) -> dict | None:
    if job.get("parent") is not None and os.getppid() != job["parent"]:
        return None  # the command that queued this run has stopped: do not start it
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)
    from ghostnet.learning.data import load
    from ghostnet.learning.settings import TrainConfig
    from ghostnet.learning.training import train

    base = TrainConfig.load(job["config"])
    v = VARIANTS[job["variant"]]
    model = base.model.replace(mechanism=v["mechanism"], feedback=v["feedback"], seed=job["seed"],
                               device="cpu", eq_max_iter=job["eq_max_iter"] or base.model.eq_max_iter)
    t = dataclasses.replace(base.train, learner=v["learner"],
                            epochs=job["epochs"] or base.train.epochs,
                            lr=job["lr"] or base.train.lr, seed=job["seed"],
                            val_size=5000 if not job["train_size"] else job["train_size"] // 5,
                            train_size=job["train_size"], probe_size=0,
                            pretrain=((base.train.pretrain if job["pretrain"] < 0 else job["pretrain"])
                                      if v["mechanism"] == "learned" else 0))
    out = Path(job["out"]) / f"{job['variant']}-seed{job['seed']}"
    s = train(TrainConfig(model, t).validate(), out, data=load("fashion-mnist"),
              progress=False, resume=(out / "run.json").exists(),
              threads=1)  # train() otherwise widens every pool to all cores
    f = s["final"]
    sel = s.get("selected") or f  # the epoch of the best validation accuracy (if a split)
    return {"variant": job["variant"], "seed": job["seed"], "val_acc": sel["val_acc"],
            "test_acc": sel["test_acc"], "epoch": sel.get("epoch", f.get("epoch")),
            "last_test_acc": f["test_acc"], "seconds": f["seconds"]}


def summarize(out: Path) -> dict:
    """Per variant and seed, from each run directory's metrics.csv (finished epochs so far): the
    validation and test accuracy at the epoch of the best validation accuracy (the first on a tie)
    and the last epoch's test accuracy; printed with the means over seeds, written to table.json."""
    import csv

    from ghostnet.learning.training import select_model

    table: dict = {}
    for run in sorted(out.glob("*-seed*")):
        rows = list(csv.DictReader(open(run / "metrics.csv"))) if (run / "metrics.csv").exists() \
            else []
        if not rows:
            continue
        variant, seed = run.name.rsplit("-seed", 1)
        sel = select_model([{"epoch": int(r["epoch"]), "val_acc": float(r["val_acc"]),
                             "test_acc": float(r["test_acc"])} for r in rows])
        best = sel["selected"]
        table.setdefault(variant, []).append(
            {"seed": int(seed), "epochs": sel["last_epoch"], "selected_epoch": best["epoch"],
             "val_acc": best["val_acc"], "test_acc": best["test_acc"],
             "last_test_acc": sel["last_test_acc"]})
    (out / "table.json").write_text(json.dumps(table, indent=2) + "\n")
    for variant, runs in table.items():
        errs = [100 * (1 - r["test_acc"]) for r in runs]
        print(f"{variant:<22} test error {statistics.mean(errs):.2f}% at the best validation "
              "epoch (seeds: " + ", ".join(f"{r['seed']}: {100 * (1 - r['test_acc']):.2f}% at "
                                           f"epoch {r['selected_epoch']} of {r['epochs']}"
                                           for r in runs) + ")")
    return table


def merge_summary(path: Path, settings: dict, rows: list[dict]) -> dict:
    """The folder's summary with this invocation's ``rows``: runs of other variants or seeds
    already in ``path`` are kept (a later invocation adds to the folder, it does not hide what
    is there), and each variant keeps the settings it ran with."""
    old = json.loads(path.read_text()) if path.exists() else {}
    by_variant = dict(old.get("settings_by_variant", {}))
    if "settings" in old:  # written before settings were kept per variant
        by_variant.update({v: old["settings"] for v in old["settings"].get("variants", [])})
    by_variant.update({v: settings for v in settings["variants"]})
    done = {(r["variant"], r["seed"]) for r in rows}
    runs = [r for r in old.get("runs", []) if (r["variant"], r["seed"]) not in done] + rows
    mean = {}
    for v in dict.fromkeys(r["variant"] for r in runs):
        got = [r for r in runs if r["variant"] == v]
        mean[v] = {"test_error_pct": 100 * (1 - statistics.mean(r["test_acc"] for r in got)),
                   "val_error_pct": 100 * (1 - statistics.mean(r["val_acc"] for r in got)),
                   "seeds": len(got)}
    return {"settings_by_variant": by_variant, "runs": runs, "mean": mean}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="model and data seeds")
    ap.add_argument("--config", default=str(CONFIG), help="the model and training settings")
    ap.add_argument("--epochs", type=int, default=0, help="epochs of every run (0: the config's)")
    ap.add_argument("--lr", type=float, default=0.0,
                    help="learning rate of every learner (0: the config's)")
    ap.add_argument("--train-size", type=int, default=0, help="training images (0: all)")
    ap.add_argument("--pretrain", type=int, default=-1,
                    help="learned ghosts: samples of pre-training without targets first "
                         "(-1: the config's [train] pretrain)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                    help="which learners")
    ap.add_argument("--workers", type=int, default=2, help="processes")
    ap.add_argument("--eq-max-iter", type=int, default=0,
                    help="ghost learners: at most this many down passes of the nudged phase (1: "
                         "first order in beta, docs/model.md §8); 0: the configuration's")
    ap.add_argument("--out", default=str(ROOT / "results" / "lenet_fashion"), help="output folder")
    ap.add_argument("--summarize", action="store_true",
                    help="only tabulate the run directories under --out (their last finished "
                         "epoch), e.g. of runs still going")
    args = ap.parse_args(argv)
    if args.summarize:
        return summarize(Path(args.out))
    jobs = [dict(config=args.config, variant=v, seed=s, epochs=args.epochs, lr=args.lr, train_size=args.train_size,
                 pretrain=args.pretrain, out=args.out, eq_max_iter=args.eq_max_iter) for s in args.seeds for v in args.variants]
    rows, failed, stopped, futures = [], [], [], {}

    def stop(signum, frame):
        stopped.append(signum)
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    pool = ProcessPoolExecutor(args.workers, initializer=_default_signals)
    try:
        for job in jobs:
            job["parent"] = os.getpid()
        futures = {pool.submit(run_one, job): job for job in jobs}
        for fut in as_completed(futures):
            job = futures[fut]
            try:
                row = fut.result()
            except Exception as exc:  # one failed run does not stop the others
                failed.append(job)
                print(f"{job['variant']}-seed{job['seed']} failed: {type(exc).__name__}: {exc}",
                      file=sys.stderr, flush=True)
                continue
            print(json.dumps(row), flush=True)
            rows.append(row)
    except KeyboardInterrupt:
        # cancel what has not started, pass the signal to the runs that have (each writes its
        # checkpoint and stops), and wait for them
        for sig in old:
            signal.signal(sig, signal.SIG_IGN)
        for fut in futures:
            fut.cancel()
        for child in multiprocessing.active_children():
            child.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        print(f"stopped by {signal.Signals(stopped[0] if stopped else signal.SIGINT).name}: "
              f"{len(rows)} of {len(jobs)} runs finished; the same command resumes the others",
              file=sys.stderr)
        sys.exit(128 + (stopped[0] if stopped else signal.SIGINT))
    pool.shutdown(wait=True)
    for sig, handler in old.items():
        signal.signal(sig, handler)
    rows.sort(key=lambda r: (args.variants.index(r["variant"]), r["seed"]))
    from ghostnet.io import atomic_write_text  # here: the workers set their thread bounds first

    summary = merge_summary(Path(args.out) / "summary.json", vars(args), rows)
    atomic_write_text(Path(args.out) / "summary.json", json.dumps(summary, indent=2) + "\n")
    for v, m in summary["mean"].items():
        print(f"{v:<22} test error {m['test_error_pct']:.2f}%  (validation {m['val_error_pct']:.2f}%,"
              f" {m['seeds']} seeds)")
    if failed:
        sys.exit(f"{len(failed)} of {len(jobs)} runs failed (above); the others are in {args.out}")
    return summary


if __name__ == "__main__":
    main()
