"""Stable learning rates for learned ghosts, per hidden layer (docs/model.md §5, "Stable ghost
learning rates"): the largest eigenvalue ``lambda`` of each ghost rule's least-mean-squares update
map at a network's initial weights (or a run's trained ones), and the bound ``2 / lambda`` on ``eta_g`` (``G_l``) and
``eta_h`` (``H_l``).

``G_l``'s batch-mean update, linearised, moves a kernel ``K`` by ``-eta M_G K`` with ``M_G K`` the
gradient of ``mean_batch |A_{l+1}(K) r_l|^2 / 2`` (``A_{l+1}`` layer l+1's forward map: a matrix,
or a convolution and its pooling; a conv kernel's update sums over the positions sharing it);
``H_l``'s the same with the feedback map ``A_{l+1}(K)^T`` applied to the ghosts' rates, taken
here as ``r_{l+1}``, the values they learn to match. Both are found by power iteration, on the
feedforward rates of ``--images`` training images standardised as the config's ``[train]
standardize`` says (statistics of the whole training set). The output potentials that the last
``H`` sees grow as the network learns, so its bound at the initial weights is an upper limit;
``--run DIR`` measures at a run's weights instead (its ``checkpoint.npz``, the last finished
epoch, and its ``config.toml``): the rates of a trained network, where they are smaller.

    python experiments/ghost_rate_bounds.py --config experiments/configs/fashion_lenet_wide_aug.toml
                                            [--images 500] [--fraction 0.2] [--data-source PATH]
    python experiments/ghost_rate_bounds.py --run results/lenet_wide_aug/main/backprop-seed0

prints the eigenvalues, the bounds and ``--fraction`` of each bound as ``eta_g`` / ``eta_h``
lists for the config (any engine: the maps are evaluated with the torch engine).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def top_eigenvalue(fmap, shape, n: int, iters: int = 1000, seed: int = 0,
                   rtol: float = 1e-10) -> float:
    """The largest eigenvalue of ``K -> grad_K mean |fmap(K)|^2 / 2`` (``n`` samples in the
    batch ``fmap`` maps), a symmetric positive semi-definite operator, by power iteration."""
    import torch

    g = torch.Generator().manual_seed(seed)
    K = torch.randn(shape, dtype=torch.float64, generator=g)
    val = 0.0
    for _ in range(iters):
        K = (K / K.norm()).requires_grad_(True)
        f = 0.5 * (fmap(K) ** 2).sum() / n
        grad, = torch.autograd.grad(f, K)
        new = grad.norm().item()  # |M K| with |K| = 1
        K = grad.detach()
        if abs(new - val) <= rtol * new:
            return new
        val = new
    return val


def bounds(model, x: np.ndarray, iters: int = 1000, weights=None) -> list[dict]:
    """Per hidden layer l (1-based), at ``model``'s initial weights on inputs ``x`` (rows), or at
    ``weights`` (lists ``W`` and ``b`` of arrays) when given: the largest eigenvalues of the ``G_l``
    and ``H_l`` update maps and their bounds ``2 / lambda``."""
    import torch

    from ghostnet.network.network import GhostNetwork

    net = GhostNetwork(model.replace(engine="torch", device="cpu", dtype="float64",
                                     mechanism="learned"))
    eng, P = net.engine, net.params
    if weights is not None:
        for name in ("W", "b"):
            for i, w in enumerate(weights[name]):
                if tuple(np.shape(w)) != tuple(np.shape(getattr(P, name)[i])):
                    raise ValueError(f"{name}_{i}: shape {np.shape(w)}, the configuration's "
                                     f"network has {np.shape(getattr(P, name)[i])}")
                getattr(P, name)[i] = np.asarray(w, dtype=np.float64)
    T = eng.as_tensor
    with torch.no_grad():
        r = [eng.input(np.asarray(x, dtype=np.float64))]
        for i in range(eng.L):
            a = eng.up(i, r[-1], T(P.W[i]), T(P.b[i]))
            r.append(a if i == eng.L - 1 else eng.transfer(a))  # the output: its potentials
    n = r[0].shape[0]
    rows = []
    for i in range(len(P.G)):
        lam_g = top_eigenvalue(lambda K, i=i: eng.up(i + 1, r[i + 1], K), P.G[i].shape, n, iters)
        lam_h = top_eigenvalue(lambda K, i=i: eng.down(i, r[i + 2], K), P.H[i].shape, n, iters)
        rows.append({"layer": i + 1, "lambda_g": lam_g, "lambda_h": lam_h,
                     "bound_g": 2 / lam_g, "bound_h": 2 / lam_h})
    return rows


def _inputs(cfg, images: int, source: str | None) -> np.ndarray:
    from ghostnet.learning.data import load
    from ghostnet.learning.training import standardization

    d = load(cfg.train.dataset, source)
    x = d.x_train[:images].astype(np.float64)
    if cfg.train.standardize != "none":  # the statistics of the whole training set
        mean, std = standardization(d.x_train, cfg.train.standardize)
        x = (x - mean) / std
    return x


def main(argv=None) -> list[dict]:
    from ghostnet.learning.settings import TrainConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="a training config (TOML): measure at its initial weights")
    src.add_argument("--run", help="a run directory: measure at its checkpoint's weights")
    ap.add_argument("--images", type=int, default=500, help="training images to measure on")
    ap.add_argument("--fraction", type=float, default=0.2,
                    help="the suggested rates as this fraction of each bound")
    ap.add_argument("--data-source", default=None, help="IDX directory or .npz of the dataset")
    args = ap.parse_args(argv)
    if not 0 < args.fraction < 1:
        ap.error(f"--fraction must be in (0, 1), got {args.fraction}")
    weights = None
    if args.run:
        run = Path(args.run)
        if not (run / "checkpoint.npz").exists():
            ap.error(f"--run: {run / 'checkpoint.npz'} does not exist")
        cfg = TrainConfig.load(run / "config.toml")
        with np.load(run / "checkpoint.npz") as z:
            L = len([k for k in z.files if k.startswith("W_")])
            weights = {n: [z[f"{n}_{i}"] for i in range(L)] for n in ("W", "b")}
    else:
        cfg = TrainConfig.load(args.config)
    rows = bounds(cfg.model, _inputs(cfg, args.images, args.data_source), weights=weights)
    print(f"{'hidden layer':>12} {'lambda G':>10} {'bound eta_g':>12} {'lambda H':>10} "
          f"{'bound eta_h':>12}")
    for w in rows:
        print(f"{w['layer']:>12} {w['lambda_g']:10.4g} {w['bound_g']:12.4g} {w['lambda_h']:10.4g} "
              f"{w['bound_h']:12.4g}")
    f = args.fraction
    eta_g = ", ".join(f"{f * w['bound_g']:.3g}" for w in rows)
    eta_h = ", ".join(f"{f * w['bound_h']:.3g}" for w in rows)
    print(f"eta_g = [{eta_g}]")
    print(f"eta_h = [{eta_h}]  # the last: an upper limit (the output potentials grow in training)")
    return rows


if __name__ == "__main__":
    main()
