"""Sweeps: many training runs from one base configuration and the axes to vary, run on Dask (a
local cluster of single-threaded worker processes, a running scheduler, or a batch scheduler
through dask-jobqueue), resumable point by point, with a report over seeds (docs/sweeps.md).

A sweep file (TOML)::

    base = "experiments/configs/fashion_784-500-10.toml"   # relative to the sweep file, else cwd
    dirname = "{name}-s{seed}"        # optional: run directory names (default: varied values)
    [grid]
    seed = [0, 1, 2]                  # shorthand: [model] seed and [train] seed together
    [grid.model]
    beta = [0.01, 0.001]
    [grid.train]
    learner = ["ghost", "backprop"]
    [[points]]                        # optional explicit combinations, crossed with the grid
    name = "fa"
    train.learner = "fa"
    model.feedback = "random"
    [cluster]                         # optional: a dask-jobqueue cluster
    type = "slurm"
    jobs = 4
    cores = 8                         # ... any option of the jobqueue cluster class

The points are the cross product of the grid's values (and of the explicit points, when there are
any); every point's configuration is resolved and validated by :func:`load_sweep` before anything
runs. :func:`run_sweep` runs the points not finished yet, one run directory each under the sweep
directory, which also holds ``sweep.toml`` (the sweep file), ``index.csv`` (the points) and, at
the end, ``report.csv`` and ``report.md`` (:func:`write_report`).
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import io
import itertools
import math
import os
import re
import time
import tomllib
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from ghostnet.errors import GhostnetError
from ghostnet.io import atomic_write_text
from ghostnet.learning.settings import TrainConfig, TrainSettings
from ghostnet.learning.threads import cores, resolve, thread_env
from ghostnet.model.config import ConfigError, ModelConfig

SECTIONS = ("model", "train")
SEED_KEYS = ("seed", "model.seed", "train.seed")
"""Fields that the report averages over instead of grouping by."""
CLUSTER_TYPES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster",
                 "lsf": "LSFCluster", "oar": "OARCluster", "htcondor": "HTCondorCluster",
                 "moab": "MoabCluster"}
"""``[cluster] type`` -> the dask-jobqueue class it makes."""
TOP_KEYS = ("base", "dirname", "grid", "points", "cluster")
IGNORED_IN_RESUME = ("train.threads",)
"""Fields a rerun may change without it being another run: a finished point is skipped as it is;
an interrupted one resumes only at the thread count it started with (:func:`_check_directory`),
since another count changes the results' last bits."""
# Dask's periodic housekeeping, made rare on the clusters a sweep starts (the local one and the
# batch jobs of [cluster]): the workers' sampling profiler (every 10 ms) off, the event loops'
# tick (20 ms), the nannies' memory monitor (100 ms) and the system monitors (500 ms) every 5 s,
# work stealing off (a sweep's points wait at the scheduler until a worker is free). On 2 cores
# with 2 workers, Dask's defaults cost a point 11-27% at the median against 1-10% with these
# (docs/sweeps.md, "Measured").
DASK_QUIET = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "5s",
    "distributed.admin.tick.limit": "60s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "5s",
    "distributed.scheduler.work-stealing": False,
}


class SweepError(GhostnetError, ValueError):
    """An invalid sweep file or sweep directory; the message names the file, the point and the field."""


# ---- the run directory's state: the one place that knows how a run records it ------------------
def _point_status(out: str | Path) -> str | None:
    """The run directory's status as its manifest records it (:func:`ghostnet.learning.runs.
    run_status`): ``"finished"``, ``"interrupted"`` (resumable), ``"running"`` (another process
    holds it), ``"failed"`` (started again from scratch) or None (not started)."""
    from ghostnet.learning.runs import run_status

    return run_status(out)


# ---- the sweep file ------------------------------------------------------------------------------
@dataclass
class Point:
    """One run of a sweep: its directory name, the values it was given and its configuration."""

    index: int
    dirname: str
    values: dict[str, Any]
    """Field (``"model.beta"``, ``"train.learner"``, ``"seed"``) -> value, for the fields the grid
    and the explicit points set."""
    label: str = ""
    """The ``name`` of the explicit point it came from, if any."""
    config: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class Sweep:
    path: Path
    text: str
    base_path: Path
    points: list[Point]
    varied: list[str]
    """Fields that differ between points, in the order the sweep file names them."""
    cluster: dict = field(default_factory=dict)

    @property
    def group_fields(self) -> list[str]:
        """What the report groups by: the label and every varied field except the seeds."""
        labels = ["name"] if any(p.label for p in self.points) else []
        return labels + [k for k in self.varied if k not in SEED_KEYS]


def _field_names(section: str) -> set[str]:
    cls = ModelConfig if section == "model" else TrainSettings
    return {f.name for f in dataclasses.fields(cls)}


