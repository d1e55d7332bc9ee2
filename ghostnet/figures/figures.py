"""The paper's figures (docs/model.md §11), drawn from saved results only.

Each figure reads the tidy CSVs its experiment wrote under a results folder (``results/`` by
default; ``python experiments/run_all.py`` writes them all) and is saved as PNG and PDF. A missing,
empty or corrupt results file raises :class:`ResultsError` naming the file and the experiment that
writes it; nothing is ever recomputed here.
"""
from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from ghostnet.errors import GhostnetError
from ghostnet.learning.runs import finished_runs

# figure name -> (caption, [(results file relative to the results folder, required columns)], command)
FIGURES = {
    "traces": (
        "E5: potential, top-down input, ghost inhibition and local error of three neurons per layer "
        "across the free phase and the nudged phase (copy ghosts, tau_g = tau).",
        [("traces/traces.csv", ("phase", "time", "layer", "neuron", "quantity", "value"))],
        "python experiments/traces.py",
    ),
    "cancellation": (
        "E1/E4: free-phase top-down input along the trajectory for copy ghosts (zero for tau_g = "
        "tau) and learned ghosts; cancellation residual and angle to backprop during pre-training.",
        [("cancellation/trajectory.csv", ("condition", "time", "layer", "max_abs_t")),
         ("cancellation/pretraining.csv", ("noise", "samples", "layer", "residual", "angle_deg"))],
        "python experiments/cancellation.py",
    ),
    "gradients_beta": (
        "E2: angle and norm ratio between the local update and backprop (feedback alignment for "
        "random feedback) against beta, per mechanism and feedback (20-30-25-15-5).",
        [("gradients/gradients.csv", ("sweep", "variant", "beta", "seed", "layer", "angle_deg", "norm_ratio"))],
        "python experiments/gradients.py",
    ),
    "gradients_settling": (
        "E2: angle to the reference against settling time per phase (dynamics mode, beta = 0.01).",
        [("gradients/gradients.csv", ("sweep", "variant", "settle_time", "seed", "layer", "angle_deg"))],
        "python experiments/gradients.py",
    ),
    "gradients_depth": (
        "E2: angle to the reference against depth, per layer counted from the output (beta = 0.01).",
        [("gradients/gradients.csv", ("sweep", "variant", "depth", "seed", "layer", "angle_deg"))],
        "python experiments/gradients.py",
    ),
    "transfer_beta": (
        "E2 / property 2: largest per-layer angle to backprop against beta for each transfer "
        "function and depth (copy, symmetric).",
        [("angle_vs_beta/angles.csv", ("transfer", "depth", "beta", "seed", "layer", "angle_deg"))],
        "python experiments/angle_vs_beta.py",
    ),
    "learning": (
        "E3/E4: Fashion-MNIST test error per epoch (mean and spread over seeds) of the ghost "
        "variants, backprop and feedback alignment, and the ghost learners' mean angle to backprop.",
        [("table/*/*/metrics.csv", ("epoch", "test_acc", "mean_angle_deg"))],
        "ghostnet sweep experiments/sweeps/table_784-500-10.toml "
        "--out results/table/fashion_784-500-10",
    ),
    "feedback_alignment": (
        "Feedback: angle between B_l and W_{l+1}^T and between the update and backprop during "
        "training, with fixed random and with plastic (Kolen-Pollack) feedback.",
        [("feedback_alignment/feedback_alignment.csv",
          ("condition", "step", "layer", "angle_B_WT_deg", "angle_update_backprop_deg"))],
        "python experiments/feedback_alignment.py",
    ),
}

COLUMN_WIDTH = 3.5  # inches: one column of a two-column paper
PAGE_WIDTH = 7.0


class ResultsError(GhostnetError, RuntimeError):
    """Saved results are missing, empty or corrupt."""


# ---- reading -------------------------------------------------------------------------------------
def _parse(value: str):
    if value == "" or value is None:
        return math.nan
    try:
        return float(value)
    except ValueError:
        return {"True": True, "False": False}.get(value, value)


