"""The trainer's backprop and feedback-alignment learners against a plain torch loop, same run.

One epoch of the training loop on a fixed 10,000-sample slice of Fashion-MNIST (batch 100,
float32, logistic units, squared error, plain SGD; evaluation excluded: the ``seconds`` column of
metrics.csv) for

- ``torch``: the plain torch loop of ``bench_engine.part_torch_epoch`` (nn.Sequential, MSE,
  backward, torch.optim.SGD, data held as tensors), the reference;
- ``backprop``, ``fa``: ``ghostnet.learning.training.train`` with learner backprop / fa;
- ``backprop_autograd_copy``: the same trainer with the gradients of
  ``ghostnet.checks.reference`` (fresh tensors copied from the parameters every step, as the
  learners did before they shared memory with them), for comparison.

Each in its own process, in alternating order, ``--pairs`` times; the ratio learner / torch of
each pair, then their median (the machine's speed drifts between minutes). Threads: as the
environment says (set OMP_NUM_THREADS etc. to compare on one thread).

    python benchmarks/bench_learners.py [--pairs 5] [--out results/bench_learners.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(__file__))
import bench_engine  # noqa: E402  (machine(), part_torch_epoch, median_time)

ARCHS = ([784, 500, 10], [784, 500, 500, 10])
KINDS = ("backprop", "fa", "backprop_autograd_copy")


def part_learner_epoch(sizes, kind, repeats=1):
    """Seconds of one training epoch of the trainer (10,000 samples, batch 100, float32)."""
    import dataclasses

    from ghostnet.learning.data import load
    from ghostnet.learning.learners import Learner
    from ghostnet.learning.training import TrainConfig
    from ghostnet.model.plasticity import Update

    if kind == "backprop_autograd_copy":
        from ghostnet.checks import reference

        def downhill(self, x, y):
            gW, gb, cost = reference.backprop_gradients(self.cfg.model, self.params, x, y)
            return Update([-g for g in gW], [-g for g in gb], []), float(cost)

        Learner.downhill = downhill
    data = load("fashion-mnist")
    base = TrainConfig()
    model = dataclasses.replace(base.model, sizes=list(sizes), dtype="float32", mode="equilibrium",
                                feedback="random" if kind == "fa" else "symmetric")
    settings = dataclasses.replace(base.train, learner="fa" if kind == "fa" else "backprop",
                                   epochs=1, batch_size=100, lr=0.5, probe_size=0,
                                   eval_train=False)
    return {"epoch_s": bench_engine.epoch_seconds(model, settings, data, repeats)}


def run_part(name, args):
    """``part_<name>(*args)`` of this module in a child process (the caller's environment)."""
    import subprocess

    code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
            f"import bench_learners as b; print(json.dumps(b.part_{name}(*{args!r})))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark part {name}{args} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def part_torch_epoch(sizes, repeats=1):
    return bench_engine.part_torch_epoch(sizes, repeats)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--out", default="results/bench_learners.json")
    args = ap.parse_args(argv)
    print(f"machine: {bench_engine.machine()}")
    rows = []
    for sizes in ARCHS:
        pairs = {k: [] for k in KINDS}
        for i in range(args.pairs):
            for kind in KINDS:  # alternate: torch, learner, torch, learner, ...
                order = [("torch_epoch", (sizes,)), ("learner_epoch", (sizes, kind))]
                if i % 2:
                    order.reverse()
                got = {n: run_part(n, a)["epoch_s"] for n, a in order}
                pairs[kind].append((got["torch_epoch"], got["learner_epoch"]))
        row = {"sizes": "-".join(map(str, sizes)), "dtype": "float32", "batch": 100,
               "train_size": 10000, "pairs": args.pairs,
               "threads": os.environ.get("OMP_NUM_THREADS", "default")}
        for kind in KINDS:
            ratios = [g / t for t, g in pairs[kind]]
            row[f"{kind}_s"] = statistics.median(g for _, g in pairs[kind])
            row[f"{kind}_over_torch"] = statistics.median(ratios)
            row[f"{kind}_over_torch_pairs"] = ratios
        row["torch_loop_s"] = statistics.median(t for k in KINDS for t, _ in pairs[k])
        rows.append(row)
        print(f"{row['sizes']} float32, one epoch of 10,000 samples, batch 100: plain torch loop "
              f"{row['torch_loop_s']:.2f} s | " + " | ".join(
                  f"{k} {row[f'{k}_s']:.2f} s (x{row[f'{k}_over_torch']:.2f}, pairs "
                  f"{min(row[f'{k}_over_torch_pairs']):.2f}-{max(row[f'{k}_over_torch_pairs']):.2f})"
                  for k in KINDS), flush=True)
    result = {"machine": bench_engine.machine(), "rows": rows}
    if args.out:
        from ghostnet.io import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
