"""``ghostnet train``: train a ghost network or a baseline per a TOML config into a run
directory."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ghostnet.cli._common import add_parser
from ghostnet.model.config import COSTS, FEEDBACKS, MECHANISMS, MODES

SUMMARY = "train a ghost network or a baseline (backprop, FA) on a dataset"


def default_out(config_path: str, cfg) -> str:
    """The run directory used when ``--out`` is not given."""
    return (f"runs/{Path(config_path).stem}-{cfg.train.learner}-{cfg.model.mechanism}-"
            f"{cfg.model.feedback}-s{cfg.train.seed}")


def add(sub) -> None:
    p = add_parser(
        sub, "train", SUMMARY,
        "Train per a TOML config ([model] and [train] sections; see experiments/configs/ and\n"
        "docs/training.md) into a run directory: config.toml, meta.json, metrics.csv (one row an\n"
        "epoch), summary.json and checkpoint.npz. Options given here override the config's.",
        "ghostnet train --config experiments/configs/fashion_784-500-10.toml --epochs 5")
    p.add_argument("--config", required=True, help="TOML file")
    p.add_argument("--learner", choices=("ghost", "backprop", "fa"), help="override [train] learner")
    p.add_argument("--epochs", type=int, help="override [train] epochs")
    p.add_argument("--train-size", type=int, help="use the first N training samples")
    p.add_argument("--seed", type=int, help="data order seed (and model seed)")
    p.add_argument("--mechanism", choices=MECHANISMS, help="override [model] mechanism")
    p.add_argument("--feedback", choices=FEEDBACKS, help="override [model] feedback")
    p.add_argument("--mode", choices=MODES, help="override [model] mode")
    p.add_argument("--cost", choices=COSTS, help="override [model] cost (mse or cross_entropy)")
    p.add_argument("--data-source", help="IDX directory or .npz (default: the dataset's own sources)")
    p.add_argument("--out", help="run directory (default: runs/<config>-<learner>-<mechanism>-"
                                 "<feedback>-s<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _config(args):
    from ghostnet.learning.training import TrainConfig

    cfg = TrainConfig.load(args.config)
    m, t = dataclasses.asdict(cfg.model), dataclasses.asdict(cfg.train)
    for key in ("learner", "epochs", "train_size", "seed", "data_source"):
        v = getattr(args, key, None)
        if v is not None:
            t[key] = v
    if args.seed is not None:
        m["seed"] = args.seed
    for key in ("mechanism", "feedback", "mode", "cost"):
        v = getattr(args, key, None)
        if v is not None:
            m[key] = v
    if t["learner"] == "fa" and args.feedback is None:
        m["feedback"] = "random"  # fa sends the error through the random B
    from ghostnet.learning.training import TrainSettings
    from ghostnet.model.config import ModelConfig

    return TrainConfig(ModelConfig(**m), TrainSettings(**t)).validate()


def run(args) -> int:
    from ghostnet.learning.training import train

    cfg = _config(args)
    out = args.out or default_out(args.config, cfg)
    try:
        summary = train(cfg, out, resume=args.resume, progress=not args.no_progress)
    except KeyboardInterrupt:
        return 130
    final = summary["final"]
    print(f"{cfg.train.learner}: test accuracy {final['test_acc']:.4f} after {final['epoch']} "
          f"epochs (run directory {out})")
    return 0