def read_table(path: Path, columns, command: str) -> list[dict]:
    """Rows of a results CSV with numbers parsed; ResultsError when it is missing, empty, corrupt
    or lacks one of ``columns``."""
    hint = f"run `{command}` (or `python experiments/run_all.py`) to make it"
    if not path.is_file():
        raise ResultsError(f"missing results file {path}: {hint}")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            raw = list(reader)
    except (csv.Error, UnicodeDecodeError, OSError) as exc:
        raise ResultsError(f"corrupt results file {path} ({exc}): {hint}") from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise ResultsError(f"corrupt results file {path}: no column(s) {', '.join(missing)}: {hint}")
    if not raw:
        raise ResultsError(f"empty results file {path}: {hint}")
    if any(None in row or any(v is None for v in row.values()) for row in raw):
        raise ResultsError(f"corrupt results file {path} (rows of the wrong length): {hint}")
    return [{k: _parse(v) for k, v in row.items()} for row in raw]


def _load(results: Path, name: str, skipped: list | None = None) -> list[list[dict]]:
    _, files, command = FIGURES[name]
    out = []
    for rel, columns in files:
        if "*" in rel:
            # training runs: only finished ones (ghostnet.learning.runs.run_status), not one
            # still going, interrupted or failed; the others are listed in ``skipped``
            dirs = [p for p in sorted(results.glob(str(Path(rel).parent))) if p.is_dir()]
            done, other = finished_runs(dirs)
            if skipped is not None:
                skipped.extend((p, s) for p, s in other if s != "empty")
            paths = [p / Path(rel).name for p in done]
            if not paths:
                raise ResultsError(f"no finished runs matching {results / rel}: run `{command}` "
                                   "(or `python experiments/run_all.py`) to make them")
            rows = []
            for p in paths:
                for row in read_table(p, columns, command):
                    row["_run"] = p.parent
                    rows.append(row)
            out.append(rows)
        else:
            out.append(read_table(results / rel, columns, command))
    return out


def _group(rows, *keys) -> dict:
    """Rows by the values of ``keys``, groups in order of first appearance."""
    groups = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in keys)].append(r)
    return dict(groups)


def _spread(rows, x_key, y_key, transform=None):
    """x values and the mean, min and max of y over the rows sharing each x (e.g. over seeds)."""
    by_x = defaultdict(list)
    for r in rows:
        y = r[y_key]
        if isinstance(y, float) and math.isnan(y):
            continue
        by_x[r[x_key]].append(transform(y) if transform else y)
    xs = sorted(by_x)
    ys = [np.asarray(by_x[x], dtype=float) for x in xs]
    return (np.asarray(xs, dtype=float), np.array([y.mean() for y in ys]),
            np.array([y.min() for y in ys]), np.array([y.max() for y in ys]))


# ---- drawing -------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7,
                         "legend.fontsize": 6, "xtick.labelsize": 6, "ytick.labelsize": 6,
                         "lines.linewidth": 1.0, "axes.spines.top": False,
                         "axes.spines.right": False, "savefig.bbox": "tight"})
    return plt


def _band(ax, x, mean, lo, hi, label, **kw):
    (line,) = ax.plot(x, mean, label=label, **kw)
    if np.any(hi > lo):
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    return line


def draw_traces(plt, tables):
    (rows,) = tables
    quantities = [("u", "potential $u_l$"), ("t", "top-down input $t_l$"),
                  ("inhibition", "ghost inhibition $H_l\\,\\phi(v_l)$"), ("e", "local error $e_l$")]
    fig, axes = plt.subplots(len(quantities), 1, figsize=(COLUMN_WIDTH, 5.2), sharex=True)
    layers = sorted({int(r["layer"]) for r in rows})
    onset = min(r["time"] for r in rows if r["phase"] == "nudged")
    top = max(layers)
    for ax, (q, label) in zip(axes, quantities):
        for li, layer in enumerate(layers):
            sel = [r for r in rows if r["quantity"] == q and r["layer"] == layer]
            color = f"C{li}"
            for k, ((neuron,), nrows) in enumerate(_group(sel, "neuron").items()):
                t = [r["time"] for r in nrows]
                name = "output" if layer == top else f"layer {layer}"
                ax.plot(t, [r["value"] for r in nrows], color=color, alpha=0.85,
                        label=name if k == 0 else None)
        ax.axvline(onset, color="0.4", linestyle="--", linewidth=0.7)
        ax.set_ylabel(label)
    axes[0].text(onset, 1.0, " target on", transform=axes[0].get_xaxis_transform(), fontsize=6,
                 va="top", color="0.3")
    axes[0].legend(ncol=2, frameon=False, loc="lower right")
    axes[-1].set_xlabel("time ($\\tau$)")
    axes[0].set_title("free phase, then nudged phase (3 neurons per layer)")
    return fig


