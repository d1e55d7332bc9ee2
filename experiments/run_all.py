"""Run every experiment behind the figures (docs/model.md §11), each into its own folder under --results,
then draw them with `ghostnet figures --results DIR`.

    python experiments/run_all.py [--quick] [--results results] [--only traces gradients ...]
        [--data-source DIR_OR_NPZ]

Full scale takes hours here, almost all of it the Fashion-MNIST training runs of the results table:
the sweeps experiments/sweeps/table_*.toml, run as `ghostnet sweep` runs them (on a local Dask
cluster, one worker process per core; resumable: finished runs are skipped). --quick takes about a
minute (the table's sweeps at seed 0, 2 epochs on 500 samples, one after another in this process).
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

# experiment name (its results folder) -> script module in this folder
EXPERIMENTS = {
    "traces": "traces",
    "cancellation": "cancellation",
    "gradients": "gradients",
    "angle_vs_beta": "angle_vs_beta",
    "feedback_alignment": "feedback_alignment",
    "table": None,  # the sweeps experiments/sweeps/table_*.toml (table() below)
}
SWEEPS = Path(__file__).resolve().parent / "sweeps"
QUICK_TABLE = {"seed": 0, "train.epochs": 2, "train.train_size": 500, "train.pretrain": 1000,
               "train.probe_size": 20}


def table(argv):
    """Each experiments/sweeps/table_<net>.toml into <out>/fashion_<net>, then its report."""
    from ghostnet.learning.sweep import load_sweep, run_sweep

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="results/table")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data-source", default=None)
    args = ap.parse_args(argv)
    overrides = dict(QUICK_TABLE) if args.quick else {}
    if args.data_source:
        overrides["train.data_source"] = args.data_source
    for path in sorted(SWEEPS.glob("table_*.toml")):
        sweep = load_sweep(path, overrides)
        out = Path(args.out) / ("fashion_" + path.stem.removeprefix("table_"))
        run_sweep(sweep, out, workers=0 if args.quick else None, progress=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="+", choices=list(EXPERIMENTS), default=list(EXPERIMENTS))
    ap.add_argument("--data-source", default=None, help="Fashion-MNIST as IDX files or .npz (table)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    for name in args.only:
        argv_ = ["--out", str(Path(args.results) / name)] + (["--quick"] if args.quick else [])
        if name == "table" and args.data_source:
            argv_ += ["--data-source", args.data_source]
        t0 = time.time()
        print(f"== {name} ({EXPERIMENTS[name] or 'sweeps/table_*.toml'} {' '.join(argv_)})",
              flush=True)
        if EXPERIMENTS[name] is None:
            table(argv_)
        else:
            importlib.import_module(EXPERIMENTS[name]).main(argv_)
        print(f"== {name}: {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
