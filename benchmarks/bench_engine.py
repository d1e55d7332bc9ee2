"""Engine speed against torch's backprop step on the same MLP, measured in the same run.

For 784-500-10 and 784-500-500-10 at batch 100, float32 and float64:

- torch: forward + backward + SGD step of the same MLP (logistic units, MSE cost), per sample;
  timed in a child process with the caller's environment (ghostnet sets passive OpenMP waiting
  for itself, which would slow torch by ~10% if it shared the process);
- equilibrium mode: one training step (free + nudged fixed points, local update, SGD), per sample,
  solved to tolerance (the default) and with one down pass (``eq_max_iter = 1``, first order in
  beta), each with the largest per-layer angle to backprop at beta = 0.01 on the same batch;
- dynamics mode: the same with 50 exponential-Euler steps per phase, per sample, and the share of
  one phase's time that the bare BLAS calls of the same shapes (timed alone, same run, each in
  its faster orientation, without the transposing copy) would take;
- settling: with the tolerance rule (max|du/dt| < tol), the mean steps per phase and the angle
  to backprop of the resulting update, beside the fixed 50 steps;
- threads: dynamics and equilibrium steps with 1 thread (Numba and BLAS) against 2;
- epoch: the training loop of one epoch on a fixed 10,000-sample slice of Fashion-MNIST (batch
  100, float32; `ghostnet.learning.training`, evaluation excluded) beside a plain torch loop on the same
  samples (nn.Sequential, MSE, SGD; the reference for the epoch target of at most 1.5x), for the trainer's
  backprop learner (torch.autograd on ghostnet's parameters) and the ghost learner in equilibrium
  mode (torch loop and equilibrium in 7 alternating pairs of processes, median of the ratios;
  where the environment names OpenBLAS's kernels (OPENBLAS_CORETYPE), also 3 pairs with the
  kernels OpenBLAS picks itself),
  in dynamics mode with 50 steps per phase and with the tolerance rule (max|du/dt| < 1e-3), each
  in a fresh process, median of 3;
- memory: peak resident memory (VmHWM) of one training epoch (`ghostnet.learning.training.train`, ghost
  learner, equilibrium mode, Fashion-MNIST loaded whole, 10,000 samples trained) in a fresh process,
  beside what the libraries take once imported (numpy, numba, torch: before any data), what
  Numba's compiler runtime adds when the first kernel runs, and what the dataset and the
  parameters need;
- Brian2: the same simulation (784-100-10, batch 16, 50 + 50 forward-Euler steps, float64) in
  Brian2's numpy and cython targets against the Numba engine, as ratios (``bench_brian.bench``).

Medians of several repeats; ratios ghost / torch. The machine and date are printed and saved.

    python benchmarks/bench_engine.py [--repeats 7] [--quick] [--out results/bench_engine.json]
                                      [--only steps,epochs,memory,brian]

``--only`` reruns the named sections and keeps the others from the existing ``--out`` file (each
section's date is recorded in ``section_dates``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone

import numpy as np

ARCHS = ([784, 500, 10], [784, 500, 500, 10])
PAIRS = 7  # alternating torch / equilibrium epoch processes for target 1
SECTIONS = ("steps", "epochs", "memory", "brian")
DTYPES = ("float32", "float64")


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cpus": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__, "blas": blas_info(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def blas_info() -> dict:
    """numpy's BLAS as loaded in this process: its kernel family (OpenBLAS picks one for the CPU
    unless OPENBLAS_CORETYPE names one; this machine's environment sets Haswell, the AVX2
    kernels, although the CPU has AVX-512) and threads (threadpoolctl, where installed)."""
    info = {"OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "")}
    try:
        import threadpoolctl
    except ImportError:
        return info
    for d in threadpoolctl.threadpool_info():
        if d.get("user_api") == "blas" and "numpy" in d.get("filepath", ""):
            info.update({k: d.get(k) for k in ("internal_api", "version", "architecture",
                                               "num_threads")})
    return info


def median_time(fn, repeats: int, inner: int) -> float:
    fn()  # warm-up: compilation, caches, workspace
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def batch(sizes, dtype, n=100, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, sizes[0])).astype(dtype)
    y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], size=n)]
    return x, y


# ---- parts, each run in a child process so that thread settings and environments are clean ----
def part_torch(sizes, dtype, repeats):
    import torch

    tdt = torch.float64 if dtype == "float64" else torch.float32
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b, dtype=tdt), torch.nn.Sigmoid()]
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = batch(sizes, dtype)
    xt, yt = torch.tensor(x), torch.tensor(y)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = 0.5 * ((yt - model(xt)) ** 2).sum(dim=1).mean()
        loss.backward()
        opt.step()

    return {"torch_step_s": median_time(step, repeats, 20), "torch_threads": torch.get_num_threads()}


def part_ghost(sizes, dtype, repeats, steps):
    from ghostnet import GhostNetwork, ModelConfig, State, gradcheck

    x, y = batch(sizes, dtype)
    out = {}
    for mode in ("equilibrium", "dynamics"):
        cfg = ModelConfig(sizes=sizes, dtype=dtype, mode=mode, beta=0.01, settle="fixed",
                          steps=steps, dt=0.1, method="expeuler")
        net = GhostNetwork(cfg)
        out[f"{mode}_step_s"] = median_time(lambda: net.step(x, y, lr=0.1), repeats,
                                            1 if mode == "dynamics" else 5)
    # equilibrium with one down pass (eq_max_iter = 1): the first-order solution
    cfg1 = ModelConfig(sizes=sizes, dtype=dtype, mode="equilibrium", beta=0.01, eq_max_iter=1)
    net1 = GhostNetwork(cfg1)
    out["equilibrium_1_step_s"] = median_time(lambda: net1.step(x, y, lr=0.1), repeats, 5)
    for key, c in (("equilibrium_angle_deg", cfg1.replace(eq_max_iter=500)),
                   ("equilibrium_1_angle_deg", cfg1)):
        out[key] = max(r["angle_deg"] for r in gradcheck(c, batch=len(x))["layers"])
    # one dynamics phase against the bare BLAS calls of its shapes
    cfg = ModelConfig(sizes=sizes, dtype=dtype, settle="fixed", steps=steps)
    net = GhostNetwork(cfg)
    drive = net.engine.integrator.drive(net.params, x)

    def phase():
        net.engine.integrator.run(net.params, State.zeros(cfg, len(x)), drive)

    from ghostnet.kernels.linalg import wide

    p = net.params
    rng = np.random.default_rng(1)
    rs = [rng.uniform(0, 1, (len(x), n)).astype(dtype) for n in sizes[1:]]
    Bs = [np.ascontiguousarray(b) for b in p.B]  # as the kernels get them

    def bare(r, W):  # the product alone, in the faster orientation (no transposing copy)
        if wide(len(r), r.shape[1], W.shape[0]):
            o = np.empty((W.shape[0], len(r)), dtype)
            return lambda: np.dot(W, r.T, out=o)
        o = np.empty((len(r), W.shape[0]), dtype)
        return lambda: np.dot(r, W.T, out=o)

    calls = ([bare(rs[i - 1], p.W[i]) for i in range(1, len(p.W))]
             + [bare(rs[i + 1], Bs[i]) for i in range(len(Bs))])

    def blas():
        for _ in range(steps):
            for call in calls:
                call()

    out["phase_s"] = median_time(phase, repeats, 1)
    out["bare_blas_s"] = median_time(blas, repeats, 1)
    # tolerance-based settling: steps taken and accuracy
    for tol in (1e-3, 1e-4):
        cfg = ModelConfig(sizes=sizes, dtype=dtype, beta=0.01, settle="tol", tol=tol, max_steps=2000)
        g = gradcheck(cfg, batch=len(x))
        out[f"tol{tol:g}_steps"] = (g["phases"]["free"]["steps"] + g["phases"]["nudged"]["steps"]) / 2
        out[f"tol{tol:g}_angle_deg"] = max(r["angle_deg"] for r in g["layers"])
    g = gradcheck(ModelConfig(sizes=sizes, dtype=dtype, beta=0.01, settle="fixed", steps=steps),
                  batch=len(x))
    out["fixed_angle_deg"] = max(r["angle_deg"] for r in g["layers"])
    return out


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def part_epoch(sizes, learner, mode, settle, repeats, eq_max_iter=500):
    """Seconds of one epoch's training loop (10,000 samples, batch 100, float32)."""
    import dataclasses

    from ghostnet.learning.data import load
    from ghostnet.learning.training import TrainConfig

    data = load("fashion-mnist")
    base = TrainConfig()
    model = dataclasses.replace(base.model, sizes=list(sizes), dtype="float32", mode=mode,
                                settle=settle, steps=50, tol=1e-3, beta=0.01,
                                eq_max_iter=eq_max_iter)
    settings = dataclasses.replace(base.train, learner=learner, epochs=1, batch_size=100,
                                   train_size=10000, probe_size=0)
    return {"epoch_s": epoch_seconds(model, settings, data, repeats)}


