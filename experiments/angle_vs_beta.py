"""Angle between the local update and backprop against beta, per transfer function and depth
(docs/model.md §3 property 2, §11 E2; copy mechanism, symmetric feedback, float64, equilibrium mode,
which agrees with settled dynamics to < 1e-6). Writes a tidy CSV: one row per transfer, depth,
beta, seed, layer.

    python experiments/angle_vs_beta.py [--seeds 5] [--out results/angle_vs_beta]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ghostnet import ModelConfig, gradcheck
from ghostnet.io import write_csv

DEPTHS = {1: [20, 30, 5], 2: [20, 30, 25, 5], 3: [20, 30, 25, 15, 5], 4: [20, 30, 25, 20, 15, 5]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--betas", default="0.1,0.01,0.001,0.0001,0.00001")
    ap.add_argument("--out", default="results/angle_vs_beta")
    ap.add_argument("--quick", action="store_true", help="2 seeds, 2 betas, depths 1 and 3")
    args = ap.parse_args(argv)
    betas = [float(b) for b in args.betas.split(",")]
    depths, seeds = DEPTHS, range(args.seeds)
    if args.quick:
        betas, depths, seeds = betas[1:3], {d: DEPTHS[d] for d in (1, 3)}, range(2)
    rows = []
    for transfer in ("logistic", "tanh", "softplus", "relu"):
        for depth, sizes in depths.items():
            for beta in betas:
                for seed in seeds:
                    cfg = ModelConfig(sizes=sizes, transfer=transfer, beta=beta, mode="equilibrium",
                                      seed=seed)
                    out = gradcheck(cfg, batch=args.batch)
                    for row in out["layers"]:
                        rows.append({"transfer": transfer, "depth": depth, "beta": beta, "seed": seed,
                                     "layer": row["layer"], "angle_deg": row["angle_deg"],
                                     "norm_ratio": row["norm_ratio"]})
    path = write_csv(Path(args.out) / "angles.csv", rows)
    print(f"wrote {path} ({len(rows)} rows)")
    # summary: median over seeds of the largest angle over layers
    print(f"{'transfer':>9} {'depth':>5} " + " ".join(f"{'b=' + format(b, 'g'):>9}" for b in betas))
    for transfer in ("logistic", "tanh", "softplus", "relu"):
        for depth in depths:
            cells = []
            for beta in betas:
                per_seed = [max(r["angle_deg"] for r in rows if r["transfer"] == transfer and
                                r["depth"] == depth and r["beta"] == beta and r["seed"] == s)
                            for s in seeds]
                per_seed.sort()
                cells.append(f"{per_seed[len(per_seed) // 2]:>9.4f}")
            print(f"{transfer:>9} {depth:>5} " + " ".join(cells))


if __name__ == "__main__":
    main()