def draw_cancellation(plt, tables):
    traj, pre = tables
    fig, axes = plt.subplots(1, 3, figsize=(PAGE_WIDTH, 2.3))
    floor = 1e-17
    ax = axes[0]
    for k, ((cond,), rows) in enumerate(_group(traj, "condition").items()):
        by_t = defaultdict(float)
        for r in rows:
            by_t[r["time"]] = max(by_t[r["time"]], r["max_abs_t"])
        ts = sorted(by_t)
        vals = np.array([by_t[t] for t in ts])
        label = cond + (" (exactly 0)" if vals.max() == 0 else "")
        ax.semilogy(ts, np.maximum(vals, floor), label=label, color=f"C{k}")
    ax.set_ylim(floor / 3, None)
    ax.set_xlabel("time in the free phase ($\\tau$)")
    ax.set_ylabel("max$_{l,i}\\,|t_l|$ (floor $10^{-17}$)")
    ax.set_title("a: top-down input without target")
    ax.legend(frameon=False, fontsize=5)
    # solid: pre-training as docs/model.md §5 has it; dashed: with exploration noise (first half;
    # the residual of noisy phases includes the noise)
    style = {0.0: "-"}
    for noise in sorted({float(r["noise"]) for r in pre}):
        style.setdefault(noise, "--")
    hist = [r for r in pre if not (isinstance(r["residual"], float) and math.isnan(r["residual"]))]
    for (noise, layer), rows in _group(hist, "noise", "layer").items():
        rows = sorted(rows, key=lambda r: r["samples"])
        n = np.array([r["samples"] for r in rows])
        res = np.array([r["residual"] for r in rows])
        w = min(5, len(res))
        smooth = np.convolve(res, np.ones(w) / w, mode="valid")
        axes[1].semilogy(n[w - 1:], smooth, style[float(noise)], color=f"C{int(layer) - 1}",
                         label=f"layer {int(layer)}" if float(noise) == 0 else None)
    axes[1].set_xlabel("pre-training samples")
    axes[1].set_ylabel("residual $|t_l| / |B_l r_{l+1}|$")
    axes[1].set_title("b: learned ghosts, pre-training")
    if len(style) > 1:
        axes[1].plot([], [], "k--", label=f"noise {max(style):g}, first half")
    axes[1].legend(frameon=False, fontsize=5)
    probes = [r for r in pre if not (isinstance(r["angle_deg"], float) and math.isnan(r["angle_deg"]))]
    top = max(int(r["layer"]) for r in probes)
    for (noise, layer), rows in _group(probes, "noise", "layer").items():
        rows = sorted(rows, key=lambda r: r["samples"])
        label = "output" if int(layer) == top else f"layer {int(layer)}"
        axes[2].semilogy([r["samples"] for r in rows], [r["angle_deg"] for r in rows], style[float(noise)],
                         marker=".", color=f"C{int(layer) - 1}",
                         label=label if float(noise) == 0 else None)
    axes[2].set_xlabel("pre-training samples")
    axes[2].set_ylabel("angle to backprop (deg)")
    axes[2].set_title("c: update vs backprop ($\\beta$ = 0.01)")
    axes[2].legend(frameon=False, loc="center right", bbox_to_anchor=(1.0, 0.4))
    for ax in axes[1:]:
        ax.set_xscale("symlog", linthresh=100)
        ax.set_xlim(0, None)
    fig.tight_layout()
    return fig