def epoch_seconds(model, settings, data, repeats) -> float:
    """Median over ``repeats`` of one training epoch's seconds (metrics.csv) on 10,000 samples,
    after a warm-up epoch of 200 (Numba's compilation, torch's first calls)."""
    import csv
    import dataclasses
    import tempfile

    from ghostnet.learning.training import TrainConfig, train

    times = []
    for k in range(repeats + 1):
        cfg = TrainConfig(model, dataclasses.replace(settings, train_size=200 if k == 0 else 10000))
        with tempfile.TemporaryDirectory() as tmp:
            train(cfg.validate(), tmp, data=data, progress=False)
            if k:
                times.append(float(next(csv.DictReader(open(f"{tmp}/metrics.csv")))["seconds"]))
    return statistics.median(times)


def part_torch_epoch(sizes, repeats):
    """Seconds of one epoch of a plain torch training loop on the same 10,000 samples (batch
    100, float32, shuffled each epoch, forward + MSE + backward + plain SGD step, data held as
    tensors): the reference for the equilibrium epoch's target of at most 1.5x."""
    import torch

    from ghostnet.learning.data import load

    data = load("fashion-mnist")
    x = torch.from_numpy(np.ascontiguousarray(data.x_train[:10000], dtype=np.float32))
    y = torch.nn.functional.one_hot(torch.from_numpy(data.y_train[:10000].astype(np.int64)),
                                    10).float()
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.Sigmoid()]
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    rng = np.random.default_rng(0)

    def epoch():
        order = torch.from_numpy(rng.permutation(len(x)))
        for k in range(0, len(x), 100):
            idx = order[k:k + 100]
            xb, yb = x[idx], y[idx]
            opt.zero_grad(set_to_none=True)
            loss = 0.5 * ((yb - model(xb)) ** 2).sum(dim=1).mean()
            loss.backward()
            opt.step()

    return {"epoch_s": median_time(epoch, repeats, 1)}