def _flatten(where: str, table: dict, allow_name: bool) -> dict[str, Any]:
    """``{"model": {"beta": x}, "seed": s}`` -> ``{"model.beta": x, "seed": s}``, checking names."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key == "seed":
            out["seed"] = value
        elif key in ("name", "base") and allow_name:
            if not isinstance(value, str) or not value:
                raise SweepError(f"{where}: '{key}' must be a non-empty string, got {value!r}")
            out[key] = value
        elif key in SECTIONS:
            if not isinstance(value, dict):
                raise SweepError(f"{where}: '{key}' must be a table of fields, got {value!r}")
            known = _field_names(key)
            for name, v in value.items():
                if name not in known:
                    raise SweepError(f"{where}: unknown field '{key}.{name}'; allowed in [{key}]: "
                                     f"{', '.join(sorted(known))}")
                out[f"{key}.{name}"] = v
        else:
            allowed = "seed, model, train" + (", name, base" if allow_name else "")
            raise SweepError(f"{where}: unknown key '{key}'; allowed: {allowed}")
    return out


def _parse_value(text: str) -> Any:
    """A ``--set`` value as TOML (``2``, ``0.5``, ``"ghost"``, ``[784, 10]``), else the bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["train.epochs=2", "seed=0"]`` -> ``{"train.epochs": 2, "seed": 0}``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SweepError(f"--set expects FIELD=VALUE (e.g. train.epochs=2), got {item!r}")
        out[key.strip()] = _parse_value(value.strip())
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "x".join(_fmt(v) for v in value)
    return str(value)


def _safe(name: str) -> str:
    """A directory name: letters, digits and ``. _ + - = ,`` kept, anything else ``_``."""
    return re.sub(r"[^A-Za-z0-9._+=,-]", "_", name).strip(".") or "_"


def _short_names(keys: list[str]) -> dict[str, str]:
    """``"model.beta"`` -> ``"beta"`` unless another key ends in the same field."""
    tails = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (t if tails.count(t) == 1 else k) for k, t in zip(keys, tails)}


def _resolve(base: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    m, t = dataclasses.asdict(base.model), dataclasses.asdict(base.train)
    for key, value in values.items():
        if key == "seed":
            m["seed"] = t["seed"] = value
        elif key.startswith("model."):
            m[key[6:]] = value
        elif key.startswith("train."):
            t[key[6:]] = value
    return TrainConfig(ModelConfig(**m), TrainSettings(**t)).validate()


def _read_toml(path: Path, what: str) -> tuple[str, dict]:
    if not path.is_file():
        raise SweepError(f"no {what} at {path}")
    text = path.read_text()
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{path}: not valid TOML ({exc})") from None


def _base_path(sweep_path: Path, base: Any) -> Path:
    if not isinstance(base, str) or not base:
        raise SweepError(f"{sweep_path}: 'base' must name a training config (TOML), got {base!r}")
    p = Path(base).expanduser()
    if p.is_absolute():
        return p
    beside = Path(os.path.normpath(sweep_path.parent / p))
    return beside if beside.exists() else p


def load_sweep(path: str | Path, overrides: dict[str, Any] | None = None,
               threads: int = 1) -> Sweep:
    """Read and check a sweep file and resolve every point's configuration.

    ``overrides`` (field -> value, e.g. ``{"train.epochs": 2}``) are set in every point, over the
    base, the grid and the explicit points (points that become the same are run once).
    ``threads`` is each point's ``[train] threads`` (1: a single-threaded worker each).
    Raises :class:`SweepError` naming the file, the point and the field."""
    path = Path(path)
    text, data = _read_toml(path, "sweep file")
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise SweepError(f"{path}: unknown key '{unknown[0]}'; allowed: {', '.join(TOP_KEYS)}")
    if "base" not in data:
        raise SweepError(f"{path}: no 'base' (the training config the points start from)")
    bases: dict[str, TrainConfig] = {}

    def load_base(where: str, name: Any) -> TrainConfig:
        """The training config ``name`` (the sweep's ``base`` or a point's), read once."""
        if name not in bases:
            p = _base_path(path, name)
            if not p.is_file():
                raise SweepError(f"{where}: base config {name!r} not found (looked beside the "
                                 f"sweep file and in {Path.cwd()})")
            try:
                bases[name] = TrainConfig.load(p)
            except ConfigError as exc:
                raise SweepError(f"{where}: base config {p}: {exc}") from None
        return bases[name]

    base_path = _base_path(path, data["base"])
    base = load_base(str(path), data["base"])

    grid = data.get("grid", {})
    if not isinstance(grid, dict):
        raise SweepError(f"{path}: [grid] must be a table")
    axes = _flatten(f"{path}: [grid]", grid, allow_name=False)
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"{path}: grid axis '{key}' must be a non-empty list of values, "
                             f"got {values!r}")
    explicit = data.get("points", [])
    if not isinstance(explicit, list) or not all(isinstance(p, dict) for p in explicit):
        raise SweepError(f"{path}: 'points' must be an array of tables ([[points]])")
    explicit = [_flatten(f"{path}: [[points]] number {i + 1}", p, allow_name=True)
                for i, p in enumerate(explicit)]
    for i, e in enumerate(explicit):  # a point's own base: read (and checked) before any point
        if "base" in e:
            load_base(f"{path}: [[points]] number {i + 1}", e["base"])
    for i, e in enumerate(explicit):
        both = sorted(set(e) & set(axes))
        if both:
            raise SweepError(f"{path}: [[points]] number {i + 1} sets '{both[0]}', which [grid] "
                             "varies too: set it in one place")
    for where, keys in [("[grid]", set(axes))] + [(f"[[points]] number {i + 1}", set(e))
                                                 for i, e in enumerate(explicit)]:
        if "seed" in keys and keys & {"model.seed", "train.seed"}:
            raise SweepError(f"{path}: {where} sets 'seed' (both seeds) and "
                             f"'{sorted(keys & {'model.seed', 'train.seed'})[0]}': set one")
    overrides = dict(overrides or {})
    for key in overrides:
        _flatten("--set", {key: None} if "." not in key else
                 {key.split(".", 1)[0]: {key.split(".", 1)[1]: None}}, allow_name=False)
    resolve(threads)

    combos = [dict(zip(axes, vals)) for vals in itertools.product(*axes.values())]
    rows = [{**e, **c} for e in (explicit or [{}]) for c in combos]
    fields = list(dict.fromkeys([k for k in axes] + [k for e in explicit for k in e
                                                     if k not in ("name", "base")]))
    points: list[Point] = []
    for i, row in enumerate(rows):
        label = row.pop("name", "")
        point_base = bases[row.pop("base")] if "base" in row else base
        values = {k: row[k] for k in fields if k in row}
        values.update({k: v for k, v in overrides.items() if k in values})
        settings = {**values, **overrides, "train.threads": threads}
        where = f"{path}: point {i + 1} ({label + ', ' if label else ''}" + \
            ", ".join(f"{k}={_fmt(v)}" for k, v in values.items()) + ")"
        try:
            cfg = _resolve(point_base, settings)
        except (ConfigError, TypeError) as exc:
            raise SweepError(f"{where}: {exc}") from None
        points.append(Point(i, "", values, label, cfg))

    varied = [k for k in fields if len({_fmt(p.values.get(k)) for p in points}) > 1]
    _name_points(path, data.get("dirname"), points, varied)
    # the same directory twice: one run if the configurations are the same, else an error
    unique: dict[str, Point] = {}
    for p in points:
        q = unique.get(p.dirname)
        if q is None:
            unique[p.dirname] = p
        elif q.config != p.config:
            raise SweepError(f"{path}: points {q.index + 1} and {p.index + 1} would share run "
                             f"directory '{p.dirname}' with different configurations: make "
                             "'dirname' name what tells them apart")
    points = list(unique.values())
    for i, p in enumerate(points):
        p.index = i
    cluster = data.get("cluster", {})
    if not isinstance(cluster, dict):
        raise SweepError(f"{path}: [cluster] must be a table")
    if cluster:
        _cluster_class(path, cluster)
    return Sweep(path, text, base_path, points, varied, cluster)


