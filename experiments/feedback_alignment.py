"""Plastic feedback (Kolen-Pollack, MODEL.md §6): the angle between B_l and W_{l+1}^T and the angle
of the update to backprop during training, from a random B. Logistic 20-30-25-5, equilibrium mode,
beta = 0.01, SGD lr 0.5, batch 32, on 512 random inputs with random one-hot labels. Writes a tidy
CSV (one row per step, weight decay, layer).

    python experiments/kolen_pollack.py [--steps 2000] [--quick] [--out results/kolen_pollack]
"""
from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np

from ghostnet import GhostNetwork, ModelConfig, angle_deg, gradcheck
from ghostnet.io import atomic_write_text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--out", default="results/kolen_pollack")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    steps = 200 if args.quick else args.steps
    rows = []
    for wd in (0.0, 1e-3, 1e-2):
        cfg = ModelConfig(sizes=[20, 30, 25, 5], feedback="plastic", mode="equilibrium", beta=0.01,
                          weight_decay=wd, seed=0)
        net = GhostNetwork(cfg)
        rng = np.random.default_rng(1)
        X = rng.uniform(0, 1, (512, 20))
        Y = np.eye(5)[rng.integers(0, 5, 512)]
        for step in range(steps + 1):
            if step % args.every == 0:
                g = gradcheck(cfg, batch=32, net=net)
                for i in range(len(net.params.B)):
                    rows.append({"step": step, "weight_decay": wd, "layer": i + 1,
                                 "angle_B_WT_deg": angle_deg(net.params.B[i], net.params.W[i + 1].T),
                                 "angle_update_backprop_deg": g["layers"][i]["angle_backprop_deg"]})
            idx = rng.integers(0, 512, 32)
            net.step(X[idx], Y[idx], 0.5)
        last = [r for r in rows if r["weight_decay"] == wd and r["step"] == steps]
        print(f"weight decay {wd:g}: after {steps} steps angle(B, W^T) = "
              + ", ".join(f"{r['angle_B_WT_deg']:.1f}" for r in last) + " deg; update vs backprop = "
              + ", ".join(f"{r['angle_update_backprop_deg']:.1f}" for r in last) + " deg")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(Path(args.out) / "kolen_pollack.csv", buf.getvalue())
    print(f"wrote {Path(args.out) / 'kolen_pollack.csv'}")


if __name__ == "__main__":
    main()
