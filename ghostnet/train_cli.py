"""``ghostnet train`` and ``ghostnet compare`` (registered into :mod:`ghostnet.cli`)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ghostnet.config import FEEDBACKS, MECHANISMS, MODES


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a ghost network or a baseline on a dataset",
                       description="Train per a TOML config ([model] and [train] sections; see "
                                   "experiments/configs/) into a run directory.")
    p.add_argument("--config", required=True, help="TOML file")
    p.add_argument("--learner", choices=("ghost", "backprop", "fa"))
    p.add_argument("--epochs", type=int)
    p.add_argument("--train-size", type=int, help="use the first N training samples")
    p.add_argument("--seed", type=int, help="data order seed (and model seed)")
    p.add_argument("--mechanism", choices=MECHANISMS)
    p.add_argument("--feedback", choices=FEEDBACKS)
    p.add_argument("--mode", choices=MODES)
    p.add_argument("--data-source", help="IDX directory or .npz (default: built-in sources)")
    p.add_argument("--out", help="run directory (default runs/<config>-<learner>-s<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true")


def _config(args):
    from ghostnet.training import TrainConfig

    cfg = TrainConfig.load(args.config)
    m, t = dataclasses.asdict(cfg.model), dataclasses.asdict(cfg.train)
    for key in ("learner", "epochs", "train_size", "seed", "data_source"):
        v = getattr(args, key, None)
        if v is not None:
            t[key] = v
    if args.seed is not None:
        m["seed"] = args.seed
    for key in ("mechanism", "feedback", "mode"):
        v = getattr(args, key, None)
        if v is not None:
            m[key] = v
    if t["learner"] == "fa" and args.feedback is None:
        m["feedback"] = "random"  # fa sends the error through the random B
    from ghostnet.config import ModelConfig
    from ghostnet.training import TrainSettings

    return TrainConfig(ModelConfig(**m), TrainSettings(**t)).validate()


def _run_train(args) -> int:
    from ghostnet.training import train

    cfg = _config(args)
    out = args.out or (f"runs/{Path(args.config).stem}-{cfg.train.learner}-{cfg.model.mechanism}-"
                       f"{cfg.model.feedback}-s{cfg.train.seed}")
    try:
        summary = train(cfg, out, resume=args.resume, progress=not args.no_progress)
    except KeyboardInterrupt:
        return 130
    final = summary["final"]
    print(f"{cfg.train.learner}: test accuracy {final['test_acc']:.4f} after {final['epoch']} "
          f"epochs (run directory {out})")
    return 0


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="train a ghost network and backprop briefly, side by side",
                       description="Fashion-MNIST (or --config's dataset), same initial weights and "
                                   "data order; prints both test accuracies.")
    p.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "experiments"
                                           / "configs" / "fashion_784-500-10.toml"))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-size", type=int, default=10000)
    p.add_argument("--out", default="runs/compare")
    p.add_argument("--json", action="store_true")


def _run_compare(args) -> int:
    from ghostnet.training import TrainConfig, train

    base = TrainConfig.load(args.config)
    results = {}
    for learner in ("ghost", "backprop"):
        t = dataclasses.replace(base.train, learner=learner, epochs=args.epochs,
                                train_size=args.train_size)
        cfg = TrainConfig(base.model, t).validate()
        s = train(cfg, Path(args.out) / learner, progress=not args.json)
        results[learner] = s["final"]
    if args.json:
        print(json.dumps(results))
        return 0
    m = base.model
    print(f"{base.train.dataset}, {'-'.join(map(str, m.sizes))}, {args.train_size} training "
          f"samples, {args.epochs} epochs, same initial weights and data order")
    ghost = f"ghost ({m.mechanism}, {m.feedback}, {m.mode})"
    width = max(len(ghost), len("backprop"))
    print(f"{'learner':<{width}} {'test accuracy':>13}")
    print(f"{ghost:<{width}} {results['ghost']['test_acc']:>13.4f}")
    print(f"{'backprop':<{width}} {results['backprop']['test_acc']:>13.4f}")
    return 0


def register(PARSERS, COMMANDS) -> None:
    if "train" not in COMMANDS:
        PARSERS.extend([_add_train, _add_compare])
        COMMANDS.update({"train": _run_train, "compare": _run_compare})
