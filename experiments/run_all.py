"""Run every experiment behind the figures (docs/model.md §11), each into its own folder under --results,
then draw them with `ghostnet figures --results DIR`.

    python experiments/run_all.py [--quick] [--results results] [--only traces gradients ...]
        [--data-source DIR_OR_NPZ]

Full scale takes hours here, almost all of it the Fashion-MNIST training runs of run_table.py
(resumable: finished runs are skipped); --quick takes about a minute.
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
    "table": "run_table",
}


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
        print(f"== {name} ({EXPERIMENTS[name]}.py {' '.join(argv_)})", flush=True)
        importlib.import_module(EXPERIMENTS[name]).main(argv_)
        print(f"== {name}: {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
