"""The torch engine's speed, as ratios against references measured in the same run.

- conv: the LeNet-like network of experiments/configs/fashion_lenet.toml (float32, batch
  ``--batch``): the ghost learner's training step (equilibrium mode, copy ghosts: free + nudged
  fixed points, local update, SGD) against the backprop learner's step (torch.autograd on the
  same parameters, SGD) on the same batches; per sample, alternating runs, median of the ratios.
  An epoch's time is the per-sample time times 60,000.
- conv, first order: the same with ``eq_max_iter = 1`` (the nudged phase as one down pass, the
  work of backprop's backward pass; the phase reports not settled).
- dense: the ghost step of 784-500-10 (equilibrium, copy, float32, batch ``--batch``) on the
  torch engine against the Numba engine, alternating, median of the ratios.
- cuda: when torch sees a CUDA device, the conv section again there at batch 256 (float32),
  reported as images per second for ghost and backprop; otherwise the output says that no GPU
  was available.

Threads: torch's and the BLAS's intra-op threads as the environment sets them
(``OMP_NUM_THREADS``; the run records the number torch uses).

    python benchmarks/bench_torch.py [--batch 20] [--batches 10] [--repeats 5]
                                     [--out results/bench_torch.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from ghostnet.learning.learners import Learner
from ghostnet.learning.settings import TrainConfig
from ghostnet.model.params import Params

ROOT = Path(__file__).resolve().parents[1]
LENET = ROOT / "experiments" / "configs" / "fashion_lenet.toml"


def _learner(model, learner: str):
    import dataclasses

    cfg = TrainConfig.load(LENET)
    t = dataclasses.replace(cfg.train, learner=learner)
    return Learner(TrainConfig(model, t).validate(), Params.init(model))


def _batches(model, batch: int, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.uniform(0, 1, (batch, model.sizes[0])).astype(model.dtype)
        y = np.eye(model.sizes[-1], dtype=model.dtype)[rng.integers(0, model.sizes[-1], batch)]
        out.append((x, y))
    return out


def _time(learner, batches, lrs, sync) -> float:
    learner.step(*batches[0], lrs)  # warm-up (first-call costs)
    sync()
    t0 = time.perf_counter()
    for x, y in batches:
        learner.step(x, y, lrs)
    sync()
    return (time.perf_counter() - t0) / sum(len(x) for x, _ in batches)


def _pair(model_a, kind_a, model_b, kind_b, batch, n_batches, repeats, sync=lambda: None):
    """Alternating timings of two learners: per-sample seconds (medians) and the median ratio."""
    a, b = _learner(model_a, kind_a), _learner(model_b, kind_b)
    data = _batches(model_a, batch, n_batches)
    lrs = [0.01] * model_a.n_layers
    ta, tb, ratios = [], [], []
    for _ in range(repeats):
        x = _time(a, data, lrs, sync)
        y = _time(b, data, lrs, sync)
        ta.append(x)
        tb.append(y)
        ratios.append(x / y)
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios), ratios


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=20, help="samples a batch (CPU sections)")
    ap.add_argument("--batches", type=int, default=10, help="batches a timed run")
    ap.add_argument("--repeats", type=int, default=5, help="alternating timed runs")
    ap.add_argument("--out", default=str(ROOT / "results" / "bench_torch.json"),
                    help="where the JSON results go")
    args = ap.parse_args(argv)
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
           "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
           "batch": args.batch, "batches": args.batches, "repeats": args.repeats}

    lenet = TrainConfig.load(LENET).model.replace(device="cpu", dtype="float32")
    g, b, ratio, ratios = _pair(lenet, "ghost", lenet, "backprop", args.batch, args.batches,
                                args.repeats)
    out["conv"] = {"network": "fashion_lenet.toml", "device": "cpu",
                   "ghost_s_per_sample": g, "backprop_s_per_sample": b,
                   "ghost_epoch_s": g * 60000, "backprop_epoch_s": b * 60000,
                   "ratio_ghost_over_backprop": ratio, "ratios": ratios}
    print(f"conv (LeNet-like, CPU, float32, batch {args.batch}): ghost {g * 1e3:.3f} ms/sample, "
          f"backprop {b * 1e3:.3f} ms/sample; ghost / backprop = {ratio:.2f} "
          f"(runs: {', '.join(f'{r:.2f}' for r in ratios)}); a 60,000-image epoch: ghost "
          f"{g * 6e4:.0f} s, backprop {b * 6e4:.0f} s")

    first = lenet.replace(eq_max_iter=1)  # one down pass: first order in beta (docs/model.md §8)
    g1, b1, ratio1, ratios1 = _pair(first, "ghost", lenet, "backprop", args.batch, args.batches,
                                    args.repeats)
    out["conv_first_order"] = {"eq_max_iter": 1, "ghost_s_per_sample": g1,
                               "backprop_s_per_sample": b1, "ratio_ghost_over_backprop": ratio1,
                               "ratios": ratios1}
    print(f"conv, eq_max_iter = 1 (one down pass): ghost {g1 * 1e3:.3f} ms/sample, backprop "
          f"{b1 * 1e3:.3f} ms/sample; ghost / backprop = {ratio1:.2f}")

    from ghostnet.model.config import ModelConfig

    dense = dict(sizes=[784, 500, 10], mode="equilibrium", mechanism="copy", dtype="float32",
                 beta=0.01)
    t_torch, t_numba, ratio, ratios = _pair(
        ModelConfig(**dense, engine="torch", device="cpu"), "ghost", ModelConfig(**dense),
        "ghost", args.batch, args.batches, args.repeats)
    out["dense"] = {"network": "784-500-10", "torch_s_per_sample": t_torch,
                    "numba_s_per_sample": t_numba, "ratio_torch_over_numba": ratio,
                    "ratios": ratios}
    print(f"dense 784-500-10 ghost step (equilibrium, float32, batch {args.batch}): torch engine "
          f"{t_torch * 1e6:.1f} us/sample, Numba engine {t_numba * 1e6:.1f} us/sample; torch / "
          f"Numba = {ratio:.2f}")

    if torch.cuda.is_available():
        cuda = lenet.replace(device="cuda")
        g, b, ratio, ratios = _pair(cuda, "ghost", cuda, "backprop", 256, args.batches,
                                    args.repeats, sync=torch.cuda.synchronize)
        out["cuda"] = {"device": torch.cuda.get_device_name(0), "batch": 256,
                       "ghost_images_per_s": 1 / g, "backprop_images_per_s": 1 / b,
                       "ratio_ghost_over_backprop": ratio}
        print(f"cuda ({out['cuda']['device']}, batch 256, float32): ghost {1 / g:.0f} images/s, "
              f"backprop {1 / b:.0f} images/s")
    else:
        out["cuda"] = None
        print("cuda: no CUDA device here; the GPU benchmark did not run")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
