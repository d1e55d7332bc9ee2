"""The same simulation in Brian2 (numpy and cython targets) and in ghostnet's Numba engine.

One free + nudged phase pair (forward Euler, the same dt and steps in both engines, float64,
mechanism copy) on a batch, with the end-of-phase update of docs/model.md §4. Brian2 runs the batch as
independent copies of the network inside one set of groups and synapses (see ghostnet/brian.py);
its build time (and the cython compilation, cached in ~/.cython after the first run) is reported
apart from the run time. Medians over repeats; ratios Brian2 / Numba. Each configuration is first
checked to agree (largest relative difference of u, v and dW, printed).

    python benchmarks/bench_brian.py [--sizes 784,100,10] [--batch 16] [--steps 50] [--repeats 5]
                                     [--targets numpy,cython] [--out results/bench_brian.json]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone

import numpy as np

from ghostnet import GhostNetwork, ModelConfig
from ghostnet.engines.brian import BrianGhostNetwork, b2, cython_available, rel_diff
from ghostnet.io import write_json


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "brian2": b2.__version__,
        "numba_threads": int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1)),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(sizes, batch, steps, dt, repeats, targets, seed=0) -> dict:
    cfg = ModelConfig(sizes=sizes, method="euler", dt=dt, steps=steps, beta=0.1, seed=seed,
                      settle="fixed", mechanism="copy", feedback="symmetric")
    net = GhostNetwork(cfg)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(batch, sizes[0]))
    y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], size=batch)]

    def numba_pair():
        pair = net.phases(x, y)
        return pair, net.update(pair)

    ref_pair, ref_upd = numba_pair()  # warm-up: compilation
    row = {"sizes": list(sizes), "batch": batch, "steps_per_phase": steps, "dt": dt,
           "numba_s": _median(numba_pair, repeats), "brian": {}}
    for target in targets:
        t0 = time.perf_counter()
        bn = BrianGhostNetwork(net, batch=batch, target=target)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = bn.phases(x, y)  # first run: code generation (and compilation for cython)
        first = time.perf_counter() - t0
        diff = max([rel_diff(a, b) for a, b in zip(out.nudged.u, ref_pair.nudged.u)]
                   + [rel_diff(a, b) for a, b in zip(out.nudged.v, ref_pair.nudged.v)]
                   + [rel_diff(a, b) for a, b in zip(out.update.dW, ref_upd.dW)])
        run = _median(lambda: bn.phases(x, y), repeats)
        # the same with one step per phase: what each Brian2 run() costs besides the steps
        # (code objects are prepared again at every run)
        short = _median(lambda: bn.phases(x, y, n_steps=1), repeats)
        per_step = (run - short) / (2 * (steps - 1)) if steps > 1 else float("nan")
        row["brian"][target] = {"build_s": build, "first_run_s": first, "run_s": run,
                                "ratio_to_numba": run / row["numba_s"],
                                "per_step_s": per_step, "per_run_overhead_s": short / 2 - per_step,
                                "max_rel_diff": diff}
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10,8,6,4;784,100,10",
                    help="';'-separated architectures (default '10,8,6,4;784,100,10')")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50, help="Euler steps per phase (default 50)")
    ap.add_argument("--dt", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--targets", default=None,
                    help="Brian2 targets, comma-separated (default numpy, and cython if available)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.targets is None:
        targets = ["numpy"] + (["cython"] if cython_available() else [])
    else:
        targets = [t for t in args.targets.split(",") if t]
    archs = [[int(s) for s in a.split(",")] for a in args.sizes.split(";") if a]
    info = machine()
    print(f"machine: {info['platform']}, {info['processor']}, {info['cpus']} cores; "
          f"brian2 {info['brian2']}, numpy {info['numpy']}")
    print(f"one free + nudged phase pair ({args.steps} Euler steps each, dt {args.dt}) and the "
          f"end-of-phase update, batch {args.batch}, float64; medians of {args.repeats}")
    rows = []
    for sizes in archs:
        row = bench(sizes, args.batch, args.steps, args.dt, args.repeats, targets)
        rows.append(row)
        print(f"\n{'-'.join(map(str, sizes))}: Numba {row['numba_s'] * 1e3:9.2f} ms"
              f" ({row['numba_s'] / (2 * args.steps) * 1e6:.1f} us/step)")
        for t, r in row["brian"].items():
            print(f"  Brian2 {t:<6} {r['run_s'] * 1e3:9.1f} ms  ({r['ratio_to_numba']:7.0f} x Numba;"
                  f" {r['per_step_s'] * 1e3:.2f} ms/step + {r['per_run_overhead_s'] * 1e3:.0f} ms"
                  f" per phase; build {r['build_s']:.2f} s, first run {r['first_run_s']:.2f} s;"
                  f" max rel diff {r['max_rel_diff']:.1e})")
    result = {"machine": info, "settings": {"batch": args.batch, "steps": args.steps,
                                            "dt": args.dt, "repeats": args.repeats,
                                            "targets": targets}, "results": rows}
    if args.out:
        write_json(args.out, result)  # strict JSON
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
