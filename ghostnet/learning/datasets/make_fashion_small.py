"""Regenerate ``fashion-mnist-small.npz`` from the full Fashion-MNIST.

A class-balanced subset drawn from the official splits: 1,000 training images per class (10,000)
from the 60,000 of ``train``, and 200 test images per class (2,000) from the 10,000 of ``t10k``,
chosen by ``numpy.random.default_rng(20261130)`` (a permutation of each class's indices, the first
k kept, then sorted so the images keep their order in the official files). uint8 images
(N x 28 x 28), uint8 labels; each array an ``.npy`` member of a ZIP archive compressed with LZMA
(``numpy.load`` reads it like any ``.npz``). The indices into the official files are stored too
(``idx_train``, ``idx_test``), so the subset can be checked against the full set.

Usage (from the repository root)::

    python -m ghostnet.learning.datasets.make_fashion_small [IDX_DIR] [--out PATH]

``IDX_DIR``: a directory of the four IDX files (default: Debian's package
``dataset-fashion-mnist``, /usr/share/datasets/fashion-mnist).
"""
from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np

SEED = 20261130
PER_CLASS = {"train": 1000, "test": 200}
HERE = Path(__file__).resolve().parent
OUT = HERE / "fashion-mnist-small.npz"


def select(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``per_class`` samples of every class, drawn without replacement."""
    picks = [rng.permutation(np.flatnonzero(labels == k))[:per_class] for k in range(10)]
    return np.sort(np.concatenate(picks))


def build(idx_dir: Path) -> dict[str, np.ndarray]:
    from ghostnet.learning.data import _from_idx_dir

    full = _from_idx_dir("fashion-mnist", idx_dir)
    rng = np.random.default_rng(SEED)
    out = {}
    for split, key in (("train", "train"), ("test", "test")):
        idx = select(full[f"y_{key}"], PER_CLASS[split], rng)
        out[f"x_{split}"] = full[f"x_{key}"][idx].astype(np.uint8)
        out[f"y_{split}"] = full[f"y_{key}"][idx].astype(np.uint8)
        out[f"idx_{split}"] = idx.astype(np.int32)
    return out


def write(arrays: dict[str, np.ndarray], path: Path) -> Path:
    """An .npz whose members are LZMA-compressed (about 30% smaller than numpy's deflate)."""
    from ghostnet.io import atomic_write

    def _write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_LZMA) as z:
            for name, a in arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
                z.writestr(name + ".npy", buf.getvalue())

    return atomic_write(path, _write)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("idx_dir", nargs="?", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    path = write(build(Path(args.idx_dir)), Path(args.out))
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
