"""``ghostnet compare``: a ghost network and backprop trained briefly side by side, with the same
initial weights and data order."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ghostnet.cli._common import add_parser, dumps

SUMMARY = "train a ghost network and backprop briefly, side by side, and print both accuracies"
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "learning" / "configs" / "compare.toml"


def add(sub) -> None:
    p = add_parser(
        sub, "compare", SUMMARY,
        "Trains the ghost learner and backprop from the same initial weights in the same data\n"
        "order and prints both test accuracies. Without --config: 784-500-10, copy ghosts,\n"
        "equilibrium mode, on Fashion-MNIST (the full set when it is on this machine: Debian's\n"
        "dataset-fashion-mnist or the data cache; nothing is downloaded), else on the embedded\n"
        "10,000/2,000-image subset; the first line says which it used.",
        "ghostnet compare\nghostnet compare --epochs 5 --train-size 60000")
    p.add_argument("--config", help="TOML file with [model] and [train] (default: the built-in "
                                    "784-500-10 configuration)")
    p.add_argument("--epochs", type=int, default=2, help="epochs of each learner")
    p.add_argument("--train-size", type=int, default=10000,
                   help="training samples (at most the dataset's)")
    p.add_argument("--out", default="runs/compare",
                   help="parent of the two run directories, <out>/ghost and <out>/backprop")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    from ghostnet.learning.data import load, load_full_or_embedded
    from ghostnet.learning.training import TrainConfig, train

    base = TrainConfig.load(args.config or DEFAULT_CONFIG)
    if args.config is None:
        data = load_full_or_embedded(base.train.dataset)
    else:
        data = load(base.train.dataset, base.train.data_source or None)
    n = min(args.train_size, len(data.x_train))
    what = (f"{data.name} ({data.source}), {n} of {len(data.x_train)} training samples, "
            f"{len(data.x_test)} test samples")
    if not args.json:
        print(f"data: {what}")
    results = {}
    for learner in ("ghost", "backprop"):
        t = dataclasses.replace(base.train, learner=learner, epochs=args.epochs, train_size=n,
                                dataset=data.name)
        cfg = TrainConfig(base.model, t).validate()
        # the command's own run directories: each run replaces the previous one
        s = train(cfg, Path(args.out) / learner, data=data, progress=not args.json,
                  overwrite=True)
        results[learner] = s["final"]
    if args.json:
        print(dumps({"dataset": data.name, "source": data.source, "train_size": n, **results}))
        return 0
    m = base.model
    print(f"{'-'.join(map(str, m.sizes))}, {args.epochs} epochs, same initial weights and data order")
    ghost = f"ghost ({m.mechanism}, {m.feedback}, {m.mode})"
    width = max(len(ghost), len("backprop"))
    print(f"{'learner':<{width}} {'test accuracy':>13}")
    print(f"{ghost:<{width}} {results['ghost']['test_acc']:>13.4f}")
    print(f"{'backprop':<{width}} {results['backprop']['test_acc']:>13.4f}")
    return 0
