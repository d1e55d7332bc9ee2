"""``ghostnet crosscheck``: the same random network in Brian2 and in the Numba engine. Brian2 is
imported only when the command runs, so other subcommands do not pay for it."""
from __future__ import annotations

from ghostnet.cli._common import add_parser, dumps, sizes
from ghostnet.model.config import FEEDBACKS, TRANSFERS, ConfigError, ModelConfig

SUMMARY = "run one random network in Brian2 and in the Numba engine and compare them"

TOLERANCE = 1e-6
"""Largest relative difference accepted between the engines (float64, same Euler step)."""


def add(sub) -> None:
    p = add_parser(
        sub, "crosscheck", SUMMARY,
        "Builds one random network (mechanism copy), runs a free and a nudged phase in Brian2\n"
        "and in ghostnet's Numba engine with the same forward Euler step (float64), and prints\n"
        "the largest relative differences of u and v at the end of each phase and of the\n"
        "end-of-phase weight updates, with each engine's wall time. Exit status 1 if a\n"
        "difference exceeds --tol.",
        "ghostnet crosscheck --sizes 10,8,6,4 --batch 4 --continuous 3")
    p.add_argument("--sizes", type=sizes, default="10,8,6,4", help="layer sizes, input first")
    p.add_argument("--beta", type=float, default=0.1, help="nudging strength")
    p.add_argument("--feedback", choices=[f for f in FEEDBACKS if f != "plastic"], default="symmetric", help="feedback weights B")
    p.add_argument("--transfer", choices=TRANSFERS, default="logistic", help="transfer function phi")
    p.add_argument("--target", choices=("numpy", "cython"), default="numpy",
                   help="Brian2 code generation target")
    p.add_argument("--dt", type=float, default=0.1, help="Euler step, in units of tau")
    p.add_argument("--steps", type=int, default=50, help="steps per phase")
    p.add_argument("--batch", type=int, default=4, help="samples, run as independent copies")
    p.add_argument("--continuous", type=int, default=0, metavar="K",
                   help="also compare the weights after K samples of continuous plasticity")
    p.add_argument("--eta", type=float, default=0.5, help="continuous plasticity: learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed of the network and the batch")
    p.add_argument("--tol", type=float, default=TOLERANCE,
                   help="largest accepted relative difference")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    cfg = ModelConfig(sizes=args.sizes, beta=args.beta, feedback=args.feedback,
                      transfer=args.transfer, method="euler", dt=args.dt, settle="fixed",
                      steps=args.steps, seed=args.seed, dtype="float64", mechanism="copy")
    if args.batch < 1:
        raise ConfigError("batch", f"must be >= 1, got {args.batch}")
    if args.continuous < 0:
        raise ConfigError("continuous", f"must be >= 0, got {args.continuous}")
    if not args.tol > 0:
        raise ConfigError("tol", f"must be > 0, got {args.tol}")
    from ghostnet.checks.crosscheck import crosscheck  # imports brian2: only when the command runs

    out = crosscheck(cfg, batch=args.batch, target=args.target, continuous=args.continuous,
                     eta=args.eta)
    worst = max(out["max_rel_diff"], out.get("continuous", {}).get("max", 0.0))
    out["tol"] = args.tol
    out["agree"] = bool(worst <= args.tol)
    if args.json:
        print(dumps(out))
        return 0 if out["agree"] else 1
    s = out["settings"]
    print(f"ghostnet crosscheck: sizes {s['sizes']}, {s['transfer']}, feedback {s['feedback']}, "
          f"beta {s['beta']:g}, dt {s['dt']:g}, {s['steps']} Euler steps per phase, batch "
          f"{s['batch']}, Brian2 target {s['target']}")
    print("largest relative difference, Brian2 vs Numba (max|a - b| / max|b|)")
    layers = range(1, len(s["sizes"]))
    print(f"{'quantity':<16}" + "".join(f"{'layer ' + str(i):>12}" for i in layers))
    rows = [("u free", out["free"]["u"]), ("v free", out["free"]["v"]),
            ("u nudged", out["nudged"]["u"]), ("v nudged", out["nudged"]["v"]),
            ("dW end-of-phase", out["update"]["dW"]), ("db end-of-phase", out["update"]["db"])]
    if "continuous" in out:
        c = out["continuous"]
        rows += [(f"W cont. ({c['samples']})", c["W"]), (f"dW cont. ({c['samples']})", c["dW"])]
    for name, vals in rows:
        print(f"{name:<16}" + "".join(f"{v:>12.2e}" for v in vals))
    t = out["time"]
    print(f"wall time: Numba {t['numba_s'] * 1e3:.1f} ms, Brian2 {t['brian_run_s'] * 1e3:.1f} ms "
          f"(+ {t['brian_build_s'] * 1e3:.0f} ms to build; one run, code generation included: "
          f"see benchmarks/bench_brian.py for steady-state timings)")
    if "continuous" in out:
        print(f"continuous plasticity: Numba {t['numba_continuous_s'] * 1e3:.1f} ms, Brian2 "
              f"{t['brian_continuous_s'] * 1e3:.1f} ms")
    verdict = "agree" if out["agree"] else "DISAGREE"
    print(f"largest difference {worst:.2e}: engines {verdict} (tolerance {args.tol:g})")
    return 0 if out["agree"] else 1
