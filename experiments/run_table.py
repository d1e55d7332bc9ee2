"""The Fashion-MNIST results table: ghost (copy, symmetric), ghost (copy, random), ghost (learned,
symmetric), backprop and fa on Fashion-MNIST, same architecture, initial weights, data order and
learning rates; test error mean and spread over seeds. Resumable (docs/runs.md): finished runs are
skipped, interrupted ones resume from their checkpoint, failed ones are left alone and named; the
table is made from finished runs only and names the others.

    python experiments/run_table.py [--configs experiments/configs/fashion_784-500-10.toml ...]
        [--seeds 0 1 2] [--epochs 20] [--out results/table] [--data-source DIR_OR_NPZ] [--quick]

The per-epoch metrics.csv of every run are also the learning curves of the figures (docs/model.md §11
E3). --quick: seed 0, 2 epochs on 500 training samples, 1,000 samples of ghost pre-training.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
from pathlib import Path

import numpy as np

from ghostnet.learning.data import load
from ghostnet.io import atomic_write_text, write_csv
from ghostnet.learning.runs import finished_runs, run_status
from ghostnet.learning.training import TrainConfig, train

VARIANTS = {  # name: (learner, model overrides)
    "ghost copy symmetric": ("ghost", {"mechanism": "copy", "feedback": "symmetric"}),
    "ghost copy random": ("ghost", {"mechanism": "copy", "feedback": "random"}),
    "ghost learned symmetric": ("ghost", {"mechanism": "learned", "feedback": "symmetric"}),
    "backprop": ("backprop", {"feedback": "symmetric"}),
    "fa": ("fa", {"feedback": "random"}),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    configs = Path(__file__).resolve().parent / "configs"
    ap.add_argument("--configs", nargs="+", default=[str(configs / "fashion_784-500-10.toml"),
                                                     str(configs / "fashion_784-500-500-10.toml")])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--out", default="results/table")
    ap.add_argument("--data-source", default=None,
                    help="a directory of IDX files or an .npz (default: the config's, else the usual sources)")
    ap.add_argument("--quick", action="store_true", help="seed 0, 2 epochs, 500 training samples")
    args = ap.parse_args(argv)
    quick = {"train_size": 500, "pretrain": 1000, "probe_size": 20} if args.quick else {}
    if args.quick:
        args.seeds, args.epochs = [0], 2
    out = Path(args.out)
    data = {}
    for cpath in args.configs:
        base = TrainConfig.load(cpath)
        source = args.data_source or base.train.data_source or None
        if base.train.dataset not in data:
            data[base.train.dataset] = load(base.train.dataset, source)
        for seed in args.seeds:
            for name in args.variants:
                learner, over = VARIANTS[name]
                m = dataclasses.replace(base.model, seed=seed, **over)
                t = dataclasses.replace(base.train, learner=learner, seed=seed, epochs=args.epochs,
                                        data_source=source or "", **quick)
                cfg = TrainConfig(m, t).validate()
                run = out / Path(cpath).stem / f"{name.replace(' ', '-')}-s{seed}"
                status = run_status(run)
                if status == "finished":
                    continue
                if status == "failed":
                    print(f"{run}: failed before, skipped (rerun it with ghostnet train "
                          "--overwrite)", flush=True)
                    continue
                resume = status == "interrupted"
                print(f"{Path(cpath).stem} {name} seed {seed}{' (resuming)' if resume else ''}",
                      flush=True)
                train(cfg, run, resume=resume, data=data[base.train.dataset], progress=False)
    summarise(out)


def summarise(out: Path) -> None:
    rows = []
    done, skipped = finished_runs(p for p in sorted(out.glob("*/*")) if p.is_dir())
    for run, status in skipped:
        print(f"summary: skipped {run} ({status})")
    for run in done:
        metrics = list(csv.DictReader(open(run / "metrics.csv")))
        rows.append({"config": run.parent.name, "variant": run.name.rsplit("-s", 1)[0].replace("-", " "),
                     "seed": int(run.name.rsplit("-s", 1)[1]), "epochs": len(metrics),
                     "test_error_pct": 100 * (1 - float(metrics[-1]["test_acc"])),
                     "seconds_per_epoch": float(np.mean([float(r["seconds"]) for r in metrics]))})
    if not rows:
        print("no finished runs yet")
        return
    write_csv(out / "table.csv", rows)
    lines = ["| config | variant | seeds | epochs | test error % (mean +- sd) | s/epoch |",
             "|---|---|---|---|---|---|"]
    for config in sorted({r["config"] for r in rows}):
        for variant in VARIANTS:
            sel = [r for r in rows if r["config"] == config and r["variant"] == variant]
            if not sel:
                continue
            e = np.array([r["test_error_pct"] for r in sel])
            lines.append(f"| {config} | {variant} | {len(sel)} | {sel[0]['epochs']} | "
                         f"{e.mean():.2f} +- {e.std(ddof=1) if len(e) > 1 else 0:.2f} | "
                         f"{np.mean([r['seconds_per_epoch'] for r in sel]):.1f} |")
    atomic_write_text(out / "table.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
