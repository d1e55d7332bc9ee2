"""Traces (docs/model.md §11 E5): potential u, net top-down input t, ghost inhibition H phi(v) and local
error e of a few neurons per layer across a free phase and a nudged phase, for one input.

Logistic 20-30-25-15-5, copy mechanism, symmetric feedback, tau = tau_g = 1, float64, dynamics mode
(exponential Euler, dt = 0.1), every step recorded; all potentials start at zero. The target is a
random one-hot class, with beta = 0.5 so that the error is visible next to the potentials (the
updates are compared with backprop at small beta elsewhere). Writes a tidy CSV: one row per phase,
step, layer, neuron and quantity.

    python experiments/traces.py [--steps 100] [--beta 0.5] [--quick] [--out results/traces]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ghostnet import GhostNetwork, ModelConfig
from ghostnet.model.state import Recording
from ghostnet.io import write_csv

QUANTITIES = ("u", "t", "inhibition", "e")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=100, help="steps per phase (dt = 0.1)")
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--neurons", type=int, default=3, help="neurons shown per layer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/traces")
    ap.add_argument("--quick", action="store_true", help="30 steps per phase")
    args = ap.parse_args(argv)
    steps = 30 if args.quick else args.steps
    cfg = ModelConfig(sizes=[20, 30, 25, 15, 5], beta=args.beta, settle="fixed", steps=steps,
                      mechanism="copy", feedback="symmetric", seed=args.seed)
    net = GhostNetwork(cfg)
    rng = np.random.default_rng(args.seed + 1)
    x = rng.uniform(0.0, 1.0, (1, cfg.sizes[0]))
    y = np.eye(cfg.sizes[-1])[[rng.integers(cfg.sizes[-1])]]
    rec = Recording(stride=1, what=QUANTITIES)
    pair = net.phases(x, y, record=rec)
    rows = []
    for phase, res, offset in (("free", pair.free_result, 0), ("nudged", pair.nudged_result, steps)):
        tr = res.trajectory
        for q in QUANTITIES:
            for i, arr in enumerate(tr[q]):  # arr: (records, batch, units); inhibition has no output
                for k, step in enumerate(tr["step"]):
                    for j in range(min(args.neurons, arr.shape[2])):
                        rows.append({"phase": phase, "step": int(step) + offset,
                                     "time": (int(step) + offset) * cfg.dt, "layer": i + 1,
                                     "neuron": j, "quantity": q, "value": float(arr[k, 0, j])})
    path = write_csv(Path(args.out) / "traces.csv", rows)
    free_t = max(float(np.abs(a).max()) for a in pair.free_result.trajectory["t"][:-1])
    print(f"wrote {path} ({len(rows)} rows); free phase max |t_l| over the trajectory: {free_t:.2e}; "
          f"output error at the end of the nudged phase: "
          f"{np.abs(pair.nudged_currents.e[-1]).max():.3g}")


if __name__ == "__main__":
    main()
