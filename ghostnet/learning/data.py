"""Datasets for classification: MNIST, Fashion-MNIST, KMNIST, CIFAR-10, and
``fashion-mnist-small``, a class-balanced 10,000/2,000-image subset of Fashion-MNIST embedded in
the package (``ghostnet/learning/datasets/``), which needs no download.

Sources, in the order they are tried by :func:`load`:

1. ``source=``: a directory of the standard IDX files (``train-images-idx3-ubyte[.gz]``,
   ``train-labels-idx1-ubyte[.gz]``, ``t10k-...``), or an ``.npz`` holding ``x_train``, ``y_train``,
   ``x_test``, ``y_test``;
2. for Fashion-MNIST, Debian's package ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist),
   found without being asked;
3. torchvision, downloading into the cache directory (``$GHOSTNET_DATA``, else
   ``~/.cache/ghostnet``) when ``download`` is true (needs internet the first time).

Everything is checked before use; a problem raises :class:`DataError` saying which file, what is
wrong, where it looked and how to get the data. Images are returned flattened, as float32 in
[0, 1]; labels as int64. CIFAR-10's colour images (N x 32 x 32 x 3 from torchvision, or already
N x 3 x 32 x 32) are flattened channels first, the order of an ``input = [3, 32, 32]`` network.
"""
from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ghostnet.errors import GhostnetError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
EMBEDDED = {"fashion-mnist-small": Path(__file__).resolve().parent / "datasets"
                                   / "fashion-mnist-small.npz"}
"""Datasets shipped inside the package (see datasets/README.md beside this module)."""
NAMES = ("mnist", "fashion-mnist", "kmnist", "cifar10", "fashion-mnist-small")
_TORCHVISION = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST",
                "cifar10": "CIFAR10"}
_SHAPE = {"mnist": (28, 28), "fashion-mnist": (28, 28), "kmnist": (28, 28), "cifar10": (32, 32, 3),
          "fashion-mnist-small": (28, 28)}
_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class DataError(GhostnetError, ValueError):
    """A dataset is missing, truncated, corrupt or inconsistent; the message says what to do."""


