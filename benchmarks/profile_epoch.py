"""Profile of one training epoch (cProfile): where the time goes, per function.

One epoch of `ghostnet.training.train` on the first 10,000 Fashion-MNIST training samples
(batch 100, float32, beta 0.01, ghost learner, copy mechanism, symmetric feedback) in the given
mode, after a 200-sample warm-up run that compiles the kernels; prints the epoch's wall time and
the functions with the most time of their own.

    python benchmarks/profile_epoch.py [--mode equilibrium|dynamics] [--sizes 784,500,500,10] [--top 12]
"""
from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import pstats
import tempfile
import time


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("equilibrium", "dynamics"), default="equilibrium")
    ap.add_argument("--sizes", default="784,500,500,10")
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args(argv)
    from ghostnet.data import load
    from ghostnet.training import TrainConfig, train

    sizes = [int(s) for s in args.sizes.split(",")]
    data = load("fashion-mnist")
    base = TrainConfig()
    model = dataclasses.replace(base.model, sizes=sizes, dtype="float32", mode=args.mode,
                                settle="fixed", steps=50, beta=0.01)

    def run(n):
        cfg = TrainConfig(model, dataclasses.replace(base.train, epochs=1, batch_size=100,
                                                     train_size=n, probe_size=0)).validate()
        with tempfile.TemporaryDirectory() as tmp:
            train(cfg, tmp, data=data, progress=False)

    run(200)  # compile
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.runcall(run, 10000)
    wall = time.perf_counter() - t0
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(args.top)
    table = buf.getvalue()
    table = table[table.index("   ncalls"):]
    text = f"{args.mode} {args.sizes}: epoch wall {wall:.2f} s (train 10,000 + evaluate)\n{table}"
    print(text)
    return text


if __name__ == "__main__":
    main()
