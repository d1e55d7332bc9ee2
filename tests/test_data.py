"""Datasets: offline sources, the torchvision path without network, and a clear
error for each bad input. Tests never touch the network: they write small IDX / npz files."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from ghostnet.learning.data import DEBIAN_FASHION, DataError, Dataset, load, one_hot, read_idx, write_idx

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")


def _arrays(rng, n_train=12, n_test=5):
    return (rng.integers(0, 256, (n_train, 28, 28)), rng.integers(0, 10, n_train),
            rng.integers(0, 256, (n_test, 28, 28)), rng.integers(0, 10, n_test))


def _idx_dir(directory: Path, arrays, gz: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for stem, a in zip(STEMS, arrays):
        write_idx(directory / (stem + (".gz" if gz else "")), a)
    return directory


@pytest.mark.parametrize("gz", [True, False])
def test_idx_directory_round_trip(tmp_path, rng, gz):
    arrays = _arrays(rng)
    d = load("mnist", source=_idx_dir(tmp_path / "mnist", arrays, gz))
    assert d.x_train.shape == (12, 784) and d.x_train.dtype == np.float32
    assert np.array_equal(d.x_train, arrays[0].reshape(12, -1).astype(np.float32) / 255)
    assert np.array_equal(d.y_test, arrays[3]) and d.n_classes == 10


def test_npz_source(tmp_path, rng):
    a = _arrays(rng)
    p = tmp_path / "data.npz"
    np.savez(p, x_train=a[0].astype(np.uint8), y_train=a[1], x_test=a[2].astype(np.uint8), y_test=a[3])
    d = load("kmnist", source=p)
    assert np.array_equal(d.x_test, a[2].reshape(5, -1).astype(np.float32) / 255)


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("kmnist", "KMNIST"),
                                         ("fashion-mnist", "FashionMNIST")])
def test_torchvision_path_offline(tmp_path, rng, monkeypatch, name, folder):
    """torchvision's download() finds the raw files already in place and fetches nothing."""
    import ghostnet.learning.data as data

    monkeypatch.setattr(data, "DEBIAN_FASHION", tmp_path / "no-debian")
    arrays = _arrays(rng)
    _idx_dir(tmp_path / folder / "raw", arrays, gz=False)
    monkeypatch.setenv("GHOSTNET_DATA", str(tmp_path))
    d = load(name, download=True)
    assert d.source.startswith("torchvision")
    assert np.array_equal(d.x_train, arrays[0].reshape(12, -1).astype(np.float32) / 255)
    assert np.array_equal(d.y_train, arrays[1])


def test_cifar10_through_torchvision_class(tmp_path, rng, monkeypatch):
    import torchvision.datasets as tvd

    made = {}

    class FakeCIFAR10:
        def __init__(self, root, train, download):
            made[train] = (root, download)
            n = 6 if train else 3
            self.data = rng.integers(0, 256, (n, 32, 32, 3)).astype(np.uint8)
            self.targets = list(rng.integers(0, 10, n))

    monkeypatch.setattr(tvd, "CIFAR10", FakeCIFAR10)
    d = load("cifar10", root=tmp_path)
    assert d.x_train.shape == (6, 3072) and d.x_test.shape == (3, 3072)
    assert made[True] == (str(tmp_path), True)


def test_missing_download_says_where_and_how(tmp_path):
    with pytest.raises(DataError, match=rf"Looked in {tmp_path}.*IDX files"):
        load("mnist", root=tmp_path, download=False)


def test_missing_idx_file_is_named(tmp_path, rng):
    d = _idx_dir(tmp_path / "d", _arrays(rng), gz=True)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="no t10k-labels-idx1-ubyte"):
        load("mnist", source=d)


def test_truncated_and_corrupt_files(tmp_path, rng):
    d = _idx_dir(tmp_path / "d", _arrays(rng), gz=True)
    f = d / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    with pytest.raises(DataError, match="truncated or not a valid gzip"):
        load("mnist", source=d)
    f.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + (12).to_bytes(4, "big") + (28).to_bytes(4, "big")
                                + (28).to_bytes(4, "big") + b"\x00" * 100))
    with pytest.raises(DataError, match="truncated or corrupt"):
        load("mnist", source=d)
    f.write_bytes(gzip.compress(b"PK\x03\x04 not idx"))
    with pytest.raises(DataError, match="bad magic number"):
        load("mnist", source=d)


def test_shape_and_label_mismatches(tmp_path, rng):
    a = list(_arrays(rng))
    a[1] = a[1][:-1]  # one label short
    with pytest.raises(DataError, match="12 train images but 11 labels"):
        load("mnist", source=_idx_dir(tmp_path / "a", a, gz=False))
    a = list(_arrays(rng))
    a[3] = a[3] + 10  # labels out of range
    with pytest.raises(DataError, match=r"labels must lie in 0\.\.9"):
        load("mnist", source=_idx_dir(tmp_path / "b", a, gz=False))
    a = list(_arrays(rng))
    a[0] = rng.integers(0, 256, (12, 20, 20))
    with pytest.raises(DataError, match=r"images have shape \(20, 20\)"):
        load("mnist", source=_idx_dir(tmp_path / "c", a, gz=False))
    p = tmp_path / "bad.npz"
    np.savez(p, x_train=np.zeros((2, 784)))
    with pytest.raises(DataError, match="lacks y_train, x_test, y_test"):
        load("mnist", source=p)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load("mnist", source=tmp_path / "junk.npz")
    with pytest.raises(DataError, match="unknown dataset 'svhn'"):
        load("svhn")
    with pytest.raises(DataError, match="does not exist"):
        load("mnist", source=tmp_path / "nowhere")


def test_validation_split_and_subset(rng):
    d = Dataset("mnist", rng.uniform(0, 1, (20, 4)).astype(np.float32), np.arange(20) % 10,
                np.zeros((3, 4), np.float32), np.zeros(3, np.int64), 10, "test")
    s = d.split_validation(5, np.random.default_rng(0))
    assert len(s.x_train) == 15 and len(s.x_val) == 5
    assert sorted(np.concatenate([s.y_train, s.y_val]).tolist()) == sorted(d.y_train.tolist())
    assert len(d.subset(7).x_train) == 7
    with pytest.raises(DataError, match="validation size 20"):
        d.split_validation(20, np.random.default_rng(0))
    with pytest.raises(DataError, match="train subset of 0"):
        d.subset(0)
    assert np.array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_found_without_being_asked():
    d = load("fashion-mnist", download=False)
    assert d.source == str(DEBIAN_FASHION)
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    # Fashion-MNIST is balanced: 6000 training and 1000 test images per class
    assert np.all(np.bincount(d.y_train, minlength=10) == 6000)
    assert np.all(np.bincount(d.y_test, minlength=10) == 1000)
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0


def test_read_idx_rejects_missing(tmp_path):
    with pytest.raises(DataError, match="missing file"):
        read_idx(tmp_path / "nope.gz")
