"""Offline out of the box: the embedded Fashion-MNIST subset and ``ghostnet compare`` with no
dataset installed, an empty data cache and no network. Oracles: the full set's own files (when
installed), class counts, chance accuracy."""
from __future__ import annotations

import re
import socket

import numpy as np
import pytest

import ghostnet.learning.data as data
from ghostnet.cli import main

SMALL = data.EMBEDDED["fashion-mnist-small"]


def test_embedded_subset_is_small_balanced_and_documented():
    assert SMALL.stat().st_size <= 6 * 2**20
    d = data.load("fashion-mnist-small")
    assert d.x_train.shape == (10000, 784) and d.x_test.shape == (2000, 784)
    assert np.array_equal(np.bincount(d.y_train), [1000] * 10)
    assert np.array_equal(np.bincount(d.y_test), [200] * 10)
    assert d.x_train.min() == 0 and d.x_train.max() == 1 and d.x_train.dtype == np.float32
    here = SMALL.parent
    assert "MIT" in (here / "LICENSE-fashion-mnist").read_text()
    assert "make_fashion_small" in (here / "README.md").read_text()


@pytest.mark.skipif(not data.DEBIAN_FASHION.is_dir(), reason="the full Fashion-MNIST is not installed")
def test_embedded_subset_matches_the_full_set():
    """Every embedded image and label is the official one at its stored index, drawn from the
    right split, without repeats; regenerating gives the same file contents."""
    from ghostnet.learning.datasets.make_fashion_small import build

    full = data._from_idx_dir("fashion-mnist", data.DEBIAN_FASHION)
    with np.load(SMALL) as z:
        for split in ("train", "test"):
            idx = z[f"idx_{split}"]
            assert len(np.unique(idx)) == len(idx)
            assert np.array_equal(z[f"x_{split}"], full[f"x_{split}"][idx])
            assert np.array_equal(z[f"y_{split}"], full[f"y_{split}"][idx])
        again = build(data.DEBIAN_FASHION)
        assert all(np.array_equal(again[k], z[k]) for k in z.files)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No system dataset, an empty data cache, and no network connection possible."""
    monkeypatch.setattr(data, "DEBIAN_FASHION", tmp_path / "no-system-dataset")
    monkeypatch.setenv("GHOSTNET_DATA", str(tmp_path / "empty-cache"))

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return tmp_path


def test_compare_runs_offline_on_the_embedded_subset(offline, capsys):
    rc = main(["compare", "--out", str(offline / "runs")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert re.search(r"^data: fashion-mnist-small \(embedded", out, re.M), out
    accs = {m[0]: float(m[1]) for m in re.findall(r"^(ghost \(.*?\)|backprop)\s+([0-9.]+)$", out, re.M)}
    assert set(accs) == {"ghost (copy, symmetric, equilibrium)", "backprop"}, out
    assert all(a > 0.5 for a in accs.values()), accs  # chance is 0.1


def test_compare_prefers_the_full_set(tmp_path, monkeypatch, capsys, rng):
    """With a full dataset in the cache (torchvision's layout, written here), compare uses it."""
    from ghostnet.learning.data import write_idx

    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem, a in (("train-images-idx3-ubyte", rng.integers(0, 256, (30, 28, 28))),
                    ("train-labels-idx1-ubyte", np.arange(30) % 10),
                    ("t10k-images-idx3-ubyte", rng.integers(0, 256, (10, 28, 28))),
                    ("t10k-labels-idx1-ubyte", np.arange(10) % 10)):
        write_idx(raw / stem, a)
    monkeypatch.setattr(data, "DEBIAN_FASHION", tmp_path / "no-system-dataset")
    monkeypatch.setenv("GHOSTNET_DATA", str(tmp_path))
    assert main(["compare", "--epochs", "1", "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^data: fashion-mnist \(torchvision cache .*\), 30 of 30 training", out, re.M), out


def test_a_config_can_name_the_embedded_dataset(tmp_path):
    from ghostnet.learning.training import TrainConfig, train

    cfg = TrainConfig.from_toml('[model]\nsizes = [784, 16, 10]\nmode = "equilibrium"\n'
                                '[train]\ndataset = "fashion-mnist-small"\nepochs = 1\n'
                                'train_size = 1000\nbatch_size = 10\nprobe_size = 0\n')
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["final"]["test_acc"] > 0.2
    assert "embedded" in (tmp_path / "run" / "meta.json").read_text()