def part_memory(sizes, dtype, train_size, probe_size=0):
    """Peak RSS of one epoch of training, against the libraries' footprint and data + weights.
    With ``probe_size`` > 0 the run measures its angle to backprop each epoch, which needs torch
    (imported here before the libraries are measured); without, torch is never imported."""
    import dataclasses
    import tempfile

    from ghostnet.learning.data import load
    from ghostnet.model.params import Params
    from ghostnet.learning.training import TrainConfig, train

    if probe_size:
        import importlib

        importlib.import_module("torch")
    libs = _status_kb("VmRSS")
    data = load("fashion-mnist")
    data_bytes = sum(a.nbytes for a in (data.x_train, data.y_train, data.x_test, data.y_test))
    cfg = TrainConfig()
    cfg = TrainConfig(dataclasses.replace(cfg.model, sizes=list(sizes), dtype=dtype, mode="equilibrium"),
                      dataclasses.replace(cfg.train, epochs=1, batch_size=100, train_size=train_size,
                                          probe_size=probe_size)).validate()
    weights = Params.init(cfg.model)
    weight_bytes = sum(a.nbytes for k in ("W", "b", "B", "G", "c", "H") for a in getattr(weights, k))
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, tmp, data=data, progress=False)
    peak = _status_kb("VmHWM")
    need = data_bytes + weight_bytes
    return {"libs_mb": libs / 1024, "peak_mb": peak / 1024, "data_mb": data_bytes / 2**20,
            "weights_mb": weight_bytes / 2**20, "probe_size": probe_size,
            "torch_loaded": "torch" in sys.modules,
            "ratio_above_libs": (peak - libs) * 1024 / need,
            "ratio_total": peak * 1024 / need}


