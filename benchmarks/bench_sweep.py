"""Sweep throughput and thread contention on this machine (docs/sweeps.md, "Measured").

1. Contention: a ghost run's epoch time alone and beside a second ghostnet process doing the same,
   with every core per process (the libraries' default) and with ``--threads 1``.
2. Sweep: 8 points of a short Fashion-MNIST run (784-500-10, copy ghosts, equilibrium, seeds
   0-7) one after another in this process (``--workers 0``; with 1 thread and with every core),
   split between two plain single-threaded processes (even and odd seeds, no Dask: what the
   machine itself allows two processes), on the sweep's local Dask cluster of 2 single-threaded
   workers (``--workers 2``, with ``sweep.DASK_QUIET``), and on the same cluster with Dask's
   default housekeeping. Throughput is points per second of wall time after start-up (imports
   and Numba's cache loaded in every process first; each Dask way starts a fresh cluster every
   round, whose start-up is reported apart); a point's time is the sum of its epochs'
   ``seconds`` in metrics.csv, compared with the same point in the one-thread process.
   ``--rounds R`` runs the five ways R times in alternation and reports medians over the rounds
   (the VM's speed drifts within minutes).

    python benchmarks/bench_sweep.py [--points 8] [--train-size 6000] [--epochs 3] [--rounds 1]
                                      [--skip-contention]
    python benchmarks/bench_sweep.py --worker-check   # 3. one point: this process vs a Dask worker
    python benchmarks/bench_sweep.py --machine-check  # 4. the cores themselves, alone and in pairs
    python benchmarks/bench_sweep.py --command-cpu    # 5. the command's own CPU during a sweep

4. measures what two single-threaded processes cost each other on this machine with no ghostnet
code at all: a register-only arithmetic loop (no memory traffic), a matrix-vector loop on a 1.5 MB
matrix (the size of 784-500-10's W_1 in float32, resident in the L3 cache) and a stream over 256 MB
(main memory). Each kernel runs alone, then as two processes at once; the ratio is the pair's
slower time over the time alone, the floor under any sweep point's slowdown here.

Needs Fashion-MNIST (the full set, or the embedded subset with --train-size <= 10000).
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "configs" / "fashion_784-500-10.toml"


def _epochs(run: Path, skip_first: bool = False) -> list[float]:
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    return [float(r["seconds"]) for r in rows[1 if skip_first else 0:]]


def contention(tmp: Path, train_size: int, epochs: int) -> None:
    """Median epoch time (first epoch, with its warm-up, left out) of run A alone and of A and B
    side by side, at every core per process and at one thread."""
    def start(name: str, threads: int, seed: int):
        return subprocess.Popen(
            [sys.executable, "-m", "ghostnet", "train", "--config", str(CONFIG), "--epochs",
             str(epochs), "--train-size", str(train_size), "--seed", str(seed), "--threads",
             str(threads), "--out", str(tmp / name), "--no-progress"],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)

    print(f"contention: 784-500-10 ghost, {train_size} samples, batch 20, median of epochs "
          f"2-{epochs} (s)")
    print(f"{'threads per process':>20} {'alone':>8} {'beside another':>15} {'slowdown':>9}")
    for threads in (0, 1):
        a = start(f"alone-t{threads}", threads, 0)
        a.wait()
        alone = float(np.median(_epochs(tmp / f"alone-t{threads}", skip_first=True)))
        pair = [start(f"pair{i}-t{threads}", threads, i) for i in (0, 1)]
        for p in pair:
            p.wait()
        side = [float(np.median(_epochs(tmp / f"pair{i}-t{threads}", skip_first=True)))
                for i in (0, 1)]
        label = "every core" if threads == 0 else "1"
        print(f"{label:>20} {alone:8.2f} {max(side):15.2f} {max(side) / alone:8.1f}x", flush=True)


def sweep_file(tmp: Path, points: int, train_size: int, epochs: int) -> Path:
    path = tmp / "bench.toml"
    path.write_text(f'base = "{CONFIG}"\ndirname = "seed={{seed}}"\n'  # the same in every split
                    f'[grid]\nseed = {list(range(points))}\n'
                    f"[grid.train]\ntrain_size = [{train_size}]\nepochs = [{epochs}]\n"
                    "pretrain = [0]\nprobe_size = [20]\n")
    return path


def _warm(train_size: int):
    """Imports, Numba's cached kernels, torch and the dataset in this process: one tiny run."""
    from ghostnet.learning import sweep as sw
    from ghostnet.learning.settings import TrainConfig
    from ghostnet.learning.training import train

    cfg = TrainConfig.load(CONFIG)
    sw._dataset(cfg.train.dataset, cfg.train.data_source)  # the points' cache of it
    cfg.train.epochs, cfg.train.train_size, cfg.train.pretrain, cfg.train.probe_size = 1, 200, 0, 5
    with tempfile.TemporaryDirectory() as d:
        train(cfg.validate(), d, progress=False, threads=1)
    return os.getpid()


