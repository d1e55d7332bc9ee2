"""Figures: every experiment at --quick scale and every figure end to end, figures only
from saved results, and a clear error naming the experiment when results are missing or corrupt.
Synthetic Fashion-MNIST-shaped data (IDX files written here): no network needed."""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ghostnet.cli import main as cli_main
from ghostnet.learning.data import write_idx
from ghostnet.figures.figures import FIGURES, ResultsError, make_figures

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fake_fashion(folder: Path, n_train=600, n_test=200, seed=0) -> Path:
    """28x28 uint8 images of ten noisy prototypes, as the four standard IDX files; mostly dark
    like Fashion-MNIST (the learned ghosts' eta_g = 0.2 of the shipped configs diverges on
    uniformly bright 784-pixel inputs)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    protos = rng.uniform(0, 255, (10, 28, 28)) * (rng.random((10, 28, 28)) < 0.3)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n)
        x = np.clip(protos[y] + rng.normal(0, 20, (n, 28, 28)), 0, 255).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y.astype(np.uint8))
    return folder


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    """All experiments at --quick scale, run once for the module, as a user would run them."""
    base = tmp_path_factory.mktemp("quick")
    data = _fake_fashion(base / "data")
    results = base / "results"
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "run_all.py"), "--quick",
                           "--results", str(results), "--data-source", str(data)],
                          cwd=base, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return results


def _valid_png(path: Path) -> None:
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == PNG_MAGIC, path
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200, (path, img.shape)
    assert np.ptp(img[..., :3]) > 0.5, f"{path} is blank"  # drawn, not one flat colour


def test_quick_experiments_and_every_figure(quick_results, tmp_path):
    out = tmp_path / "figs"
    assert cli_main(["figures", "--results", str(quick_results), "--out", str(out)]) == 0
    for name in FIGURES:
        _valid_png(out / f"{name}.png")
        pdf = (out / f"{name}.pdf").read_bytes()
        assert pdf[:5] == b"%PDF-" and len(pdf) > 2000 and b"%%EOF" in pdf[-64:], name
    # the learning curves come from every finished run of the table, both configs, 5 learners
    runs = sorted(p.parent for p in quick_results.glob("table/*/*/summary.json"))
    assert len(runs) == 10
    # the same initial weights and data order: ghost copy/symmetric at beta = 0.01 tracks backprop
    # and ghost copy/random tracks fa (docs/model.md §3 property 2), whatever the data
    acc = {(r.parent.name, r.name): float(list(csv.DictReader(open(r / "metrics.csv")))[-1]["test_acc"])
           for r in runs}
    for config in ("fashion_784-500-10", "fashion_784-500-500-10"):
        assert abs(acc[config, "ghost-copy-symmetric-s0"] - acc[config, "backprop-s0"]) <= 0.02
        assert abs(acc[config, "ghost-copy-random-s0"] - acc[config, "fa-s0"]) <= 0.02
    # and the shallow net learned something in 2 epochs of 500 samples: above chance (0.1; 200 test
    # samples, sd 0.02)
    assert all(acc["fashion_784-500-10", v] > 0.2 for c, v in acc if c == "fashion_784-500-10")


def test_figures_need_saved_results(quick_results, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(quick_results, results)
    shutil.rmtree(results / "gradients")
    # a figure whose results are present is drawn ...
    assert make_figures(results, tmp_path / "a", only=["traces"], formats=("png",))
    # ... one whose results were removed is refused with the experiment to run, and none is drawn
    with pytest.raises(ResultsError, match=r"missing results file .*gradients\.csv.*experiments/gradients\.py"):
        make_figures(results, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    assert cli_main(["figures", "--results", str(results), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "ghostnet figures: error:" in err and "python experiments/gradients.py" in err
    for summary in results.glob("table/*/*/summary.json"):  # unfinished runs are not drawn
        summary.unlink()
    with pytest.raises(ResultsError, match=r"no finished runs.*ghostnet sweep experiments/sweeps/table_"):
        make_figures(results, tmp_path / "d", only=["learning"])


@pytest.mark.parametrize("damage,match", [
    (lambda p: p.write_text(""), "no column|empty"),
    (lambda p: p.write_text("phase,time,layer\nfree,0,1\n"), r"no column\(s\) neuron, quantity, value"),
    (lambda p: p.write_text(p.read_text().splitlines()[0] + "\n"), "empty results file"),
    (lambda p: p.write_bytes(b"\xff\xfe\x00garbage\x00"), "corrupt|no column"),
    (lambda p: p.write_text(p.read_text() + "free,1,2,3,4,5,6,7,8,9\n"), "wrong length"),
])
def test_corrupt_results_are_refused(quick_results, tmp_path, damage, match):
    results = tmp_path / "results"
    shutil.copytree(quick_results / "traces", results / "traces")
    damage(results / "traces" / "traces.csv")
    with pytest.raises(ResultsError, match=match) as info:
        make_figures(results, tmp_path / "figs", only=["traces"])
    assert "python experiments/traces.py" in str(info.value)
