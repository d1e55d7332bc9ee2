"""``ghostnet gradcheck``: the network's local update against backprop or feedback alignment."""
from __future__ import annotations

import argparse
import math

from ghostnet.cli._common import add_parser, dumps, sizes
from ghostnet.model.config import (
    COSTS, FEEDBACKS, MECHANISMS, METHODS, MODES, SETTLE_RULES, TRANSFERS, ConfigError, ModelConfig,
)

SUMMARY = "compare the network's local update with backprop (or feedback alignment)"


def add(sub) -> None:
    p = add_parser(
        sub, "gradcheck", SUMMARY,
        "One free + nudged phase pair on a random batch (inputs uniform in [0, 1), one-hot\n"
        "targets); per layer the angle and norm ratio between the network's local update and the\n"
        "reference: backprop by torch.autograd, or feedback alignment for random feedback\n"
        "(docs/model.md, the error-propagation property).",
        "ghostnet gradcheck --sizes 20,30,25,15,5 --beta 1e-3 --mode dynamics --batch 16\n"
        "ghostnet gradcheck --config lenet.toml --batch 8")
    p.add_argument("--config", metavar="MODEL.toml",
                   help="take the model from this TOML file's [model] section (any network, e.g. "
                        "a convolutional one on the torch engine); the model options below are "
                        "then ignored, --batch, --pretrain and --json still apply")
    p.add_argument("--sizes", type=sizes, default="20,30,25,15,5", help="layer sizes, input first")
    p.add_argument("--beta", type=float, default=1e-3, help="nudging strength")
    p.add_argument("--feedback", choices=FEEDBACKS, default="symmetric", help="feedback weights B")
    p.add_argument("--mechanism", choices=MECHANISMS, default="copy", help="ghost mechanism")
    p.add_argument("--mode", choices=MODES, default="dynamics", help="integrate the ODEs or solve for the fixed points")
    p.add_argument("--transfer", choices=TRANSFERS, default="logistic", help="transfer function phi")
    p.add_argument("--cost", choices=COSTS, default="mse",
                   help="cost the update approximates: squared error or softmax cross-entropy")
    p.add_argument("--batch", type=int, default=16, help="samples in the random batch")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the batch")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="float type")
    p.add_argument("--method", choices=METHODS, default="expeuler", help="integration method (dynamics)")
    p.add_argument("--dt", type=float, default=0.1, help="integration step, in units of tau")
    p.add_argument("--settle", choices=SETTLE_RULES, default="tol",
                   help="'tol': settle until max|du/dt| < --tol; 'fixed': --steps steps")
    p.add_argument("--tol", type=float, default=1e-10, help="settling tolerance on max|du/dt|")
    p.add_argument("--steps", type=int, default=50, help="steps per phase with --settle fixed")
    p.add_argument("--max-steps", type=int, default=20000, help="cap on the steps of a phase with --settle tol")
    p.add_argument("--pretrain", type=int, default=0,
                   help="mechanism 'learned': samples of ghost pre-training without targets")
    p.add_argument("--pretrain-noise", type=float, default=0.0, metavar="SIGMA",
                   help="exploration noise (std of a Gaussian current into every pyramidal "
                        "neuron) for the first half of --pretrain; 0: none")
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                   help="learn from e - e(free), the baseline of docs/model.md")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    if args.batch < 1:
        raise ConfigError("batch", f"must be >= 1, got {args.batch}")
    if args.config is not None:
        cfg = ModelConfig.load(args.config)
    else:
        cfg = _from_flags(args)
    net = None
    pretrain_info = None
    if not (args.pretrain_noise >= 0 and math.isfinite(args.pretrain_noise)):
        raise ConfigError("pretrain-noise", f"must be a finite standard deviation >= 0, got "
                                            f"{args.pretrain_noise}")
    return _run(args, cfg, net, pretrain_info)


def _from_flags(args) -> ModelConfig:
    return ModelConfig(
        sizes=args.sizes, beta=args.beta, feedback=args.feedback, mechanism=args.mechanism,
        mode=args.mode, transfer=args.transfer, cost=args.cost, seed=args.seed, dtype=args.dtype,
        method=args.method, dt=args.dt, settle=args.settle, tol=args.tol, steps=args.steps,
        max_steps=args.max_steps, baseline=args.baseline,
    )


def _run(args, cfg, net, pretrain_info) -> int:
    from ghostnet.checks.gradcheck import gradcheck

    if args.pretrain_noise and not args.pretrain:
        raise ConfigError("pretrain-noise", "needs --pretrain N (samples of ghost pre-training)")
    if args.pretrain:
        if cfg.mechanism != "learned":
            raise ConfigError("pretrain", "ghost pre-training applies to mechanism 'learned' only")
        from ghostnet.network import GhostNetwork
        from ghostnet.network.mechanisms import pretrain_random

        net = GhostNetwork(cfg)
        pretrain_info = pretrain_random(net, args.pretrain, progress=not args.json,
                                        noise=args.pretrain_noise)
    out = gradcheck(cfg, batch=args.batch, net=net)
    if pretrain_info is not None:
        out["pretrain"] = pretrain_info
    if args.json:
        print(dumps(out))
        return 0
    s = out["settings"]
    net_desc = (f"layers {_layers_text(s)} on input {s['input']}, engine {s['engine']}"
                if s.get("layers") else f"sizes {s['sizes']}")
    print(f"ghostnet gradcheck: {net_desc}, {s['transfer']}, mechanism {s['mechanism']}, "
          f"feedback {s['feedback']}, mode {s['mode']}, cost {s['cost']}, beta {s['beta']:g}, "
          f"batch {s['batch']}, {s['dtype']}")
    ph = out["phases"]
    print(f"phases: free {ph['free']['steps']} steps (settled: {ph['free']['settled']}), "
          f"nudged {ph['nudged']['steps']} steps (settled: {ph['nudged']['settled']})")
    ref = "FA" if s["reference"] == "feedback_alignment" else "backprop"
    head = f"{'layer':>5}  {'angle to ' + ref + ' (deg)':>22}  {'norm ratio':>10}"
    if ref == "FA":
        head += f"  {'angle to backprop (deg)':>23}"
    head += f"  {'cancel residual':>15}"
    print(head)
    for row in out["layers"]:
        line = f"{row['layer']:>5}  {row['angle_deg']:>22.5f}  {row['norm_ratio']:>10.5f}"
        if ref == "FA":
            line += f"  {row['angle_backprop_deg']:>23.5f}"
        res = row.get("cancel_residual")
        line += f"  {res:>15.3e}" if res is not None else f"  {'(output)':>15}"
        print(line)
    return 0


def _layers_text(s) -> str:
    parts = []
    for spec in s["layers"]:
        if spec["type"] == "dense":
            parts.append(f"dense {spec['units']}")
        else:
            parts.append(f"conv {spec['channels']}x{spec['kernel']}x{spec['kernel']}"
                         + (f" pool {spec['pool']}" if spec["pool"] > 1 else ""))
    return "[" + ", ".join(parts) + "]"