@dataclass
class Dataset:
    """A classification dataset: ``x_*`` (N x D float32 in [0, 1]), ``y_*`` (N int64 labels)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    source: str
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    @property
    def n_inputs(self) -> int:
        return self.x_train.shape[1]

    def check(self) -> "Dataset":
        """Raise :class:`DataError` unless every split is non-empty, 2-D, finite, in [0, 1], with
        as many integer labels in 0..n_classes-1 as images (what :func:`load` guarantees; for a
        dataset built by hand). Returns ``self``."""
        splits = [("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)]
        if self.x_val is not None:
            splits.append(("val", self.x_val, self.y_val))
        for split, x, y in splits:
            what = f"{self.name} ({self.source}): x_{split}"
            x, y = np.asarray(x), np.asarray(y)
            if x.ndim != 2 or len(x) == 0:
                raise DataError(f"{what} has shape {x.shape}; want N > 0 flattened images")
            if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
                raise DataError(f"{what}: want {len(x)} integer labels, got shape {y.shape} "
                                f"of {y.dtype}")
            if y.min() < 0 or y.max() >= self.n_classes:
                raise DataError(f"{what}: labels must lie in 0..{self.n_classes - 1}, found "
                                f"{y.min()}..{y.max()}")
            if not np.issubdtype(x.dtype, np.floating):
                raise DataError(f"{what}: want float images in [0, 1], got {x.dtype}")
            check_images(x, what)
        return self

    def subset(self, n: int | None) -> "Dataset":
        """The first ``n`` training samples (``None``: all)."""
        if n is None:
            return self
        if not 1 <= n <= len(self.x_train):
            raise DataError(f"train subset of {n} samples: must be between 1 and "
                            f"{len(self.x_train)} for {self.name}")
        return Dataset(self.name, self.x_train[:n], self.y_train[:n], self.x_test, self.y_test,
                       self.n_classes, self.source, self.x_val, self.y_val)

    def split_validation(self, n_val: int, rng: np.random.Generator) -> "Dataset":
        """Move ``n_val`` random training samples into a validation set."""
        if n_val == 0:
            return self
        if not 0 < n_val < len(self.x_train):
            raise DataError(f"validation size {n_val}: must be between 0 and "
                            f"{len(self.x_train) - 1} for {len(self.x_train)} training samples")
        order = rng.permutation(len(self.x_train))
        val, train = order[:n_val], order[n_val:]
        return Dataset(self.name, self.x_train[train], self.y_train[train], self.x_test,
                       self.y_test, self.n_classes, self.source, self.x_train[val],
                       self.y_train[val])


def one_hot(labels: np.ndarray, n_classes: int, dtype="float64") -> np.ndarray:
    """One-hot targets (N x n_classes)."""
    out = np.zeros((len(labels), n_classes), dtype=dtype)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def cache_dir() -> Path:
    """Where torchvision downloads go: ``$GHOSTNET_DATA``, else ``~/.cache/ghostnet``."""
    return Path(os.environ.get("GHOSTNET_DATA") or Path.home() / ".cache" / "ghostnet")


# ---- IDX -------------------------------------------------------------------------------------
def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped or not), checking its header against its size."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"missing file {path}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, not an IDX file") from None
    except PermissionError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror})") from None
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path} is truncated or not a valid gzip file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path}: IDX header says shape {shape} ({expected} bytes) but the file "
                        f"holds {len(raw)} bytes: truncated or corrupt")
    # no copy for bytes (uint8): a read-only view of the decompressed file
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(
        dtype.newbyteorder("="), copy=False)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` (uint8) as an IDX file, gzipped if the name ends in .gz (used by tests)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    head = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = head + array.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _find_idx(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).exists():
            return directory / name
    return None


def _from_idx_dir(name: str, directory: Path) -> dict:
    arrays = {}
    for key, stem in _IDX_FILES.items():
        f = _find_idx(directory, stem)
        if f is None:
            raise DataError(
                f"{name}: {directory} has no {stem}[.gz]; a dataset directory needs "
                + ", ".join(f"{s}[.gz]" for s in _IDX_FILES.values()))
        arrays[key] = read_idx(f)
    return arrays


def _from_npz(name: str, path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _IDX_FILES if k not in z.files]
            if missing:
                raise DataError(f"{path} lacks {', '.join(missing)}; a dataset .npz holds "
                                "x_train, y_train, x_test, y_test")
            return {k: z[k] for k in _IDX_FILES}
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"missing file {path}") from None
    except Exception as exc:  # zipfile / pickle errors from a damaged file
        raise DataError(f"{path} is not a readable .npz ({type(exc).__name__}: {exc})") from None


def _from_torchvision(name: str, root: Path, download: bool) -> dict:
    from torchvision import datasets

    cls = getattr(datasets, _TORCHVISION[name])
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for train in (True, False):
        try:
            ds = cls(root=str(root), train=train, download=download)
        except RuntimeError as exc:  # torchvision: "Dataset not found" / failed download
            raise DataError(_howto(name, root, f"torchvision could not provide it: {exc}")) from None
        except OSError as exc:  # no network
            raise DataError(_howto(name, root, f"download failed: {exc}")) from None
        x = np.asarray(ds.data)
        y = np.asarray(ds.targets)
        out["x_train" if train else "x_test"] = x
        out["y_train" if train else "y_test"] = y
    return out


def _howto(name: str, root: Path, why: str) -> str:
    lines = [f"{name}: {why}.", f"Looked in {root} (set $GHOSTNET_DATA to change it)."]
    if name == "fashion-mnist":
        lines.append(f"Offline: `apt-get install dataset-fashion-mnist` puts it in {DEBIAN_FASHION}.")
    lines.append("Offline: pass a directory of the IDX files or an .npz with x_train, y_train, "
                 "x_test, y_test (--data-source / source=).")
    return " ".join(lines)


def _check(name: str, arrays: dict, where: str) -> Dataset:
    shape = _SHAPE[name]
    n_classes = 10
    out = {}
    for split in ("train", "test"):
        x, y = np.asarray(arrays[f"x_{split}"]), np.asarray(arrays[f"y_{split}"])
        if x.ndim < 2:
            raise DataError(f"{name} ({where}): x_{split} has shape {x.shape}; want N images")
        if len(x) == 0:
            raise DataError(f"{name} ({where}): x_{split} holds no images")
        if x.shape[1:] != shape and x.reshape(len(x), -1).shape[1] != int(np.prod(shape)):
            raise DataError(f"{name} ({where}): x_{split} images have shape {x.shape[1:]}, "
                            f"want {shape}")
        y = y.reshape(-1)
        if len(y) != len(x):
            raise DataError(f"{name} ({where}): {len(x)} {split} images but {len(y)} labels")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{name} ({where}): y_{split} must hold integer labels, got {y.dtype}")
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            raise DataError(f"{name} ({where}): y_{split} labels must lie in 0..{n_classes - 1}, "
                            f"found {y.min()}..{y.max()}")
        if name == "cifar10" and x.ndim == 4 and x.shape[1:] == (32, 32, 3):
            x = x.transpose(0, 3, 1, 2)  # channels first, as a [3, 32, 32] input expects
        x = x.reshape(len(x), -1)
        if np.issubdtype(x.dtype, np.integer):
            lo, hi = int(x.min()), int(x.max())
            if lo < 0 or hi > 255:
                raise DataError(f"{name} ({where}): integer images must hold pixel values in "
                                f"0..255, found {lo}..{hi}")
            x = x.astype(np.float32)
            np.divide(x, np.float32(255.0), out=x)  # in place: no second copy of the images
        elif np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
        else:
            raise DataError(f"{name} ({where}): x_{split} must hold numbers, got {x.dtype}")
        check_images(x, f"{name} ({where}): x_{split}")
        out[f"x_{split}"], out[f"y_{split}"] = x, y.astype(np.int64)
    return Dataset(name, out["x_train"], out["y_train"], out["x_test"], out["y_test"], n_classes,
                   where)


def check_images(x: np.ndarray, what: str) -> None:
    """Raise :class:`DataError` unless the float images ``x`` are finite and in [0, 1] (NaN
    fails every comparison, so it is looked for first)."""
    if not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise DataError(f"{what} holds {bad} non-finite pixel value(s) (NaN or infinity)")
    if x.size and (x.min() < 0 or x.max() > 1):
        raise DataError(f"{what}: float images must lie in [0, 1], found "
                        f"{float(x.min()):g}..{float(x.max()):g}")


def load(name: str, source: str | Path | None = None, root: str | Path | None = None,
         download: bool = True) -> Dataset:
    """Load dataset ``name`` (one of :data:`NAMES`) from the first source that has it (module
    docstring); raise :class:`DataError` with where it looked and how to get it otherwise."""
    if name not in NAMES:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(NAMES)}")
    if source is not None:
        source = Path(source)
        if source.is_dir():
            return _check(name, _from_idx_dir(name, source), str(source))
        if source.suffix == ".npz" or source.exists():
            return _check(name, _from_npz(name, source), str(source))
        raise DataError(f"{name}: data source {source} does not exist")
    if name in EMBEDDED:
        return _check(name, _from_npz(name, EMBEDDED[name]), f"embedded {EMBEDDED[name].name}")
    if name == "fashion-mnist" and DEBIAN_FASHION.is_dir():
        return _check(name, _from_idx_dir(name, DEBIAN_FASHION), str(DEBIAN_FASHION))
    root = Path(root) if root is not None else cache_dir()
    return _check(name, _from_torchvision(name, root, download), f"torchvision cache {root}")


def load_full_or_embedded(name: str = "fashion-mnist", root: str | Path | None = None) -> Dataset:
    """The full dataset ``name`` if it is on this machine (a system package or the data cache;
    nothing is downloaded), else its embedded subset (``name`` + ``-small``). The returned
    dataset's ``name`` and ``source`` say which was used."""
    try:
        return load(name, root=root, download=False)
    except DataError:
        small = f"{name}-small"
        if small not in EMBEDDED:
            raise
        return load(small)
