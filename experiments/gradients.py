"""Gradients (docs/model.md §11 E2): per-layer angle and norm ratio between the network's update and
backprop's gradient (torch.autograd), and for random feedback also feedback alignment's update,
against beta, against settling time and against depth, for each mechanism and feedback.

Variants: copy/symmetric, copy/random, replicate/symmetric, learned/symmetric (ghosts pre-trained
from random weights on 512 fixed random inputs for --pretrain samples, baseline on). Logistic
units, float64, batch 16.
- beta sweep: 20-30-25-15-5, equilibrium mode (agrees with settled dynamics to < 1e-6).
- settling sweep: the same network in dynamics mode (exponential Euler, dt = 0.1, tau = 1), a fixed
  number of steps per phase (both phases), beta = 0.01.
- depth sweep: 1 to 5 hidden layers (20-30-25-20-15-12-5 cut), equilibrium, beta = 0.01.
Writes one tidy CSV: sweep, variant, mechanism, feedback, depth, beta, steps, settle_time, seed,
layer, angle_deg / norm_ratio (to the variant's reference), angle_backprop_deg /
norm_ratio_backprop.

    python experiments/gradients.py [--seeds 3] [--pretrain 60000] [--quick] [--out DIR]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ghostnet import GhostNetwork, ModelConfig, gradcheck
from ghostnet.io import write_csv
from ghostnet.network.mechanisms import pretrain_random

VARIANTS = {"copy/symmetric": ("copy", "symmetric"), "copy/random": ("copy", "random"),
            "replicate/symmetric": ("replicate", "symmetric"),
            "learned/symmetric": ("learned", "symmetric")}
HIDDEN = [30, 25, 20, 15, 12]
DEPTH3 = [20, 30, 25, 15, 5]


def measure(cfg: ModelConfig, pretrain: int, cache: dict) -> list[dict]:
    """gradcheck rows for ``cfg``; learned ghosts are pre-trained once per (sizes, seed)."""
    params = None
    if cfg.mechanism == "learned":
        key = (tuple(cfg.sizes), cfg.seed)
        if key not in cache:
            net = GhostNetwork(cfg.replace(mode="equilibrium"))
            pretrain_random(net, pretrain, progress=False, tol=0.0)
            cache[key] = net.params
        params = cache[key]
    out = gradcheck(cfg, batch=16, net=GhostNetwork(cfg, params))
    return out["layers"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--pretrain", type=int, default=60000)
    ap.add_argument("--out", default="results/gradients")
    ap.add_argument("--quick", action="store_true", help="1 seed, 2 betas, 2 settling times, depths 1-2")
    args = ap.parse_args(argv)
    seeds, betas = range(args.seeds), [0.1, 0.03, 0.01, 0.003, 0.001, 3e-4, 1e-4]
    steps_list, depths, budget = [5, 10, 20, 40, 80, 160, 320], range(1, 6), args.pretrain
    if args.quick:
        seeds, betas, steps_list, depths, budget = range(1), [0.1, 0.01], [10, 40], (1, 2), 2000
    jobs = []  # (sweep, cfg)
    for vname, (mech, fb) in VARIANTS.items():
        for seed in seeds:
            base = ModelConfig(sizes=DEPTH3, mechanism=mech, feedback=fb, mode="equilibrium",
                               beta=0.01, seed=seed)
            jobs += [("beta", vname, base.replace(beta=b)) for b in betas]
            jobs += [("settling", vname, base.replace(mode="dynamics", settle="fixed", steps=n))
                     for n in steps_list]
            jobs += [("depth", vname, base.replace(sizes=[20] + HIDDEN[:d] + [5])) for d in depths]
    rows, cache, t0 = [], {}, time.time()
    for sweep, vname, cfg in jobs:
        for r in measure(cfg, budget, cache):
            rows.append({"sweep": sweep, "variant": vname, "mechanism": cfg.mechanism,
                         "feedback": cfg.feedback, "depth": len(cfg.sizes) - 2, "beta": cfg.beta,
                         "steps": cfg.steps if cfg.mode == "dynamics" else None,
                         "settle_time": cfg.steps * cfg.dt if cfg.mode == "dynamics" else None,
                         "seed": cfg.seed, "layer": r["layer"], "angle_deg": r["angle_deg"],
                         "norm_ratio": r["norm_ratio"], "angle_backprop_deg": r["angle_backprop_deg"],
                         "norm_ratio_backprop": r["norm_ratio_backprop"]})
    path = write_csv(Path(args.out) / "gradients.csv", rows)
    print(f"wrote {path} ({len(rows)} rows, {time.time() - t0:.0f} s)")
    for sweep in ("beta", "settling", "depth"):
        for vname in VARIANTS:
            sel = [r for r in rows if r["sweep"] == sweep and r["variant"] == vname]
            key = {"beta": "beta", "settling": "steps", "depth": "depth"}[sweep]
            worst = {}
            for r in sel:
                worst[r[key]] = max(worst.get(r[key], 0.0), r["angle_deg"])
            print(f"{sweep:8s} {vname:20s} worst-layer angle (deg) by {key}: "
                  + ", ".join(f"{k:g}: {v:.3g}" for k, v in worst.items()))


if __name__ == "__main__":
    main()