def _per_variant(plt, rows, sweep, x_key, xlabel, logx=True, norm_row=False, title=""):
    rows = [r for r in rows if r["sweep"] == sweep]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    nrows = 2 if norm_row else 1
    fig, axes = plt.subplots(nrows, len(variants), figsize=(PAGE_WIDTH, 2.0 * nrows + 0.3),
                             sharex=True, sharey="row", squeeze=False)
    for j, v in enumerate(variants):
        sel = [r for r in rows if r["variant"] == v]
        top = max(int(r["layer"]) for r in sel)
        for (layer,), lrows in _group(sel, "layer").items():
            label = "output" if int(layer) == top else f"layer {int(layer)}"
            x, m, lo, hi = _spread(lrows, x_key, "angle_deg")
            _band(axes[0, j], x, m, lo, hi, label, marker=".")
            if norm_row:
                x, m, lo, hi = _spread(lrows, x_key, "norm_ratio", lambda r: max(abs(r - 1), 1e-12))
                _band(axes[1, j], x, m, lo, hi, label, marker=".")
        ref = "feedback alignment" if v.endswith("random") else "backprop"
        axes[0, j].set_title(f"{v}\n(vs {ref})")
        for i in range(nrows):
            axes[i, j].set_yscale("log")
            if logx:
                axes[i, j].set_xscale("log")
        axes[-1, j].set_xlabel(xlabel)
    axes[0, 0].set_ylabel("angle to reference (deg)")
    if norm_row:
        axes[1, 0].set_ylabel("|norm ratio $-$ 1|")
    axes[0, 0].legend(frameon=False)
    if title:
        fig.suptitle(title, fontsize=7)
    fig.tight_layout()
    return fig


def draw_gradients_beta(plt, tables):
    return _per_variant(plt, tables[0], "beta", "beta", "$\\beta$", norm_row=True,
                        title="mean over seeds, band: min-max")


def draw_gradients_settling(plt, tables):
    return _per_variant(plt, tables[0], "settling", "settle_time", "settling time per phase ($\\tau$)",
                        title="dynamics mode, dt = 0.1 $\\tau$, $\\beta$ = 0.01; mean over seeds, band: min-max")


def draw_gradients_depth(plt, tables):
    rows = [dict(r) for r in tables[0] if r["sweep"] == "depth"]
    for r in rows:  # layer counted from the output: 0 = output, 1 = last hidden, ...
        r["from_top"] = int(r["depth"]) + 1 - int(r["layer"])
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    fig, axes = plt.subplots(1, len(variants), figsize=(PAGE_WIDTH, 2.3), sharey=True, squeeze=False)
    for j, v in enumerate(variants):
        sel = [r for r in rows if r["variant"] == v]
        for (k,), krows in sorted(_group(sel, "from_top").items()):
            x, m, lo, hi = _spread(krows, "depth", "angle_deg")
            _band(axes[0, j], x, m, lo, hi, "output" if k == 0 else f"output $-$ {k}", marker=".")
        axes[0, j].set_yscale("log")
        axes[0, j].set_xlabel("hidden layers")
        axes[0, j].set_xticks(sorted({int(r["depth"]) for r in sel}))
        ref = "feedback alignment" if v.endswith("random") else "backprop"
        axes[0, j].set_title(f"{v}\n(vs {ref})")
    axes[0, 0].set_ylabel("angle to reference (deg)")
    axes[0, 0].legend(frameon=False)
    fig.tight_layout()
    return fig


def draw_transfer_beta(plt, tables):
    rows = tables[0]
    transfers = list(dict.fromkeys(r["transfer"] for r in rows))
    fig, axes = plt.subplots(1, len(transfers), figsize=(PAGE_WIDTH, 2.1), sharey=True, squeeze=False)
    for j, tr in enumerate(transfers):
        sel = [r for r in rows if r["transfer"] == tr]
        worst = {}
        for r in sel:  # largest angle over layers, per depth, beta, seed
            key = (r["depth"], r["beta"], r["seed"])
            worst[key] = max(worst.get(key, 0.0), r["angle_deg"])
        wrows = [{"depth": d, "beta": b, "seed": s, "angle": a} for (d, b, s), a in worst.items()]
        for (depth,), drows in _group(wrows, "depth").items():
            x, m, lo, hi = _spread(drows, "beta", "angle")
            _band(axes[0, j], x, m, lo, hi, f"{int(depth)} hidden", marker=".")
        axes[0, j].set_xscale("log")
        axes[0, j].set_yscale("log")
        axes[0, j].set_xlabel("$\\beta$")
        axes[0, j].set_title(tr)
    axes[0, 0].set_ylabel("largest layer angle to backprop (deg)")
    axes[0, 0].legend(frameon=False)
    fig.tight_layout()
    return fig


def _variant_of(run: Path) -> tuple[str, str, int]:
    name, seed = run.name.rsplit("-s", 1)
    return run.parent.name, name.replace("-", " "), int(seed)