def _split_worker(spec: str, out: str, train_size: int) -> None:
    """A plain process (no Dask) that runs one sweep file's points one after another with one
    thread, once the parent says go: the 'two plain processes' way of :func:`throughput`."""
    from ghostnet.learning import sweep as sw

    _warm(train_size)
    s = sw.load_sweep(spec, threads=1)
    print("ready", flush=True)
    sys.stdin.readline()
    sw.run_sweep(s, out, workers=0, progress=False, log=lambda m: None)


def _two_processes(tmp: Path, points: int, train_size: int, epochs: int, out: Path) -> float:
    """Wall seconds of the points split between two plain single-threaded processes (even and
    odd seeds), from the moment both are warm."""
    procs = []
    for half in (0, 1):
        spec = tmp / f"half{half}.toml"
        spec.write_text(sweep_file(tmp, points, train_size, epochs).read_text().replace(
            f"seed = {list(range(points))}", f"seed = {list(range(half, points, 2))}"))
        procs.append(subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--_split", str(spec), str(out),
             str(train_size)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                 "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                 "NUMBA_NUM_THREADS": "1"}))
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    t0 = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        p.wait()
    return time.perf_counter() - t0


def throughput(tmp: Path, points: int, train_size: int, epochs: int, rounds: int = 1) -> None:
    """The points one after another in this process, on two plain processes and on a 2-worker
    Dask cluster (the sweep's settings, and Dask's defaults), ``rounds`` times in alternation;
    medians over the rounds."""
    from distributed import Client

    from ghostnet.learning import sweep as sw

    spec = sweep_file(tmp, points, train_size, epochs)
    quiet = dict(progress=False, log=lambda m: None)
    _warm(train_size)
    s = sw.load_sweep(spec, threads=1)
    names = [p.dirname for p in s.points]
    ways = ("one process, 1 thread", "one process, every core", "two plain processes",
            "Dask, 2 workers x 1 thread", "Dask, its default housekeeping")
    walls = {w: [] for w in ways}
    point_s = {w: {n: [] for n in names} for w in ways}
    startup = []
    for r in range(rounds):
        for way in ways:
            out = tmp / f"{way.replace(' ', '_').replace(',', '')}-r{r}"
            if way == "two plain processes":  # timed from the moment both are warm
                walls[way].append(_two_processes(tmp, points, train_size, epochs, out))
            elif way.startswith("Dask"):  # a fresh cluster, started and warmed before the clock
                t0 = time.perf_counter()
                with sw._local_cluster(  # the sweep's settings, or Dask's own
                        2, 1, {} if way.endswith("housekeeping") else None) as cluster, \
                        Client(cluster) as client:
                    client.run(_warm, train_size)
                    startup.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    sw.run_sweep(s, out, client=client, **quiet)
                    walls[way].append(time.perf_counter() - t0)
            else:
                t0 = time.perf_counter()
                threads = 1 if way.endswith("1 thread") else 0
                sw.run_sweep(sw.load_sweep(spec, threads=threads), out, workers=0, **quiet)
                walls[way].append(time.perf_counter() - t0)
            for n in names:
                point_s[way][n].append(sum(_epochs(out / n)))
        print(f"round {r + 1}: " + ", ".join(f"{w} {walls[w][-1]:.1f} s" for w in ways)
              + f" (load {os.getloadavg()[0]:.1f})", flush=True)
    startup = float(np.median(startup))

    ref = "one process, 1 thread"
    wall = {w: float(np.median(v)) for w, v in walls.items()}
    med = {w: {n: float(np.median(v)) for n, v in point_s[w].items()} for w in ways}
    print(f"\nsweep: {points} points, 784-500-10 ghost, {train_size} samples, {epochs} epochs each, "
          f"medians of {rounds} alternating round(s) (cluster start-up and warm-up {startup:.1f} s, "
          "not counted)")
    print(f"{'how':>28} {'wall s':>8} {'points/min':>11} {'throughput x':>13} "
          f"{'point s (median)':>17} {'point vs alone, median':>23} {'worst point vs alone':>21}")
    for w in ways:
        ratio = [med[w][n] / med[ref][n] for n in names]
        print(f"{w:>28} {wall[w]:8.1f} {60 * points / wall[w]:11.2f} {wall[ref] / wall[w]:12.2f}x "
              f"{np.median(list(med[w].values())):17.2f} {np.median(ratio):22.2f}x "
              f"{max(ratio):20.2f}x", flush=True)
    best = min(wall["one process, 1 thread"], wall["one process, every core"])
    print(f"Dask against the faster one-process way: "
          f"{best / wall['Dask, 2 workers x 1 thread']:.2f}x the throughput; against two plain "
          f"processes: {wall['two plain processes'] / wall['Dask, 2 workers x 1 thread']:.2f}x")


def command_cpu(tmp: Path, points: int, train_size: int, epochs: int, rounds: int = 3) -> None:
    """CPU seconds of this process (the scheduler, client and nannies of a local cluster) during
    a sweep of the points on 2 workers, the sweep's Dask settings and Dask's own alternating."""
    import psutil
    from distributed import Client

    from ghostnet.learning import sweep as sw

    s = sw.load_sweep(sweep_file(tmp, points, train_size, epochs), threads=1)
    _warm(train_size)
    me = psutil.Process()
    print(f"\nthis process's CPU during a sweep of {points} points on 2 workers:")
    for r in range(rounds):
        for label, config in (("the sweep's settings", None), ("Dask's defaults", {})):
            with sw._local_cluster(2, 1, config) as cluster, Client(cluster) as client:
                client.run(_warm, train_size)
                c0, t0 = me.cpu_times(), time.perf_counter()
                out = tmp / f"cpu-{r}-{'default' if config == {} else 'sweep'}"
                sw.run_sweep(s, out, client=client, progress=False, log=lambda m: None)
                c1, wall = me.cpu_times(), time.perf_counter() - t0
            cpu = c1.user - c0.user + c1.system - c0.system
            print(f"  {label:>22}: {cpu:.2f} CPU s in {wall:.1f} s of wall time", flush=True)


def _one_point(train_size: int, epochs: int) -> list[float]:
    """One point (seed 0, 1 thread) in a fresh run directory; its epochs' seconds."""
    from ghostnet.learning import sweep as sw
    from ghostnet.learning.settings import TrainConfig

    cfg = TrainConfig.load(CONFIG)
    cfg.train.epochs, cfg.train.train_size, cfg.train.pretrain = epochs, train_size, 0
    cfg.train.probe_size, cfg.train.threads = 20, 1
    with tempfile.TemporaryDirectory() as d:
        sw.run_point(cfg.validate().to_toml(), d, 1)
        return _epochs(Path(d))


def worker_against_process(train_size: int, epochs: int, rounds: int = 2) -> None:
    """The same point alternately in this process and on a one-worker local cluster."""
    from distributed import Client

    from ghostnet.learning import sweep as sw

    print(f"\none point ({train_size} samples, {epochs} epochs, 1 thread), epoch seconds:")
    with sw._local_cluster(1, 1) as cluster, Client(cluster) as client:
        for _ in range(rounds):
            here = _one_point(train_size, epochs)
            there = client.submit(_one_point, train_size, epochs, pure=False).result()
            print(f"  this process {' '.join(f'{x:.2f}' for x in here)}   "
                  f"Dask worker {' '.join(f'{x:.2f}' for x in there)}   "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)


_KERNELS = {
    "arithmetic (registers only)": "arith",
    "matrix-vector, 1.5 MB matrix (L3)": "l3",
    "stream over 256 MB (memory)": "mem",
}


def _kernel(kind: str) -> float:
    """Seconds of one fixed amount of work of ``kind`` (module docstring, 4.), one thread."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    if kind == "arith":
        import numba

        @numba.njit(cache=False)
        def spin(n):
            x, y = 1.0, 0.5
            for _ in range(n):
                x = x * 0.999999 + y
                y = y * 0.999999 + 1e-9
            return x + y

        spin(10)
        t0 = time.perf_counter()
        spin(400_000_000)
        return time.perf_counter() - t0
    if kind == "l3":
        rng = np.random.default_rng(0)
        a = rng.standard_normal((500, 784)).astype(np.float32)
        v = rng.standard_normal((784, 20)).astype(np.float32)
        t0 = time.perf_counter()
        for _ in range(6000):
            a @ v
        return time.perf_counter() - t0
    big = np.ones(32 * 1024 * 1024)  # 256 MB of float64
    t0 = time.perf_counter()
    for _ in range(40):
        big.sum()
    return time.perf_counter() - t0


def machine_check(rounds: int = 3) -> None:
    """Module docstring, 4.: each kernel alone and as a pair of processes, medians of rounds."""
    def launch(kind: str):
        return subprocess.Popen([sys.executable, __file__, "--_kernel", kind],
                                stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1",
                                     "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})

    print(f"\nthe cores themselves: one thread a process, medians of {rounds} rounds (s)")
    print(f"{'kernel':>36} {'alone':>7} {'pair (slower)':>14} {'slowdown':>9}")
    for label, kind in _KERNELS.items():
        alone, pair = [], []
        for _ in range(rounds):
            p = launch(kind)
            alone.append(float(p.communicate()[0]))
            ps = [launch(kind) for _ in range(2)]
            pair.append(max(float(q.communicate()[0]) for q in ps))
        a, b = float(np.median(alone)), float(np.median(pair))
        print(f"{label:>36} {a:7.2f} {b:14.2f} {b / a:8.2f}x", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--train-size", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--skip-contention", action="store_true")
    ap.add_argument("--worker-check", action="store_true",
                    help="only: one point alternately in this process and on a Dask worker")
    ap.add_argument("--machine-check", action="store_true",
                    help="only: the cores' own contention, without ghostnet (module docstring)")
    ap.add_argument("--command-cpu", action="store_true",
                    help="only: this process's CPU during a Dask sweep, both settings")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat the sweep comparison this many times, alternating; medians")
    ap.add_argument("--_kernel", help=argparse.SUPPRESS)
    ap.add_argument("--_split", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._kernel:
        print(_kernel(args._kernel))
        return
    if args._split:
        _split_worker(args._split[0], args._split[1], int(args._split[2]))
        return
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    if args.worker_check:
        worker_against_process(3000, 3)
        return
    if args.machine_check:
        machine_check()
        return
    with tempfile.TemporaryDirectory() as d:
        if args.command_cpu:
            command_cpu(Path(d), args.points, args.train_size, args.epochs, max(args.rounds, 3))
            return
        if not args.skip_contention:
            contention(Path(d), min(args.train_size, 3000), 4)
        throughput(Path(d), args.points, args.train_size, args.epochs, args.rounds)


if __name__ == "__main__":
    main()
