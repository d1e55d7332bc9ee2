"""Engine speed against torch's backprop step on the same MLP, measured in the same run.

For each architecture and dtype: the time per sample of one free + nudged phase pair with the local
update and SGD step, in dynamics mode (fixed 50 steps per phase, exponential Euler) and in
equilibrium mode, and the time per sample of torch's forward + backward + SGD step of the same MLP
(logistic units, MSE cost) at the same batch. Medians over repeats; ratios ghost / torch.

    python benchmarks/bench_engine.py [--repeats 7] [--out results/bench_engine.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone

import numpy as np
import torch

from ghostnet import GhostNetwork, ModelConfig
from ghostnet.io import atomic_write_text


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _median_time(fn, repeats: int, inner: int) -> float:
    fn()  # warm-up (compilation, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def torch_step(sizes, batch, dtype, x, y, lr=0.1):
    tdt = torch.float64 if dtype == "float64" else torch.float32
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b, dtype=tdt), torch.nn.Sigmoid()]
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    xt = torch.tensor(x, dtype=tdt)
    yt = torch.tensor(y, dtype=tdt)

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(xt)
        loss = 0.5 * ((yt - out) ** 2).sum(dim=1).mean()
        loss.backward()
        opt.step()

    return step


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--out", default="results/bench_engine.json")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    for sizes in ([784, 500, 10], [784, 500, 500, 10]):
        for dtype in ("float32", "float64"):
            x = rng.uniform(0, 1, size=(args.batch, sizes[0])).astype(dtype)
            y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], size=args.batch)]
            t_torch = _median_time(torch_step(sizes, args.batch, dtype, x, y), args.repeats, 10)
            row = {"sizes": "-".join(map(str, sizes)), "dtype": dtype, "batch": args.batch,
                   "torch_ms_per_sample": 1e3 * t_torch / args.batch}
            for mode in ("dynamics", "equilibrium"):
                cfg = ModelConfig(sizes=sizes, dtype=dtype, mode=mode, beta=0.01, settle="fixed",
                                  steps=args.steps, dt=0.1, method="expeuler")
                net = GhostNetwork(cfg)
                t = _median_time(lambda: net.step(x, y, lr=0.1), args.repeats, 2 if mode == "dynamics" else 5)
                row[f"{mode}_ms_per_sample"] = 1e3 * t / args.batch
                row[f"{mode}_over_torch"] = t / t_torch
            rows.append(row)
            print(f"{row['sizes']:>16} {dtype}: torch {row['torch_ms_per_sample']:.4f} ms/sample | "
                  f"dynamics ({args.steps}+{args.steps} steps) {row['dynamics_ms_per_sample']:.4f} "
                  f"(x{row['dynamics_over_torch']:.1f}) | equilibrium "
                  f"{row['equilibrium_ms_per_sample']:.4f} (x{row['equilibrium_over_torch']:.1f})",
                  flush=True)
    result = {"machine": machine(), "repeats": args.repeats, "steps_per_phase": args.steps, "rows": rows}
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
