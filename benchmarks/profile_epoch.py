"""Profile of one training epoch: where the time goes, per function (cProfile) or per line
(py-spy's sampling, which also sees the time spent inside numpy and BLAS calls).

One epoch of `ghostnet.learning.training.train` on the first 10,000 Fashion-MNIST training samples
(batch 100, float32, beta 0.01, ghost learner, copy mechanism, symmetric feedback) in the given
mode, after a 200-sample warm-up run that compiles the kernels; prints the epoch's wall time and
the functions with the most time of their own (cProfile), or, with ``--sampler py-spy`` (needs
``pip install py-spy``), the share of the training loop's samples on each source line it was
running when sampled (calls into numpy and BLAS count for the line that made them; the
per-epoch evaluation excluded).

    python benchmarks/profile_epoch.py [--mode equilibrium|dynamics] [--sizes 784,500,500,10]
                                       [--top 12] [--sampler cprofile|py-spy]
"""
from __future__ import annotations

import argparse
import collections
import cProfile
import dataclasses
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time


def _train(mode: str, sizes: list[int], n: int) -> None:
    from ghostnet.learning.training import TrainConfig, train

    base = TrainConfig()
    model = dataclasses.replace(base.model, sizes=sizes, dtype="float32", mode=mode,
                                settle="fixed", steps=50, beta=0.01)
    cfg = TrainConfig(model, dataclasses.replace(base.train, epochs=1, batch_size=100,
                                                 train_size=n, probe_size=0)).validate()
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, tmp, data=_train.data, progress=False)


def _pyspy(args, sizes) -> str:
    exe = shutil.which("py-spy")
    if exe is None:
        sys.exit("--sampler py-spy needs py-spy: pip install py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.txt")
        cmd = [exe, "record", "-r", "500", "-f", "raw", "-o", raw, "--", sys.executable,
               __file__, "--mode", args.mode, "--sizes", args.sizes, "--run-only"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        lines, total = collections.Counter(), 0
        with open(raw) as fh:
            for row in fh:
                stack, count = row.rsplit(" ", 1)
                if "step (ghostnet/training.py" not in stack:  # the training steps only
                    continue
                total += int(count)
                lines[stack.split(";")[-1]] += int(count)
    body = "\n".join(f"{100 * c / total:5.1f}%  {frame}" for frame, c in lines.most_common(args.top))
    return (f"{args.mode} {args.sizes}: py-spy, {total} samples in the training steps (500/s; "
            f"evaluation excluded; process wall {wall:.1f} s incl. start-up and warm-up), share "
            f"per source line:\n{body}")


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("equilibrium", "dynamics"), default="equilibrium")
    ap.add_argument("--sizes", default="784,500,500,10")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--sampler", choices=("cprofile", "py-spy"), default="cprofile")
    ap.add_argument("--run-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.sampler == "py-spy" and not args.run_only:
        text = _pyspy(args, sizes)
        print(text)
        return text
    from ghostnet.learning.data import load

    _train.data = load("fashion-mnist")
    if args.run_only:  # under py-spy: the epochs it samples, after a warm-up outside the trainer
        import numpy as np

        from ghostnet import GhostNetwork, ModelConfig

        net = GhostNetwork(ModelConfig(sizes=sizes, dtype="float32", mode=args.mode,
                                       settle="fixed", steps=50, beta=0.01))
        x = _train.data.x_train[:100].astype(np.float32)
        y = np.eye(sizes[-1], dtype=np.float32)[_train.data.y_train[:100]]
        for _ in range(2):
            net.step(x, y, 0.1)
        _train(args.mode, sizes, 100)  # the trainer's own first-call imports
        for _ in range(5 if args.mode == "equilibrium" else 1):
            _train(args.mode, sizes, 10000)
        return ""
    _train(args.mode, sizes, 200)  # compile
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.runcall(_train, args.mode, sizes, 10000)
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
