"""Cost of the cross-entropy output against the squared error, measured in the same run.

For 784-500-10 at batch 100 (float32 and float64, random weights, inputs uniform in [0, 1),
one-hot targets): one phase pair (free + nudged) in dynamics mode (50 + 50 exponential-Euler
steps) and in equilibrium mode (solved to tolerance), with ``cost = "mse"`` and
``cost = "cross_entropy"``, timed alternately; medians of the repeats and the ratio
cross-entropy / squared error. The machine and date are printed. ``--cpu-time`` times with the
process's CPU time instead of the wall clock (steadier on a shared machine; run it with one
thread: OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1).

    python benchmarks/bench_cross_entropy.py [--repeats 9] [--sizes 784,500,10] [--cpu-time]
"""
from __future__ import annotations

import argparse
import platform
import time
from datetime import datetime, timezone

import numpy as np

from ghostnet import GhostNetwork, ModelConfig


CLOCK = time.perf_counter


def _time(net, x, y, inner):
    t0 = CLOCK()
    for _ in range(inner):
        net.phases(x, y)
    return (CLOCK() - t0) / inner


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--sizes", default="784,500,10")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--cpu-time", action="store_true", help="time with the process's CPU time")
    args = ap.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.cpu_time else time.perf_counter
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{datetime.now(timezone.utc).isoformat(timespec='minutes')}, "
          f"{'CPU time' if args.cpu_time else 'wall clock'}")
    rng = np.random.default_rng(0)
    out = {}
    for dtype in ("float32", "float64"):
        x = rng.uniform(0, 1, (args.batch, sizes[0])).astype(dtype)
        y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], args.batch)]
        for mode in ("dynamics", "equilibrium"):
            nets = {cost: GhostNetwork(ModelConfig(sizes=sizes, cost=cost, mode=mode, dtype=dtype,
                                                   settle="fixed", steps=50))
                    for cost in ("mse", "cross_entropy")}
            inner = 5 if mode == "dynamics" else 20
            for net in nets.values():  # compile and warm up
                _time(net, x, y, 2)
            times = {cost: [] for cost in nets}
            for _ in range(args.repeats):
                for cost, net in nets.items():
                    times[cost].append(_time(net, x, y, inner))
            med = {cost: float(np.median(t)) for cost, t in times.items()}
            ratio = med["cross_entropy"] / med["mse"]
            out[(dtype, mode)] = (med, ratio)
            print(f"{'-'.join(map(str, sizes))} batch {args.batch} {dtype} {mode}: phase pair "
                  f"mse {1e3 * med['mse']:.3f} ms, cross_entropy "
                  f"{1e3 * med['cross_entropy']:.3f} ms, ratio {ratio:.3f}", flush=True)
    return out


if __name__ == "__main__":
    main()
