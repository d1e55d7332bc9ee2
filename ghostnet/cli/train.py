"""``ghostnet train``: train a ghost network or a baseline per a TOML config into a run
directory."""
from __future__ import annotations

from pathlib import Path

from ghostnet.cli._common import add_parser
from ghostnet.model.config import COSTS, FEEDBACKS, MECHANISMS, MODES, ConfigError

SUMMARY = "train a ghost network or a baseline (backprop, FA) on a dataset"


def default_out(config_path: str, cfg) -> str:
    """The run directory used when ``--out`` is not given."""
    return (f"runs/{Path(config_path).stem}-{cfg.train.learner}-{cfg.model.mechanism}-"
            f"{cfg.model.feedback}-s{cfg.train.seed}")


def add(sub) -> None:
    p = add_parser(
        sub, "train", SUMMARY,
        "Train per a TOML config ([model] and [train] sections; see experiments/configs/ and\n"
        "docs/training.md) into a run directory: run.json (status and resolved configuration),\n"
        "config.toml, meta.json, metrics.csv (one row an epoch), summary.json and checkpoint.npz\n"
        "(docs/runs.md). Options given here override the config's. Ctrl-C or SIGTERM writes a\n"
        "checkpoint at the next step boundary; --resume --out DIR continues with the stored\n"
        "configuration. A non-empty directory is refused unless --overwrite is given. Exit\n"
        "status: 0 done, 1 the run failed (diverged), 2 an error, 130/143 interrupted.",
        "ghostnet train --config experiments/configs/fashion_784-500-10.toml --epochs 5\n"
        "ghostnet train --resume --out runs/fashion_784-500-10-ghost-copy-symmetric-s0")
    p.add_argument("--config", help="TOML file (needed unless --resume)")
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
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out with its stored configuration "
                        "(any option or --config given must agree with it)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run (or files) in --out instead of refusing")
    p.add_argument("--threads", type=int,
                   help="override [train] threads: BLAS, Numba and torch threads of the run "
                        "(0: every core, or the bound OMP_NUM_THREADS and the like set)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _config(args):
    from ghostnet.learning.training import TrainConfig

    cfg = TrainConfig.load(args.config)
    return _apply(cfg.to_dict(), args)


_OVERRIDES = ("learner", "epochs", "train_size", "seed", "mechanism", "feedback", "mode",
              "cost", "data_source", "threads")


def run(args) -> int:
    from ghostnet.learning.training import Interrupted, stored_config, train

    if args.resume and args.overwrite:
        raise ConfigError("resume", "--resume and --overwrite exclude each other")
    if args.config is None:
        if not args.resume:
            raise ConfigError("config", "needed for a new run (--config FILE); to continue a run "
                                        "give --resume --out DIR")
        if args.out is None:
            raise ConfigError("out", "--resume without --config needs the run directory (--out)")
        cfg = stored_config(args.out)
        if any(getattr(args, k) is not None for k in _OVERRIDES):
            # options given with --resume: train() compares them with the stored settings
            cfg = _apply(cfg.to_dict(), args)
    else:
        cfg = _config(args)
    out = args.out or default_out(args.config, cfg)
    try:
        summary = train(cfg, out, resume=args.resume, progress=not args.no_progress,
                        overwrite=args.overwrite)
    except Interrupted as exc:
        return 128 + exc.signum
    except KeyboardInterrupt:
        return 130
    final = summary["final"]
    print(f"{cfg.train.learner}: test accuracy {final['test_acc']:.4f} after {final['epoch']} "
          f"epochs (run directory {out})")
    return 0


def _apply(base: dict, args):
    """The configuration ``base`` (``TrainConfig.to_dict()``) with the command line's options
    applied, validated."""
    from ghostnet.learning.training import TrainConfig

    m, t = base["model"], base["train"]
    if args.data_source is not None:
        if not args.data_source.strip():
            raise ConfigError("data-source", "is empty; omit --data-source to use the dataset's "
                                             "own sources")
        args.data_source = str(Path(args.data_source).expanduser().resolve())
    for key in ("learner", "epochs", "train_size", "seed", "data_source", "threads"):
        if getattr(args, key) is not None:
            t[key] = getattr(args, key)
    if args.seed is not None:
        m["seed"] = args.seed
    for key in ("mechanism", "feedback", "mode", "cost"):
        if getattr(args, key) is not None:
            m[key] = getattr(args, key)
    if t["learner"] == "fa" and args.feedback is None:
        m["feedback"] = "random"  # fa sends the error through the random B
    return TrainConfig.from_dict({"model": m, "train": t})