def _name_points(path: Path, template: Any, points: list[Point], varied: list[str]) -> None:
    short = _short_names(varied)
    if template is None:
        labelled = any(p.label for p in points)
        for p in points:
            parts = [p.label] if labelled else []
            parts += [f"{short[k]}={_fmt(p.values[k])}" for k in varied
                      if not (labelled and k not in _grid_keys(points, k))]
            p.dirname = _safe(",".join(parts) or "run")
        return
    if not isinstance(template, str) or not template:
        raise SweepError(f"{path}: 'dirname' must be a format string such as \"{{name}}-s{{seed}}\", "
                         f"got {template!r}")
    for p in points:
        m = SimpleNamespace(**dataclasses.asdict(p.config.model))
        t = SimpleNamespace(**dataclasses.asdict(p.config.train))
        names = {**vars(m), **vars(t), "model": m, "train": t, "name": p.label,
                 "seed": p.config.train.seed}
        names = {k: (_fmt(v) if not isinstance(v, SimpleNamespace) else
                     SimpleNamespace(**{a: _fmt(b) for a, b in vars(v).items()}))
                 for k, v in names.items()}
        try:
            p.dirname = _safe(template.format_map(names))
        except (KeyError, AttributeError, IndexError, ValueError) as exc:
            raise SweepError(f"{path}: 'dirname' {template!r}: no field {exc} (use a field of "
                             "[model] or [train], model.X, train.X, name or seed)") from None


def _grid_keys(points: list[Point], key: str) -> list[str]:
    """``[key]`` when ``key`` varies within one label (a grid axis), else ``[]``."""
    by_label: dict[str, set] = {}
    for p in points:
        by_label.setdefault(p.label, set()).add(_fmt(p.values.get(key)))
    return [key] if any(len(v) > 1 for v in by_label.values()) else []


