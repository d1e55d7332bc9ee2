"""Credible baselines on Fashion-MNIST: a learning-rate / weight-decay search for backprop on the
validation split, then every learner with the chosen settings, 3 seeds, and the table
(docs/baselines.md).

    python experiments/baselines.py search  [--config NAME] [--lrs ...] [--wds ...] [--epochs 10]
                                            [--seeds 0]
    python experiments/baselines.py run     RUN [RUN ...] [--jobs 2]
    python experiments/baselines.py plan    [--configs NAME ...] [--seeds 0 1 2]   # prints run names
    python experiments/baselines.py table   [--out results/baselines]

A run is named ``<config>/<variant>-s<seed>`` (config: a file stem of
experiments/configs/baselines/, e.g. ``fashion_784-500-10_tanh``; variant: ``ghost-copy-symmetric``,
``ghost-copy-random``, ``ghost-learned-symmetric``, ``backprop``, ``fa``), a search run
``<config>/search-lr=<lr>,wd=<wd>,ep=<epochs>[,s=<seed>]`` (backprop, seed 0 unless named). Each run is one process with one thread
(OMP/OpenBLAS/MKL/Numba and torch), ``--jobs`` at a time, into ``results/baselines/<run>/``;
finished runs (summary.json) are skipped, interrupted ones resume from their checkpoint.
``plan`` lists the runs in priority order (network, then transfer, then learner pairs).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's ghostnet, also for the children (PYTHONPATH below)
CONFIGS = ROOT / "experiments" / "configs" / "baselines"
OUT = ROOT / "results" / "baselines"

VARIANTS = {  # name: (learner, model overrides), in priority order of pairs
    "backprop": ("backprop", {"feedback": "symmetric"}),
    "ghost-copy-symmetric": ("ghost", {"mechanism": "copy", "feedback": "symmetric"}),
    "fa": ("fa", {"feedback": "random"}),
    "ghost-copy-random": ("ghost", {"mechanism": "copy", "feedback": "random"}),
    "ghost-learned-symmetric": ("ghost", {"mechanism": "learned", "feedback": "symmetric"}),
}
PRIORITY = ["fashion_784-500-10_tanh", "fashion_784-500-500-10_tanh",
            "fashion_784-500-10_logistic", "fashion_784-500-500-10_logistic"]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1"}


def config_for(run: str):
    """The TrainConfig of a run name (module docstring)."""
    from ghostnet.learning.settings import TrainConfig

    cname, leaf = run.split("/")
    base = TrainConfig.load(CONFIGS / f"{cname}.toml")
    if leaf.startswith("search-"):
        lr, wd, epochs, more = _parse_search(leaf)
        seed = more.pop("seed", 0)
        t = dataclasses.replace(base.train, learner="backprop", lr=lr, weight_decay=wd,
                                epochs=epochs, seed=seed, probe_size=0, **more)
        return TrainConfig(dataclasses.replace(base.model, seed=seed), t).validate()
    variant, seed = leaf.rsplit("-s", 1)
    learner, over = VARIANTS[variant]
    m = dataclasses.replace(base.model, seed=int(seed), **over)
    t = dataclasses.replace(base.train, learner=learner, seed=int(seed))
    return TrainConfig(m, t).validate()


def _parse_search(leaf: str):
    parts = dict(p.split("=", 1) for p in leaf[len("search-"):].split(","))
    more = {}  # optional: std=<standardize>, opt=<optimizer>, s=<seed> (default 0)
    if "s" in parts:
        more["seed"] = int(parts["s"])
    if "std" in parts:
        more["standardize"] = parts["std"]
    if "opt" in parts:
        more["optimizer"] = parts["opt"]
        if parts["opt"] == "adam":
            more.update(momentum=0.0, nesterov=False)
    return float(parts["lr"]), float(parts["wd"]), int(parts["ep"]), more


def search_name(cname, lr, wd, epochs, seed=0):
    return f"{cname}/search-lr={lr:g},wd={wd:g},ep={epochs}" + (f",s={seed}" if seed else "")


def run_one(run: str, out: Path) -> None:
    """Train one run in this process (the child of :func:`run_many`)."""
    import torch

    torch.set_num_threads(1)
    from ghostnet.learning.training import train

    cfg = config_for(run)
    d = out / run
    if (d / "summary.json").exists():
        return
    # threads=1: train() otherwise widens every pool to all cores, whatever the environment says
    train(cfg, d, resume=(d / "checkpoint.npz").exists(), progress=False, threads=1)


def run_many(runs: list[str], out: Path, jobs: int) -> None:
    """Each run in its own process, ``jobs`` at a time; a log line per start and end."""
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(ROOT)}
    todo = [r for r in runs if not (out / r / "summary.json").exists()]
    running: list[tuple[str, subprocess.Popen, float]] = []
    while todo or running:
        while todo and len(running) < jobs:
            r = todo.pop(0)
            (out / r).parent.mkdir(parents=True, exist_ok=True)
            log = open(out / f"{r}.log", "a")  # beside the run directory, which holds only the run
            p = subprocess.Popen([sys.executable, __file__, "_one", r, "--out", str(out)], env=env,
                                 stdout=log, stderr=subprocess.STDOUT)
            running.append((r, p, time.time()))
            print(f"{time.strftime('%H:%M:%S')} start {r}", flush=True)
        time.sleep(1.0)
        for item in list(running):
            r, p, t0 = item
            if p.poll() is not None:
                running.remove(item)
                print(f"{time.strftime('%H:%M:%S')} end {r} rc={p.returncode} "
                      f"{time.time() - t0:.0f} s", flush=True)


def plan(configs: list[str], seeds: list[int]) -> list[str]:
    """Runs in priority order: per network/transfer, learner pairs (backprop + ghost copy
    symmetric, then FA + ghost copy random, then learned), seeds inside each pair."""
    pairs = [["backprop", "ghost-copy-symmetric"], ["fa", "ghost-copy-random"],
             ["ghost-learned-symmetric"]]
    return [f"{c}/{v}-s{s}" for c in configs for pair in pairs for s in seeds for v in pair]


# ---- the tables -------------------------------------------------------------------------------
def _runs(out: Path):
    for summary in sorted(out.glob("*/*/summary.json")):
        run = summary.parent
        rows = list(csv.DictReader(open(run / "metrics.csv")))
        s = json.loads(summary.read_text())
        yield run.parent.name, run.name, s, rows


def _err(acc) -> float:
    return 100.0 * (1.0 - float(acc))


def _ms(v: list[float]) -> str:
    return f"{statistics.mean(v):.2f} +- {statistics.stdev(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"


def table(out: Path) -> str:
    """results/baselines/table.md: the search, then every (config, variant) over its seeds."""
    search, groups = [], {}
    for cname, leaf, s, rows in _runs(out):
        secs = sum(float(r["seconds"]) for r in rows)
        if leaf.startswith("search-"):
            lr, wd, ep, more = _parse_search(leaf)
            sel = s["selected"]
            search.append((cname, more.get("optimizer", "sgd nesterov"),
                           more.get("standardize", "pixel"), lr, wd, ep, more.get("seed", 0),
                           _err(sel["val_acc"]), sel["epoch"], _err(s["last_val_acc"])))
            continue
        variant, seed = leaf.rsplit("-s", 1)
        groups.setdefault((cname, variant), []).append(
            (int(seed), _err(s["selected"]["test_acc"]), _err(s["last_test_acc"]),
             s["selected"]["epoch"], len(rows), secs / len(rows)))
    lines = ["# Baselines on Fashion-MNIST (generated by experiments/baselines.py table)", ""]
    if search:
        lines += ["## Search (backprop, validation error %)", "",
                  "| config | optimizer | standardize | lr | weight_decay | epochs | seed | "
                  "val error % (best epoch) | best epoch | val error % (last epoch) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for c, o, st, lr, wd, ep, seed, best, be, last in sorted(search):
            lines.append(f"| {c} | {o} | {st} | {lr:g} | {wd:g} | {ep} | {seed} | {best:.2f} | "
                         f"{be} | {last:.2f} |")
        lines.append("")
    lines += ["## Test error % (model chosen at the best validation epoch; last epoch beside it)", "",
              "| config | learner | seeds | epochs | test error % at best val (mean +- sd) | "
              "per seed | test error % at last epoch | s/epoch (train) |",
              "|---|---|---|---|---|---|---|---|"]
    order = {v: i for i, v in enumerate(VARIANTS)}
    for (c, v), res in sorted(groups.items(), key=lambda kv: (PRIORITY.index(kv[0][0])
                                                              if kv[0][0] in PRIORITY else 9,
                                                              order.get(kv[0][1], 9))):
        res.sort()
        lines.append(f"| {c} | {v} | {len(res)} ({', '.join(str(r[0]) for r in res)}) | "
                     f"{'/'.join(sorted({str(r[4]) for r in res}))} | {_ms([r[1] for r in res])} | "
                     f"{' / '.join(f'{r[1]:.2f}' for r in res)} | {_ms([r[2] for r in res])} | "
                     f"{statistics.mean(r[5] for r in res):.1f} |")
    text = "\n".join(lines) + "\n"
    from ghostnet.io import atomic_write_text

    atomic_write_text(out / "table.md", text)
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("search", help="backprop lr x weight_decay grid on the validation split")
    s.add_argument("--config", default="fashion_784-500-10_tanh")
    s.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.03, 0.1])
    s.add_argument("--wds", type=float, nargs="+", default=[0.0, 1e-3, 1e-2])
    s.add_argument("--epochs", type=int, default=10)
    s.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="one search run per seed (each seed draws its own validation split)")
    r = sub.add_parser("run", help="train the named runs")
    r.add_argument("runs", nargs="+")
    p = sub.add_parser("plan", help="print the main runs in priority order")
    p.add_argument("--configs", nargs="+", default=PRIORITY)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    sub.add_parser("table", help="write results/baselines/table.md")
    one = sub.add_parser("_one")
    one.add_argument("run")
    for q in (s, r, p, one, sub.choices["table"]):
        q.add_argument("--out", default=str(OUT))
        q.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.cmd == "_one":
        run_one(args.run, out)
    elif args.cmd == "search":
        runs = [search_name(args.config, lr, wd, args.epochs, seed) for seed in args.seeds
                for lr in args.lrs for wd in args.wds]
        run_many(runs, out, args.jobs)
        print(table(out))
    elif args.cmd == "run":
        for name in args.runs:
            config_for(name)  # every name valid before any work starts
        run_many(args.runs, out, args.jobs)
        print(table(out))
    elif args.cmd == "plan":
        print("\n".join(plan(args.configs, args.seeds)))
    else:
        print(table(out))


if __name__ == "__main__":
    main()
