"""Angle to backprop and cancellation residual against depth for the three ghost mechanisms
(docs/model.md §5, §11 E2/E4). Logistic units, symmetric feedback, float64, equilibrium mode
(agrees with settled dynamics to < 1e-6), beta = 0.01, batch 16. Mechanism 'learned' starts from
random ghost weights and is pre-trained on 512 fixed random inputs (eta_g = eta_h = 0.2, at most
--pretrain samples, stopping at residual < 0.05); it is measured with the baseline of docs/model.md §4
on and off; and once more with exploration noise in pre-training (``pretrain_noise`` = sigma:
a Gaussian current of std --noise into every pyramidal neuron for --noise-samples samples, then
noise-free until residual < 0.05; ``ghostnet.network.mechanisms.pretrain``), baseline on. Writes a tidy
CSV (one row per depth, mechanism, baseline, pretrain_noise, seed, layer) and prints a summary:
mean and spread (min-max) over seeds of each layer's angle.

    python experiments/mechanisms_depth.py [--seeds 3] [--pretrain 60000] [--noise 1.0]
        [--noise-samples 150000] [--quick] [--out DIR]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ghostnet import GhostNetwork, ModelConfig, gradcheck
from ghostnet.io import write_csv
from ghostnet.network.mechanisms import pretrain_random

HIDDEN = [30, 25, 20, 15, 12]


def sizes_for(depth: int) -> list[int]:
    return [20] + HIDDEN[:depth] + [5]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--pretrain", type=int, default=60000)
    ap.add_argument("--noise", type=float, default=1.0, help="exploration noise std (0: skip)")
    ap.add_argument("--noise-samples", type=int, default=150000)
    ap.add_argument("--beta", type=float, default=0.01)
    ap.add_argument("--out", default="results/mechanisms_depth")
    ap.add_argument("--quick", action="store_true", help="depths 1 and 3, 1 seed, 5k pre-training")
    args = ap.parse_args(argv)
    depths, seeds, budget = range(1, 6), range(args.seeds), args.pretrain
    noisy = args.noise_samples
    if args.quick:
        depths, seeds, budget, noisy = (1, 3), range(1), 5000, 5000
    variants = [("copy", 0.0), ("learned", 0.0)] + ([("learned", args.noise)] if args.noise > 0 else [])
    variants.append(("replicate", 0.0))
    rows = []
    t0 = time.time()
    for depth in depths:
        for seed in seeds:
            for mech, noise in variants:
                cfg = ModelConfig(sizes=sizes_for(depth), mechanism=mech, beta=args.beta,
                                  mode="equilibrium", seed=seed)
                net = GhostNetwork(cfg)
                used = 0
                if mech == "learned" and noise == 0:
                    used = pretrain_random(net, budget, progress=False, tol=0.05)["samples"]
                elif mech == "learned":
                    used = pretrain_random(net, noisy + budget, progress=False, tol=0.05,
                                           noise=noise, noise_samples=noisy)["samples"]
                for baseline in ((True, False) if mech == "learned" and noise == 0 else (True,)):
                    c = cfg.replace(baseline=baseline)
                    out = gradcheck(c, batch=16, net=GhostNetwork(c, net.params))
                    for row in out["layers"]:
                        rows.append({"depth": depth, "mechanism": mech, "baseline": baseline,
                                     "pretrain_noise": noise, "seed": seed, "layer": row["layer"],
                                     "angle_deg": row["angle_deg"], "norm_ratio": row["norm_ratio"],
                                     "cancel_residual": row["cancel_residual"],
                                     "pretrain_samples": used})
        print(f"depth {depth} done ({time.time() - t0:.0f} s)", flush=True)
    path = write_csv(Path(args.out) / "mechanisms_depth.csv", rows)
    print(f"wrote {path} ({len(rows)} rows)\n")
    print("| depth | mechanism | baseline | pre-training noise | angle to backprop per layer, deg: "
          "mean (min-max) over seeds | residual per hidden layer (mean) |")
    print("|---|---|---|---|---|---|")
    shown = [(m, True, n) for m, n in variants]
    shown.insert(2, ("learned", False, 0.0))
    for depth in depths:
        for mech, base, noise in shown:
            sel = [r for r in rows if r["depth"] == depth and r["mechanism"] == mech
                   and r["baseline"] == base and r["pretrain_noise"] == noise]
            cells, res = [], []
            for layer in range(1, depth + 2):
                a = np.array([r["angle_deg"] for r in sel if r["layer"] == layer])
                cells.append(f"{a.mean():.2f} ({a.min():.2f}-{a.max():.2f})")
                if layer <= depth:
                    res.append(np.mean([r["cancel_residual"] for r in sel if r["layer"] == layer]))
            print(f"| {depth} | {mech} | {'on' if base else 'off'} | {noise:g} | " + "; ".join(cells) +
                  " | " + " ".join(f"{v:.3f}" for v in res) + " |")


if __name__ == "__main__":
    main()