def _cluster_class(path: Path, cluster: dict):
    kind = cluster.get("type")
    if kind not in CLUSTER_TYPES:
        raise SweepError(f"{path}: [cluster] type must be one of {', '.join(CLUSTER_TYPES)}, "
                         f"got {kind!r}")
    jobs = cluster.get("jobs", 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise SweepError(f"{path}: [cluster] jobs must be an integer >= 1, got {jobs!r}")
    import dask_jobqueue

    return getattr(dask_jobqueue, CLUSTER_TYPES[kind])


# ---- clusters --------------------------------------------------------------------------------------
def jobqueue_cluster(sweep: Sweep, threads: int = 1):
    """The dask-jobqueue cluster that ``[cluster]`` describes (not scaled yet): one single-threaded
    worker process per core unless ``processes`` is given, each starting its thread pools at
    ``threads`` threads (the job script exports the variables of :func:`thread_env`)."""
    opts = dict(sweep.cluster)
    cls = _cluster_class(sweep.path, opts)
    opts.pop("type")
    opts.pop("jobs", None)
    cores_ = opts.get("cores")
    if cores_ is not None and "processes" not in opts:
        opts["processes"] = max(1, int(cores_) // resolve(threads))
    prologue = [f"export {k}={v}" for k, v in {**thread_env(threads), **dask_env()}.items()]
    opts["job_script_prologue"] = prologue + list(opts.get("job_script_prologue", []))
    import dask

    try:
        with dask.config.set(DASK_QUIET):  # the scheduler, which runs in this process
            return cls(**opts)
    except (TypeError, ValueError) as exc:
        raise SweepError(f"{sweep.path}: [cluster]: {exc}") from None


def dask_env(config: dict | None = None) -> dict[str, str]:
    """``config`` (default :data:`DASK_QUIET`) as the environment variables Dask reads at import
    (``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False``): how a batch job's workers get it."""
    return {"DASK_" + k.upper().replace(".", "__").replace("-", "_"): str(v)
            for k, v in (DASK_QUIET if config is None else config).items()}


@functools.lru_cache(maxsize=2)
def _dataset(name: str, source: str):
    from ghostnet.learning.data import load

    return load(name, source or None)


def _undo_dask_malloc_trim() -> bool:
    """Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (its
    ``distributed.nanny.pre-spawn-environ``), and ghostnet then leaves glibc's heap as it is
    (ghostnet/__init__.py keeps a user's setting): batch-sized arrays are mapped and unmapped
    again, and an epoch takes twice as long (784-500-10, 3,000 samples, batch 20: 1.18 against
    0.61 s). On a Dask worker, set the thresholds ghostnet sets: 16 MB mmap, 64 MB trim."""
    value = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    if value is None or not os.uname().sysname == "Linux":
        return False
    try:
        import dask

        dask_value = dask.config.get("distributed.nanny.pre-spawn-environ", {}).get(
            "MALLOC_TRIM_THRESHOLD_")
    except ImportError:
        return False
    if dask_value is None or str(dask_value) != value:
        return False  # the user's own setting
    from ghostnet.runtime import set_malloc_thresholds

    return set_malloc_thresholds()


def run_point(config_toml: str, out: str, threads: int) -> dict:
    """Run (or resume, or skip) one point in its run directory; on any machine. Never raises:
    a failure comes back as ``{"status": "failed", "error": ...}`` and in ``out/error.txt``."""
    from ghostnet.learning.training import train

    t0 = time.perf_counter()
    _undo_dask_malloc_trim()
    status = _point_status(out)
    base = {"pid": os.getpid(), "host": os.uname().nodename}
    if status == "finished":
        return {**base, "status": "finished", "skipped": True, "seconds": 0.0}
    try:
        cfg = TrainConfig.from_toml(config_toml)
        data = _dataset(cfg.train.dataset, cfg.train.data_source)
        Path(out, "error.txt").unlink(missing_ok=True)  # the last attempt's: this one replaces it
        train(cfg, out, resume=status == "interrupted", overwrite=status == "failed", data=data,
              progress=False, threads=threads)
    except Exception as exc:  # one failed point must not stop the others
        Path(out).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(out) / "error.txt", traceback.format_exc())
        return {**base, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "seconds": time.perf_counter() - t0}
    Path(out, "error.txt").unlink(missing_ok=True)
    return {**base, "status": "finished", "skipped": False, "resumed": status == "interrupted",
            "seconds": time.perf_counter() - t0}


def _check_directory(sweep: Sweep, out: Path) -> None:
    """A run directory that holds another configuration is an error, before any work."""
    for p in sweep.points:
        saved = out / p.dirname / "config.toml"
        if not saved.is_file():
            continue
        try:
            old = TrainConfig.from_toml(saved.read_text())
        except (ConfigError, ValueError) as exc:
            raise SweepError(f"point {p.index + 1} ({p.dirname}): {saved} is not a valid config "
                             f"({exc})") from None
        diff = old.changes(p.config, ignore=IGNORED_IN_RESUME)
        if diff:
            k, was, now = diff[0]
            raise SweepError(f"point {p.index + 1} ({p.dirname}): {out / p.dirname} holds a run "
                             f"with {k} = {was!r}, this sweep sets {now!r}; remove that "
                             "directory or choose another --out")
        # a thread count changes the last bits (BLAS and Numba sum in another order), so an
        # interrupted run resumes at the one it started with, or not at all
        if (old.train.threads != p.config.train.threads
                and _point_status(out / p.dirname) == "interrupted"):
            raise SweepError(f"point {p.index + 1} ({p.dirname}): its interrupted run in "
                             f"{out / p.dirname} started with train.threads = "
                             f"{old.train.threads}, this sweep gives {p.config.train.threads}; "
                             f"rerun with --threads {old.train.threads} to resume it (another "
                             "thread count changes the results' last bits)")


def write_index(sweep: Sweep, out: Path) -> None:
    """``sweep.toml`` (the sweep file as given) and ``index.csv`` (one row a point) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "sweep.toml", sweep.text)
    buf = io.StringIO()
    w = csv.writer(buf)
    labelled = any(p.label for p in sweep.points)
    w.writerow(["point", "dir"] + (["name"] if labelled else []) + sweep.varied)
    for p in sweep.points:
        w.writerow([p.index + 1, p.dirname] + ([p.label] if labelled else []) +
                   [_fmt(p.values.get(k, "")) for k in sweep.varied])
    atomic_write_text(out / "index.csv", buf.getvalue())


@dataclass
class Progress:
    """Counts of points; ``show`` is called with it whenever it changes."""

    total: int
    done: int = 0
    running: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def left(self) -> int:
        return self.total - self.done - self.failed - self.running


def run_sweep(sweep: Sweep, out: str | Path, workers: int | None = None,
              scheduler: str | None = None, threads: int = 1, progress: bool = True,
              log: Callable[[str], None] = print, client=None) -> list[dict]:
    """Run every point of ``sweep`` not finished yet in ``out/<dirname>`` and write the report.

    Where: ``client`` (a ``distributed.Client``), else ``scheduler`` (``tcp://HOST:PORT`` of a
    running Dask scheduler), else the sweep's ``[cluster]`` (dask-jobqueue), else a LocalCluster
    of ``workers`` single-threaded worker processes (default: one per core); ``workers=0`` runs
    the points one after another in this process, without Dask. Returns one result per point
    (``status``: finished or failed, ``error``, ``seconds``, ``skipped``)."""
    out = Path(out)
    _check_directory(sweep, out)
    write_index(sweep, out)
    results: dict[int, dict] = {}
    todo = []
    for p in sweep.points:
        if _point_status(out / p.dirname) == "finished":
            results[p.index] = {"status": "finished", "skipped": True, "seconds": 0.0}
        else:
            todo.append(p)
    state = Progress(len(sweep.points), done=len(results), skipped=len(results))
    if state.skipped:
        log(f"{state.skipped} of {state.total} points finished before; skipped")
    if todo:
        if workers == 0 and client is None and scheduler is None:
            _run_here(todo, out, threads, results, state, progress)
        else:
            _run_dask(sweep, todo, out, threads, results, state, progress, log, workers,
                      scheduler, client)
    write_report(out, sweep_results=results)
    for i, r in sorted(results.items()):
        if r["status"] == "failed":
            log(f"point {i + 1} ({sweep.points[i].dirname}) failed: {r['error']}")
    return [results[p.index] for p in sweep.points]


def _bar(state: Progress, progress: bool):
    from tqdm.auto import tqdm

    bar = tqdm(total=state.total, initial=state.done, desc="points", disable=not progress,
               unit="pt", dynamic_ncols=True)

    def show():
        bar.n = state.done + state.failed
        bar.set_postfix_str(f"done {state.done}, running {state.running}, failed {state.failed}, "
                            f"left {state.left}")
    show()
    return bar, show


def _run_here(todo, out, threads, results, state, progress):
    bar, show = _bar(state, progress)
    try:
        for p in todo:
            state.running = 1
            show()
            r = run_point(p.config.to_toml(), str(out / p.dirname), threads)
            results[p.index] = r
            state.running = 0
            state.done += r["status"] == "finished"
            state.failed += r["status"] == "failed"
            show()
    finally:
        bar.close()


@contextlib.contextmanager
def _local_cluster(workers: int | None, threads: int, config: dict | None = None):
    """A local cluster of ``workers`` single-process workers with ``threads`` threads each and
    Dask's ``config`` (default :data:`DASK_QUIET`; ``{}`` for Dask's own), closed on exit."""
    import dask
    from distributed import LocalCluster

    env = thread_env(threads)
    saved = {k: os.environ.get(k) for k in env}
    # the worker processes must start with these (BLAS reads them once, at import); Dask sets
    # pre-spawn variables in this process's environment too (again at every worker's restart),
    # which are put back once the cluster is closed
    spawn = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **env}
    spawn.pop("MALLOC_TRIM_THRESHOLD_", None)  # ghostnet tunes glibc itself (_undo_dask_malloc_trim)
    config = DASK_QUIET if config is None else config
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": spawn, **config}):
            cluster = LocalCluster(n_workers=workers or max(1, cores() // resolve(threads)),
                                   threads_per_worker=1, processes=True, env=env,
                                   dashboard_address=":8787" if _has_bokeh() else None)
        with cluster:
            yield cluster
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _has_bokeh() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True


def _run_dask(sweep, todo, out, threads, results, state, progress, log, workers, scheduler, client):
    from distributed import Client, wait

    with contextlib.ExitStack() as stack:  # closes the client, then the cluster it started
        cluster = None
        if client is None:
            if scheduler:
                client = stack.enter_context(Client(scheduler))
            elif sweep.cluster:
                cluster = stack.enter_context(jobqueue_cluster(sweep, threads))
                cluster.scale(jobs=sweep.cluster.get("jobs", 1))
                client = stack.enter_context(Client(cluster))
            else:
                cluster = stack.enter_context(_local_cluster(workers, threads))
                client = stack.enter_context(Client(cluster))
        where = scheduler or (type(cluster).__name__ if cluster is not None else "client")
        n = len(client.nthreads())
        log(f"{len(todo)} points on Dask ({where}, {n} worker{'s' if n != 1 else ''} now)"
            + (f"; dashboard {client.dashboard_link}" if _has_bokeh() and client.dashboard_link
               else ""))
        futures = {client.submit(run_point, p.config.to_toml(), str((out / p.dirname).resolve()),
                                 threads, key=f"ghostnet-point-{p.dirname}-{time.time_ns()}",
                                 pure=False): p for p in todo}
        bar, show = _bar(state, progress)
        pending = set(futures)
        try:
            while pending:
                try:
                    wait(pending, timeout=1, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    pass
                finished = {f for f in pending if f.done()}
                pending -= finished
                for f in finished:
                    p = futures[f]
                    try:
                        r = f.result()
                    except Exception as exc:  # KilledWorker after too many deaths, lost scheduler
                        r = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                             "seconds": math.nan}
                    results[p.index] = r
                    state.done += r["status"] == "finished"
                    state.failed += r["status"] == "failed"
                state.running = _running(client, pending)
                show()
        finally:
            bar.close()


def _running(client, pending) -> int:
    """Points being computed now: on each worker, at most as many as it has threads."""
    if not pending:
        return 0
    keys = {f.key for f in pending}
    try:
        processing, nthreads = client.processing(), client.nthreads()
    except Exception:  # the scheduler is going away
        return 0
    return sum(min(len(keys.intersection(tasks)), nthreads.get(w, 1))
               for w, tasks in processing.items())


# ---- the report ------------------------------------------------------------------------------------
REPORT_FIELDS = ["point", "dir", "status", "epochs", "final_test_error_pct", "selected_epoch",
                 "selected_val_error_pct", "selected_test_error_pct", "best_test_error_pct",
                 "final_mean_angle_deg", "seconds_per_epoch", "error"]


def _read_index(out: Path) -> tuple[list[dict], list[str]]:
    path = out / "index.csv"
    if not path.is_file():
        raise SweepError(f"{out} is not a sweep directory (no index.csv)")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        fields = [f for f in (reader.fieldnames or []) if f not in ("point", "dir")]
    return rows, fields


def _mean_sd(values: list[float], signed: bool = False) -> str:
    v = np.array([x for x in values if x == x], dtype=float)
    sign = "+" if signed else ""
    if len(v) == 0:
        return ""
    if len(v) == 1:  # one run has no spread to give
        return f"{v[0]:{sign}.2f}"
    return f"{v.mean():{sign}.2f} +- {v.std(ddof=1):.2f}"


def _values_by(rows: list[dict], key: str, field: str) -> dict[str, set]:
    out: dict[str, set] = {}
    for r in rows:
        out.setdefault(r[key], set()).add(r[field])
    return out


def _report_rows(out: Path, sweep_results: dict[int, dict] | None = None
                 ) -> tuple[list[dict], list[str]]:
    """One row a point of the sweep directory ``out`` (from its run directory) and the varied
    fields of its ``index.csv``."""
    from ghostnet.learning.training import select_model

    index, fields = _read_index(out)
    rows = []
    for i, entry in enumerate(index):
        run = out / entry["dir"]
        status = _point_status(run) or "not started"
        row = {**{k: entry[k] for k in fields}, "point": int(entry["point"]), "dir": entry["dir"],
               "status": status, "epochs": 0, "final_test_error_pct": math.nan,
               "selected_epoch": "", "selected_val_error_pct": math.nan,
               "selected_test_error_pct": math.nan,
               "best_test_error_pct": math.nan, "final_mean_angle_deg": math.nan,
               "seconds_per_epoch": math.nan, "error": ""}
        r = (sweep_results or {}).get(i, {})
        if r.get("status") == "failed":
            row["status"], row["error"] = "failed", r.get("error", "")
        elif status != "finished" and (run / "error.txt").is_file():
            row["status"] = "failed"
            row["error"] = (run / "error.txt").read_text().strip().splitlines()[-1]
        metrics = run / "metrics.csv"
        if metrics.is_file():
            with open(metrics, newline="") as fh:
                m = list(csv.DictReader(fh))
            if m:
                errs = [100 * (1 - float(x["test_acc"])) for x in m]
                angle = m[-1].get("mean_angle_deg", "")
                row.update(epochs=len(m), final_test_error_pct=errs[-1],
                           best_test_error_pct=min(errs),
                           final_mean_angle_deg=float(angle) if angle else math.nan,
                           seconds_per_epoch=float(np.mean([float(x["seconds"]) for x in m])))
                sel = select_model([{"epoch": int(x["epoch"]), "test_acc": float(x["test_acc"]),
                                     "val_acc": float(x["val_acc"]) if x["val_acc"] else ""}
                                    for x in m])["selected"]  # on the validation split
                if sel:
                    row.update(selected_epoch=sel["epoch"],
                               selected_val_error_pct=100 * (1 - sel["val_acc"]),
                               selected_test_error_pct=100 * (1 - sel["test_acc"]))
        rows.append(row)
    return rows, fields


def _parse_versus(versus: str | list[str] | None, rows: list[dict], fields: list[str]
                  ) -> list[tuple[str, str]]:
    """``["name=backprop", ...]`` (or one string) -> ``[("name", "backprop"), ...]``, checked
    against the points."""
    out = []
    for item in [versus] if isinstance(versus, str) else (versus or []):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise SweepError(f"--versus {item!r}: give FIELD=VALUE, e.g. name=backprop")
        if key not in fields or key in SEED_KEYS:
            raise SweepError(f"--versus {item!r}: {key} is not a varied field of the sweep "
                             f"(varied: {', '.join(f for f in fields if f not in SEED_KEYS)})")
        if not any(r[key] == value for r in rows):
            raise SweepError(f"--versus {item!r}: no point has {key} = {value} (it has "
                             f"{', '.join(sorted({r[key] for r in rows}))})")
        out.append((key, value))
    return out


def _versus_column(versus: tuple[str, str]) -> str:
    return f"versus_diff_pct:{versus[0]}={versus[1]}"


def _paired(rows: list[dict], fields: list[str], versus: tuple[str, str]) -> None:
    """Each row's difference from ``versus`` (its :func:`_versus_column`): its test error at the
    best validation epoch (the final test error for runs without a validation split) less that
    of the point with ``versus``'s value and the same seeds and other grouped fields (the same
    initial weights and data order)."""
    key, value = versus
    # the partner: the same seeds and the same values of the fields grouped by besides the name
    # (which names the learner, not the setting it is compared in)
    same = [f for f in _group_fields(rows, fields) + list(SEED_KEYS) if f not in (key, "name")]
    refs: dict[tuple, dict] = {}
    for r in rows:
        if r[key] == value and r["status"] == "finished":
            other = refs.setdefault(tuple(r.get(f, "") for f in same), r)
            if other is not r:
                raise SweepError(f"--versus {key}={value}: {other['dir']} and {r['dir']} both "
                                 f"have {key} = {value} and the same seeds; name one point "
                                 "(--versus name=...)")

    def error(r):
        e = r["selected_test_error_pct"]
        return r["final_test_error_pct"] if isinstance(e, float) and math.isnan(e) else e

    for r in rows:
        ref = refs.get(tuple(r.get(f, "") for f in same))
        r[_versus_column(versus)] = (error(r) - error(ref) if ref is not None and ref is not r
                                     and r["status"] == "finished" else math.nan)


def _write_report(dest: Path, rows: list[dict], fields: list[str],
                  versus: list[tuple[str, str]] = ()) -> None:
    """``dest/report.csv`` (the rows) and ``dest/report.md`` (grouped over the seeds); with
    ``versus``, the differences from its points paired by seed (:func:`_paired`)."""
    order = ["point", "dir"] + fields + [k for k in REPORT_FIELDS if k not in ("point", "dir")]
    for v in versus:
        _paired(rows, fields, v)
        order.append(_versus_column(v))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=order, extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else
                        (f"{v:.4f}" if isinstance(v, float) else v)) for k, v in row.items()})
    atomic_write_text(dest / "report.csv", buf.getvalue())

    head = _group_fields(rows, fields) + [
        "seeds", "epochs", "final test error % (mean +- sd)", "best validation error %",
        "test error % at best validation epoch", "lowest test error % over epochs",
        "mean angle to backprop, deg", "s/epoch", "not finished"]
    for v in versus:
        head.insert(-3, f"test error - {v[1]}'s, same seeds (points)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, sel in _groups(rows, fields).items():
        fin = [r for r in sel if r["status"] == "finished"]
        epochs = sorted({r["epochs"] for r in fin})
        cells = list(key) + [
            str(len(fin)), "/".join(map(str, epochs)),
            _mean_sd([r["final_test_error_pct"] for r in fin]),
            _mean_sd([r["selected_val_error_pct"] for r in fin]),
            _mean_sd([r["selected_test_error_pct"] for r in fin]),
            _mean_sd([r["best_test_error_pct"] for r in fin]),
            _mean_sd([r["final_mean_angle_deg"] for r in fin]),
            f"{np.mean([r['seconds_per_epoch'] for r in fin]):.1f}" if fin else "",
            str(len(sel) - len(fin)) if len(sel) > len(fin) else ""]
        for v in versus:
            diffs = [r[_versus_column(v)] for r in fin]
            n = sum(d == d for d in diffs)
            cells.insert(-3, _mean_sd(diffs, signed=True) + (f" ({n})" if 0 < n < len(fin) else ""))
        lines.append("| " + " | ".join(cells) + " |")
    atomic_write_text(dest / "report.md", "\n".join(lines) + "\n")


def _group_fields(rows: list[dict], fields: list[str]) -> list[str]:
    """What the report groups by: every varied field except the seeds; with named points the
    name and the fields that the name does not already tell."""
    group = [f for f in fields if f not in SEED_KEYS]
    if "name" in group:
        group = ["name"] + [f for f in group if f != "name" and any(
            len(v) > 1 for v in _values_by(rows, "name", f).values())]
    return group


def _groups(rows: list[dict], fields: list[str]) -> dict[tuple, list[dict]]:
    group = _group_fields(rows, fields)
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[f] for f in group), []).append(row)
    return groups


def write_report(out: str | Path, sweep_results: dict[int, dict] | None = None,
                 versus: str | list[str] | None = None) -> list[dict]:
    """``report.csv`` (one row a point, from its run directory) and ``report.md`` (grouped by
    every varied field except the seeds: mean +- sd over seeds of the final test error, of the
    test error at the epoch of the best validation accuracy (runs with a validation split), of the
    lowest test error over the epochs, and of the final mean angle to backprop) in the sweep
    directory ``out``. ``versus = "name=backprop"`` (or a list of such) adds each point's
    difference in test error from the point with that value and the same seeds (in report.md,
    mean +- sd of the paired differences)."""
    out = Path(out)
    rows, fields = _report_rows(out, sweep_results)
    _write_report(out, rows, fields, _parse_versus(versus, rows, fields))
    return rows


EXECUTION_KEYS = (*IGNORED_IN_RESUME, "model.device")
"""Fields that say where a run ran and on how many threads, not what it computes (beyond the
last bits): :func:`combine_reports` groups runs that differ in them."""


def _run_config(run: Path) -> TrainConfig | None:
    """A run directory's resolved configuration (fields an older ghostnet did not write take
    their defaults), or None before the run has started."""
    path = run / "config.toml"
    if not path.is_file():
        return None
    try:
        return TrainConfig.from_toml(path.read_text())
    except (ConfigError, ValueError) as exc:
        raise SweepError(f"{path} is not a valid config ({exc})") from None


def _flat(config: TrainConfig) -> dict[str, Any]:
    """``{"model.beta": 0.01, ...}``: a configuration by the field names a sweep varies."""
    return {f"{sec}.{k}": v for sec, table in config.to_dict().items() for k, v in table.items()}


def combine_reports(dirs: list[str | Path], out: str | Path,
                    versus: str | list[str] | None = None) -> list[dict]:
    """``report.csv`` and ``report.md`` in ``out`` over the points of several sweep directories
    (more seeds of a sweep run into another directory, say), grouped as :func:`write_report`
    groups one sweep's. The varied fields are read from each run's resolved configuration, so
    sweeps that varied different fields line up; the runs of a group must have the same
    configuration except for their seeds and :data:`EXECUTION_KEYS`, and no run may come twice
    (a :class:`SweepError` names the two run directories and the field). ``versus`` as for
    :func:`write_report`."""
    out = Path(out)
    dirs = [Path(d) for d in dirs]
    if not dirs:
        raise SweepError("give at least one sweep directory to report on")
    for d in dirs:
        if d.resolve() == out.resolve():
            raise SweepError(f"{out}: the combined report would replace the report of the sweep "
                             "directory itself; give another --out")
    rows, fields = [], []
    for d in dirs:
        some, varied = _report_rows(d)
        fields += [f for f in varied if f not in fields]
        same = {}  # the points of one sweep that differ only in their seeds share a configuration
        for row in some:
            run = d / row["dir"]
            row["_run"], row["_config"] = run, _run_config(run)
            row["dir"] = os.path.relpath(run, out)
            row["_same"] = tuple(row[f] for f in varied if f not in SEED_KEYS)
            if row["_config"] is not None:
                same.setdefault(row["_same"], _flat(row["_config"]))
        for row in some:  # a point not started yet: its fields from a started sibling's
            row["_fill"] = (_flat(row["_config"]) if row["_config"] is not None
                            else same.get(row["_same"], {}))
        rows += some
    for row in rows:  # none started in its sweep: what the started points of its name agree on
        if not row["_fill"] and row.get("name"):
            known = [r["_fill"] for r in rows if r["_fill"] and r.get("name") == row["name"]]
            row["_fill"] = {f: known[0][f] for f in fields if known and f in known[0]
                            and all(k.get(f) == known[0][f] for k in known)}
    for i, row in enumerate(rows):
        row["point"] = i + 1
        config = row["_fill"]
        for f in fields:  # a field another sweep varied: this run's value, from its config
            if f in config:
                row[f] = _fmt(config[f])
            else:
                row.setdefault(f, "")
    for key, sel in _groups(rows, fields).items():
        first: dict[tuple, Path] = {}
        ref = None
        for row in sel:
            config = row["_config"]
            if config is None:  # not started: nothing to compare yet
                continue
            seeds = (config.model.seed, config.train.seed)
            if seeds in first:
                raise SweepError(f"{first[seeds]} and {row['_run']}: the same point "
                                 f"({', '.join(k for k in key if k) or 'the sweep'}) with the "
                                 f"same seeds twice; a combined report counts a run once")
            first[seeds] = row["_run"]
            if ref is None:
                ref = row
                continue
            diff = ref["_config"].changes(config, ignore=SEED_KEYS + EXECUTION_KEYS)
            if diff:
                k, a, b = diff[0]
                raise SweepError(
                    f"{ref['_run']} and {row['_run']} fall in one group of the report but "
                    f"differ in {k} ({_fmt(a)} and {_fmt(b)}); a combined report averages "
                    "only runs of one configuration")
    for row in rows:
        for k in ("_run", "_config", "_same", "_fill"):
            del row[k]
    versus = _parse_versus(versus, rows, fields)
    out.mkdir(parents=True, exist_ok=True)
    _write_report(out, rows, fields, versus)
    return rows
