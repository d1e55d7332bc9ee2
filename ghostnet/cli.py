"""The ``ghostnet`` command line. Each subcommand lives in a ``_cmd_*`` pair (add its parser in
``build_parser``, its runner in ``COMMANDS``)."""
from __future__ import annotations

import argparse
import json
import math
import sys

from ghostnet.config import (
    FEEDBACKS, MECHANISMS, METHODS, MODES, SETTLE_RULES, TRANSFERS, ConfigError, ModelConfig,
)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes must be comma-separated integers, got {text!r}")
    return sizes


# ---- gradcheck ----------------------------------------------------------------------------------
def _add_gradcheck(sub) -> None:
    p = sub.add_parser("gradcheck", help="compare the network's local update with backprop / FA",
                       description="One free + nudged phase pair on a random batch; per-layer angle "
                                   "and norm ratio between the local update and the reference "
                                   "(torch.autograd backprop; feedback alignment for random "
                                   "feedback). MODEL.md §3 property 2.")
    p.add_argument("--sizes", type=_sizes, default=[20, 30, 25, 15, 5], help="layer sizes, e.g. 20,30,25,15,5")
    p.add_argument("--beta", type=float, default=1e-3, help="nudging strength (default 1e-3)")
    p.add_argument("--feedback", choices=FEEDBACKS, default="symmetric")
    p.add_argument("--mechanism", choices=MECHANISMS, default="copy")
    p.add_argument("--mode", choices=MODES, default="dynamics")
    p.add_argument("--transfer", choices=TRANSFERS, default="logistic")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--method", choices=METHODS, default="expeuler")
    p.add_argument("--dt", type=float, default=0.1)
    p.add_argument("--settle", choices=SETTLE_RULES, default="tol",
                   help="'tol' (default here: settle until max|du/dt| < --tol) or 'fixed' (--steps)")
    p.add_argument("--tol", type=float, default=1e-10)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--max-steps", type=int, default=20000)
    p.add_argument("--pretrain", type=int, default=0,
                   help="mechanism 'learned': samples of ghost pre-training without targets")
    p.add_argument("--pretrain-noise", type=float, default=0.0, metavar="SIGMA",
                   help="exploration noise (std of a Gaussian current into every pyramidal "
                        "neuron) for the first half of --pretrain; 0 (default): none")
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                   help="learn from e - e(free) (MODEL.md §4; default on)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _run_gradcheck(args) -> int:
    from ghostnet.gradcheck import gradcheck

    if args.batch < 1:
        raise ConfigError("batch", f"must be >= 1, got {args.batch}")
    cfg = ModelConfig(
        sizes=args.sizes, beta=args.beta, feedback=args.feedback, mechanism=args.mechanism,
        mode=args.mode, transfer=args.transfer, seed=args.seed, dtype=args.dtype,
        method=args.method, dt=args.dt, settle=args.settle, tol=args.tol, steps=args.steps,
        max_steps=args.max_steps, baseline=args.baseline,
    )
    net = None
    pretrain_info = None
    if not (args.pretrain_noise >= 0 and math.isfinite(args.pretrain_noise)):
        raise ConfigError("pretrain-noise", f"must be a finite standard deviation >= 0, got "
                                            f"{args.pretrain_noise}")
    if args.pretrain_noise and not args.pretrain:
        raise ConfigError("pretrain-noise", "needs --pretrain N (samples of ghost pre-training)")
    if args.pretrain:
        if cfg.mechanism != "learned":
            raise ConfigError("pretrain", "ghost pre-training applies to mechanism 'learned' only")
        from ghostnet.network import GhostNetwork

        try:
            from ghostnet.mechanisms import pretrain_random
        except ImportError:  # pragma: no cover - until the learned mechanism lands
            raise ConfigError("pretrain", "ghost pre-training is not available in this version")
        net = GhostNetwork(cfg)
        pretrain_info = pretrain_random(net, args.pretrain, progress=not args.json,
                                        noise=args.pretrain_noise)
    out = gradcheck(cfg, batch=args.batch, net=net)
    if pretrain_info is not None:
        out["pretrain"] = pretrain_info
    if args.json:
        print(json.dumps(out, default=_json_default))
        return 0
    s = out["settings"]
    print(f"ghostnet gradcheck: sizes {s['sizes']}, {s['transfer']}, mechanism {s['mechanism']}, "
          f"feedback {s['feedback']}, mode {s['mode']}, beta {s['beta']:g}, batch {s['batch']}, "
          f"{s['dtype']}")
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


def _json_default(o):
    import numpy as np

    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    raise TypeError(f"not JSON serialisable: {type(o)}")


# ---- registry -------------------------------------------------------------------------------
PARSERS = [_add_gradcheck]
COMMANDS = {"gradcheck": _run_gradcheck}


def _register_optional() -> None:
    """Subcommands from modules added by later work register themselves through ``register``."""
    for mod in ("ghostnet.train_cli", "ghostnet.brian_cli", "ghostnet.figures_cli"):
        try:
            m = __import__(mod, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name == mod:  # not part of this version; a broken import still fails loudly
                continue
            raise
        m.register(PARSERS, COMMANDS)


def build_parser() -> argparse.ArgumentParser:
    from ghostnet import __version__

    parser = argparse.ArgumentParser(prog="ghostnet", description="Ghost-unit networks: simulate, "
                                     "learn locally, compare with backprop (see MODEL.md).")
    parser.add_argument("--version", action="version", version=f"ghostnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in PARSERS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    _register_optional()
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"ghostnet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"ghostnet {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
