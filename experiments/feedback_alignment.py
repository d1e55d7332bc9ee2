"""Feedback alignment (docs/model.md §6, §11): the angle between B_l and W_{l+1}^T and the angle of the
update to backprop during training from a random B, with fixed random feedback (the forward
weights turn towards B) and with plastic feedback (Kolen-Pollack: B follows W^T; weight decay 0,
1e-3 and 1e-2). Logistic 20-30-25-5, copy mechanism, equilibrium mode, beta = 0.01, SGD lr 0.5,
batch 32, on 512 random inputs labelled by a random linear teacher (a learnable task: with random
labels nothing aligns); the same initial weights and data order in every condition. Writes a tidy
CSV (one row per condition, step, layer).

    python experiments/feedback_alignment.py [--steps 10000] [--quick] [--out results/feedback_alignment]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ghostnet import GhostNetwork, ModelConfig, angle_deg, gradcheck
from ghostnet.io import write_csv


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--out", default="results/feedback_alignment")
    ap.add_argument("--quick", action="store_true", help="200 steps")
    args = ap.parse_args(argv)
    steps, every = (200, 50) if args.quick else (args.steps, args.every)
    rows = []
    for fb, wd in (("random", 0.0), ("plastic", 0.0), ("plastic", 1e-3), ("plastic", 1e-2)):
        cond = "random" if fb == "random" else f"plastic, weight decay {wd:g}"
        cfg = ModelConfig(sizes=[20, 30, 25, 5], feedback=fb, mode="equilibrium", beta=0.01,
                          weight_decay=wd, seed=0)
        net = GhostNetwork(cfg)
        rng = np.random.default_rng(1)
        X = rng.uniform(0, 1, (512, 20))
        teacher = rng.normal(0, 1, (20, 5))
        Y = np.eye(5)[np.argmax((X - 0.5) @ teacher, axis=1)]  # a learnable task
        for step in range(steps + 1):
            if step % every == 0:
                g = gradcheck(cfg, batch=32, net=net)
                for i in range(len(net.params.B)):
                    rows.append({"condition": cond, "feedback": fb, "weight_decay": wd,
                                 "step": step, "layer": i + 1,
                                 "angle_B_WT_deg": angle_deg(net.params.B[i], net.params.W[i + 1].T),
                                 "angle_update_backprop_deg": g["layers"][i]["angle_backprop_deg"]})
            idx = rng.integers(0, 512, 32)
            net.step(X[idx], Y[idx], 0.5)
        last = [r for r in rows if r["condition"] == cond and r["step"] == steps]
        print(f"{cond}: after {steps} steps angle(B, W^T) = "
              + ", ".join(f"{r['angle_B_WT_deg']:.1f}" for r in last) + " deg; update vs backprop = "
              + ", ".join(f"{r['angle_update_backprop_deg']:.1f}" for r in last) + " deg")
    print(f"wrote {write_csv(Path(args.out) / 'feedback_alignment.csv', rows)}")


if __name__ == "__main__":
    main()