def part_numba_runtime():
    """Resident memory that Numba's compiler runtime (type system, LLVM) adds when the first
    compiled kernel runs, cached or not: once per process, whatever the data (a training step
    calls two kernels even in equilibrium mode). Measured alone, in its own process, since
    where it lands in a training run depends on what was freed before."""
    from ghostnet.kernels.numba_kernels import axpy  # with all of ghostnet's imports, before measuring

    before = _status_kb("VmRSS")
    axpy(np.zeros((1, 1)), 0.0, np.zeros((1, 1)))
    return {"numba_runtime_mb": (_status_kb("VmRSS") - before) / 1024}


def part_brian(sizes, batch, steps, repeats):
    import bench_brian
    from ghostnet.engines.brian import cython_available

    targets = ["numpy"] + (["cython"] if cython_available() else [])
    return bench_brian.bench(sizes, batch, steps, 0.1, repeats, targets)


def run_part(name, args, env_extra=None, keep_env=False):
    """Run ``part_<name>(*args)`` in a child process; returns its dict."""
    env = dict(os.environ)
    for k, v in (env_extra or {}).items():  # None: unset
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
            f"import bench_engine as b; from ghostnet.io import dumps; print(dumps(b.part_{name}(*{args!r})))")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark part {name}{args} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="3 repeats, float32 only, no thread sweep")
    ap.add_argument("--out", default="results/bench_engine.json")
    ap.add_argument("--only", default="", help="comma-separated sections to rerun: "
                    + ", ".join(SECTIONS) + " (the others are kept from --out)")
    args = ap.parse_args(argv)
    only = [p for p in args.only.split(",") if p]
    bad = sorted(set(only) - set(SECTIONS))
    if bad:
        ap.error(f"unknown section(s) {bad}; choose from {list(SECTIONS)}")
    run = set(only or SECTIONS)
    repeats = 3 if args.quick else args.repeats
    dtypes = ("float32",) if args.quick else DTYPES
    one = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    rows = []
    print(f"machine: {machine()}")
    for sizes in ARCHS if "steps" in run else ():
        for dtype in dtypes:
            row = {"sizes": "-".join(map(str, sizes)), "dtype": dtype, "batch": 100}
            row.update(run_part("torch", (sizes, dtype, repeats)))
            row.update(run_part("ghost", (sizes, dtype, repeats, args.steps)))
            if not args.quick:
                g1 = run_part("ghost", (sizes, dtype, repeats, args.steps), one)
                row["dynamics_step_1thread_s"] = g1["dynamics_step_s"]
                row["equilibrium_step_1thread_s"] = g1["equilibrium_step_s"]
            t = row["torch_step_s"]
            row["equilibrium_over_torch"] = row["equilibrium_step_s"] / t
            row["equilibrium_1_over_torch"] = row["equilibrium_1_step_s"] / t
            row["dynamics_over_torch"] = row["dynamics_step_s"] / t
            row["blas_share"] = row["bare_blas_s"] / row["phase_s"]
            rows.append(row)
            ms = lambda s: 1e3 * s / 100  # ms per sample
            line = (f"{row['sizes']:>15} {dtype}: torch {ms(t):.4f} ms/sample | equilibrium "
                    f"{ms(row['equilibrium_step_s']):.4f} (x{row['equilibrium_over_torch']:.2f}, "
                    f"{row['equilibrium_angle_deg']:.3f} deg), one down pass "
                    f"{ms(row['equilibrium_1_step_s']):.4f} (x{row['equilibrium_1_over_torch']:.2f}, "
                    f"{row['equilibrium_1_angle_deg']:.3f} deg) | "
                    f"dynamics {args.steps}+{args.steps} steps {ms(row['dynamics_step_s']):.4f} "
                    f"(x{row['dynamics_over_torch']:.1f}), BLAS share {100 * row['blas_share']:.0f}% | "
                    f"tol 1e-3: {row['tol0.001_steps']:.0f} steps/phase, "
                    f"{row['tol0.001_angle_deg']:.3f} deg; tol 1e-4: {row['tol0.0001_steps']:.0f}, "
                    f"{row['tol0.0001_angle_deg']:.3f} deg; fixed: {row['fixed_angle_deg']:.3f} deg")
            if "dynamics_step_1thread_s" in row:
                line += (f" | 1 vs 2 threads: dynamics x{row['dynamics_step_1thread_s'] / row['dynamics_step_s']:.2f}"
                         f", equilibrium x{row['equilibrium_step_1thread_s'] / row['equilibrium_step_s']:.2f}")
            print(line, flush=True)
    epochs = []
    if not args.quick and "epochs" in run:
        for sizes in ARCHS:
            e = {"sizes": "-".join(map(str, sizes)), "dtype": "float32", "train_size": 10000}
            # target 1: torch loop and equilibrium epoch in alternating processes, PAIRS pairs, the
            # median of the pairs' ratios (the machine's speed drifts between minutes)
            # (equilibrium_1: one down pass, eq_max_iter = 1, the first-order solution)
            pairs = []
            for _ in range(PAIRS):
                t = run_part("torch_epoch", (sizes, 1))["epoch_s"]
                g = run_part("epoch", (sizes, "ghost", "equilibrium", "fixed", 1))["epoch_s"]
                g1 = run_part("epoch", (sizes, "ghost", "equilibrium", "fixed", 1, 1))["epoch_s"]
                pairs.append((t, g, g1))
            e["torch_loop_s"] = statistics.median(p[0] for p in pairs)
            e["equilibrium_s"] = statistics.median(p[1] for p in pairs)
            e["equilibrium_1_s"] = statistics.median(p[2] for p in pairs)
            e["equilibrium_over_torch_loop_pairs"] = [g / t for t, g, _ in pairs]
            e["equilibrium_1_over_torch_loop_pairs"] = [g1 / t for t, _, g1 in pairs]
            e["equilibrium_1_over_torch_loop"] = statistics.median(e["equilibrium_1_over_torch_loop_pairs"])
            for name, learner, mode, settle in (("backprop", "backprop", "equilibrium", "fixed"),
                                                ("dynamics_50", "ghost", "dynamics", "fixed"),
                                                ("dynamics_tol", "ghost", "dynamics", "tol")):
                e[f"{name}_s"] = run_part("epoch", (sizes, learner, mode, settle, 3))["epoch_s"]
            for name in ("equilibrium", "dynamics_50", "dynamics_tol"):
                e[f"{name}_over_backprop"] = e[f"{name}_s"] / e["backprop_s"]
                e[f"{name}_over_torch_loop"] = e[f"{name}_s"] / e["torch_loop_s"]
            e["equilibrium_over_torch_loop"] = statistics.median(e["equilibrium_over_torch_loop_pairs"])
            if os.environ.get("OPENBLAS_CORETYPE"):
                # information: the same with the kernels OpenBLAS picks for this CPU by itself
                # (torch uses MKL, which the variable does not touch)
                native = []
                for _ in range(3):
                    t = run_part("torch_epoch", (sizes, 1))["epoch_s"]
                    g = run_part("epoch", (sizes, "ghost", "equilibrium", "fixed", 1),
                                 {"OPENBLAS_CORETYPE": None})["epoch_s"]
                    native.append(g / t)
                e["equilibrium_native_blas_over_torch_loop_pairs"] = native
                e["equilibrium_native_blas_over_torch_loop"] = statistics.median(native)
            epochs.append(e)
            print(f"epoch {e['sizes']} float32, 10,000 samples: plain torch loop "
                  f"{e['torch_loop_s']:.2f} s | trainer's backprop learner {e['backprop_s']:.2f} s | "
                  f"equilibrium {e['equilibrium_s']:.2f} s (x{e['equilibrium_over_torch_loop']:.2f} "
                  f"torch loop, median of {PAIRS} alternating pairs "
                  f"{min(e['equilibrium_over_torch_loop_pairs']):.2f}-"
                  f"{max(e['equilibrium_over_torch_loop_pairs']):.2f}; "
                  f"x{e['equilibrium_over_backprop']:.2f} learner) | equilibrium, one down pass "
                  f"{e['equilibrium_1_s']:.2f} s (x{e['equilibrium_1_over_torch_loop']:.2f}) | "
                  f"dynamics 50 steps {e['dynamics_50_s']:.1f} s (x{e['dynamics_50_over_torch_loop']:.1f}) | "
                  f"dynamics tol 1e-3 {e['dynamics_tol_s']:.1f} s (x{e['dynamics_tol_over_torch_loop']:.1f})"
                  + (f" | equilibrium with OpenBLAS's own kernel choice x"
                     f"{e['equilibrium_native_blas_over_torch_loop']:.2f} torch loop"
                     if "equilibrium_native_blas_over_torch_loop" in e else ""),
                  flush=True)
    memory = []
    if not args.quick and "memory" in run:
        runtime = run_part("numba_runtime", ())["numba_runtime_mb"]
        for sizes in ARCHS:
            for probe in (0, 100):
                m = {"sizes": "-".join(map(str, sizes)), "dtype": "float32", "train_size": 10000}
                m.update(run_part("memory", (sizes, "float32", 10000, probe)))
                m["numba_runtime_mb"] = runtime
                m["ratio_above_runtime"] = ((m["peak_mb"] - m["libs_mb"] - runtime)
                                            / (m["data_mb"] + m["weights_mb"]))
                memory.append(m)
                print(f"memory {m['sizes']} float32, one epoch of 10,000 samples, probe {probe} "
                      f"(torch {'loaded' if m['torch_loaded'] else 'not loaded'}): peak "
                      f"{m['peak_mb']:.0f} MB = libraries {m['libs_mb']:.0f} MB + "
                      f"{m['peak_mb'] - m['libs_mb']:.0f} MB for data {m['data_mb']:.0f} MB and "
                      f"weights {m['weights_mb']:.1f} MB (x{m['ratio_above_libs']:.2f} of data + "
                      f"weights; x{m['ratio_above_runtime']:.2f} beside Numba's runtime, "
                      f"{m['numba_runtime_mb']:.0f} MB; x{m['ratio_total']:.2f} with the "
                      f"libraries)", flush=True)
    brian = None
    if not args.quick and "brian" in run:
        brian = run_part("brian", ([784, 100, 10], 16, args.steps, repeats))
        line = f"Brian2, 784-100-10, batch 16, {args.steps}+{args.steps} Euler steps, float64: Numba {1e3 * brian['numba_s']:.1f} ms"
        for t, r in brian["brian"].items():
            line += f" | {t} {1e3 * r['run_s']:.0f} ms (x{r['ratio_to_numba']:.0f})"
        print(line, flush=True)
    now = machine()
    result = {"machine": now, "repeats": repeats, "steps_per_phase": args.steps, "rows": rows,
              "epochs": epochs, "memory": memory, "brian": brian,
              "section_dates": {k: now["date"] for k in run}}
    if only and args.out and os.path.exists(args.out):  # keep the sections not rerun
        with open(args.out) as fh:
            old = json.load(fh)
        dates = old.get("section_dates") or {k: old["machine"]["date"] for k in SECTIONS}
        for key, section in (("rows", "steps"), ("epochs", "epochs"), ("memory", "memory"),
                             ("brian", "brian")):
            if section not in run:
                result[key] = old.get(key)
        result["section_dates"] = {**dates, **result["section_dates"]}
    if args.out:
        from ghostnet.io import write_json

        write_json(args.out, result)  # strict JSON: a non-finite timing is written as null
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
