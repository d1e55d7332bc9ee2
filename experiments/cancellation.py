"""Cancellation (docs/model.md §11 E1, E4).

1. Along the free phase: the largest |t_l| per hidden layer against time, for copy ghosts with
   tau_g = tau (zero at every time, §3 property 1), with tau_g = 0.5 and 2 tau (a transient that
   dies out at the fixed point), and for learned ghosts before and after pre-training. Logistic
   20-30-25-15-5, symmetric feedback, float64, exponential Euler, dt = 0.1, 16 random inputs.
2. During pre-training of learned ghosts (from random ghost weights, on 512 fixed random inputs,
   batch 32, eta_g = eta_h = 0.2): the relative residual |t_l| / |B_l r_{l+1}| per layer against
   samples seen, and at --probes log-spaced points the angle of the update to backprop per layer
   (beta = 0.01, baseline on, equilibrium mode, batch 16); twice from the same start: without
   noise (docs/model.md §5 as written), and with exploration noise (--noise, std of a Gaussian current
   into every pyramidal neuron) for the first half of the samples.

Writes trajectory.csv (condition, step, time, layer, max_abs_t, residual) and pretraining.csv
(noise, samples, layer, residual, angle_deg; angle empty between probes).

    python experiments/cancellation.py [--pretrain 60000] [--probes 14] [--noise 1.0] [--quick] [--out DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ghostnet import GhostNetwork, ModelConfig, gradcheck
from ghostnet.model.state import Recording
from ghostnet.io import write_csv
from ghostnet.network.mechanisms import pretrain

SIZES = [20, 30, 25, 15, 5]


def trajectory_rows(condition: str, net: GhostNetwork, x: np.ndarray, steps: int) -> list[dict]:
    _, res = net.free_phase(x, record=Recording(stride=1, what=("t", "r")), n_steps=steps)
    tr, rows = res.trajectory, []
    for i in range(len(tr["t"]) - 1):  # hidden layers
        t, r_above = tr["t"][i], tr["r"][i + 1]
        fb = np.einsum("kbj,ij->kbi", r_above, net.params.B[i])  # B_l r_{l+1}, every record
        for k, step in enumerate(tr["step"]):
            rows.append({"condition": condition, "step": int(step), "time": int(step) * net.config.dt,
                         "layer": i + 1, "max_abs_t": float(np.abs(t[k]).max()),
                         "residual": float(np.linalg.norm(t[k]) / max(np.linalg.norm(fb[k]), 1e-300))})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pretrain", type=int, default=60000, help="pre-training samples")
    ap.add_argument("--probes", type=int, default=14, help="angle probes, log-spaced in samples")
    ap.add_argument("--steps", type=int, default=100, help="free-phase steps recorded")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", type=float, default=1.0,
                    help="exploration noise of the second pre-training run (0: none)")
    ap.add_argument("--out", default="results/cancellation")
    ap.add_argument("--quick", action="store_true", help="2,000 samples, 40 steps")
    args = ap.parse_args(argv)
    budget, n_probes, steps = (2000, 4, 40) if args.quick else (args.pretrain, args.probes, args.steps)
    # probe after 0 samples, then at log-spaced multiples of the batch (32) up to the budget
    probes = sorted({int(round(n / 32)) * 32 for n in np.geomspace(64, budget, max(n_probes - 1, 1))})
    rng = np.random.default_rng(args.seed + 1)
    x = rng.uniform(0.0, 1.0, (16, SIZES[0]))
    base = ModelConfig(sizes=SIZES, beta=0.01, seed=args.seed)

    traj = []
    for tau_g in (1.0, 0.5, 2.0):
        traj += trajectory_rows(f"copy, tau_g = {tau_g:g} tau", GhostNetwork(base.replace(tau_g=tau_g)), x, steps)

    learned = GhostNetwork(base.replace(mechanism="learned", mode="equilibrium"))
    dyn = base.replace(mechanism="learned")
    traj += trajectory_rows("learned, before pre-training", GhostNetwork(dyn, learned.params), x, steps)
    inputs = np.random.default_rng(args.seed + 7919).uniform(0.0, 1.0, (512, SIZES[0]))
    start = learned.params.copy()
    pre = []
    for noise in (0.0, args.noise):
        # the same random ghosts, inputs and order; with noise (std `noise` into every pyramidal
        # neuron, ghostnet.network.mechanisms.pretrain) for the first half of the budget
        net = GhostNetwork(learned.config, start.copy())
        prng = np.random.default_rng(args.seed + 2)
        seen = 0
        while True:
            g = gradcheck(net.config, batch=16, net=net)
            for row in g["layers"]:
                pre.append({"noise": noise, "samples": seen, "layer": row["layer"],
                            "residual": row["cancel_residual"], "angle_deg": row["angle_deg"]})
            if seen >= budget:
                break
            chunk = min(next(p for p in probes + [budget] if p > seen), budget) - seen
            noisy = max(0, min(chunk, budget // 2 - seen)) if noise > 0 else 0
            out = pretrain(net, inputs, batch=32, tol=0.0, budget=chunk, rng=prng, progress=False,
                           noise=noise if noisy else 0.0, noise_samples=noisy)
            for n, res in zip(out["history"]["samples"], out["history"]["residual"]):
                for i, r in enumerate(res):
                    pre.append({"noise": noise, "samples": seen + n, "layer": i + 1, "residual": r,
                                "angle_deg": None})
            seen += out["samples"]
        if noise == 0:
            learned = net
        if args.noise <= 0:
            break
    traj += trajectory_rows("learned, after pre-training", GhostNetwork(dyn, learned.params), x, steps)

    out_dir = Path(args.out)
    write_csv(out_dir / "trajectory.csv", traj)
    write_csv(out_dir / "pretraining.csv", pre)
    for cond in dict.fromkeys(r["condition"] for r in traj):
        m = max(r["max_abs_t"] for r in traj if r["condition"] == cond)
        end = [r["residual"] for r in traj if r["condition"] == cond and r["step"] == steps]
        print(f"{cond}: max |t_l| along the free phase {m:.2e}; residual at the end "
              + " ".join(f"{v:.3g}" for v in end))
    for noise in dict.fromkeys(r["noise"] for r in pre):
        last = [r for r in pre if r["noise"] == noise and r["samples"] == budget
                and r["angle_deg"] is not None]
        print(f"after {budget} pre-training samples (noise {noise:g}): residual " + " ".join(
            f"{r['residual']:.3f}" for r in last if r["residual"] is not None)
            + "; angle to backprop " + " ".join(f"{r['angle_deg']:.2f}" for r in last) + " deg")
    print(f"wrote {out_dir}/trajectory.csv, pretraining.csv")


if __name__ == "__main__":
    main()