def draw_learning(plt, tables):
    rows = tables[0]
    for r in rows:
        r["config"], r["variant"], r["seed"] = _variant_of(r["_run"])
        r["test_error"] = 100.0 * (1.0 - r["test_acc"])
    configs = sorted({r["config"] for r in rows})
    fig, axes = plt.subplots(2, len(configs), figsize=(PAGE_WIDTH, 4.2), squeeze=False, sharex="col")
    order = ["ghost copy symmetric", "ghost copy random", "ghost learned symmetric", "backprop", "fa"]
    for j, config in enumerate(configs):
        sel = [r for r in rows if r["config"] == config]
        variants = sorted({r["variant"] for r in sel}, key=lambda v: (order.index(v) if v in order else 99, v))
        for k, v in enumerate(variants):
            vrows = [r for r in sel if r["variant"] == v]
            n_seeds = len({r["seed"] for r in vrows})
            style = {"color": f"C{k}", "linestyle": "--" if v in ("backprop", "fa") else "-"}
            x, m, lo, hi = _spread(vrows, "epoch", "test_error")
            _band(axes[0, j], x, m, lo, hi, f"{v} ({n_seeds} seed{'s' if n_seeds > 1 else ''})", **style)
            if v.startswith("ghost"):
                x, m, lo, hi = _spread(vrows, "epoch", "mean_angle_deg")
                _band(axes[1, j], x, m, lo, hi, v, **style)
        axes[0, j].set_title(config.replace("_", " "))
        axes[0, j].set_ylabel("test error (%)")
        axes[1, j].set_ylabel("mean layer angle to backprop (deg)")
        axes[1, j].set_xlabel("epoch")
        axes[1, j].set_yscale("log")
        axes[0, j].legend(frameon=False)
    fig.tight_layout()
    return fig


def draw_feedback_alignment(plt, tables):
    rows = tables[0]
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 2.4), sharex=True)
    conds = list(dict.fromkeys(r["condition"] for r in rows))
    layers = sorted({int(r["layer"]) for r in rows})
    styles = ["-", "--", ":", "-."]
    for k, cond in enumerate(conds):
        for li, layer in enumerate(layers):
            sel = sorted((r for r in rows if r["condition"] == cond and int(r["layer"]) == layer),
                         key=lambda r: r["step"])
            kw = {"color": f"C{k}", "linestyle": styles[li % len(styles)]}
            label = f"{cond}, $l$ = {layer}" if len(layers) > 1 else cond
            axes[0].plot([r["step"] for r in sel], [r["angle_B_WT_deg"] for r in sel], label=label, **kw)
            axes[1].plot([r["step"] for r in sel], [r["angle_update_backprop_deg"] for r in sel], **kw)
    axes[0].set_ylabel("angle($B_l$, $W_{l+1}^T$) (deg)")
    axes[1].set_ylabel("angle of hidden-layer update to backprop (deg)")
    for ax in axes:
        ax.set_xlabel("training step (batch 32)")
        ax.axhline(90, color="0.7", linewidth=0.5)
    axes[0].legend(frameon=False, fontsize=5)
    fig.tight_layout()
    return fig


DRAW = {
    "traces": draw_traces,
    "cancellation": draw_cancellation,
    "gradients_beta": draw_gradients_beta,
    "gradients_settling": draw_gradients_settling,
    "gradients_depth": draw_gradients_depth,
    "transfer_beta": draw_transfer_beta,
    "learning": draw_learning,
    "feedback_alignment": draw_feedback_alignment,
}


def make_figures(results: str | Path = "results", out: str | Path = "figures",
                 only: list[str] | None = None, formats=("png", "pdf"),
                 skipped: list | None = None) -> list[Path]:
    """Draw the figures named in ``only`` (default: all) from ``results`` into ``out``. Every
    figure's results are read and checked before anything is drawn, so a missing experiment fails
    fast with its name. Training runs that are not finished are left out and, when ``skipped``
    is a list, appended to it as ``(run directory, status)``. Returns the files written."""
    from ghostnet.io import atomic_write

    results, out = Path(results), Path(out)
    names = list(FIGURES) if only is None else list(only)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(FIGURES)}")
    tables = {n: _load(results, n, skipped) for n in names}
    plt = _plt()
    written = []
    for n in names:
        fig = DRAW[n](plt, tables[n])
        for fmt in formats:
            written.append(atomic_write(out / f"{n}.{fmt}",
                                        lambda fh, f=fig, fmt=fmt: f.savefig(fh, format=fmt, dpi=200)))
        plt.close(fig)
    return written
