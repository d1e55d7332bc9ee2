"""Training-time data augmentation of image batches: random translations and horizontal flips.

Applied to the raw images (values in [0, 1], before standardisation) of each training batch, never
to the validation, test or probe images. A translation moves the image by (dy, dx), each drawn
uniformly from -shift..shift pixels, and fills the uncovered border with 0 (the background of the
image datasets); it is the usual "pad by ``shift`` and crop at a random place". A flip mirrors the
image left to right with probability 1/2.

The random numbers of a batch come from ``numpy.random.default_rng([seed, epoch, batch, 1])``
(the moves) and ``default_rng([seed, epoch, batch, 2])`` (the flips): functions of the batch's
position alone, so every learner of a seed sees the same augmented images, a run resumed in the
middle of an epoch replays them bit for bit, and turning one option on or off leaves what the
other does unchanged.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["augment", "batch_rngs", "image_shape"]


def image_shape(input_shape: list[int] | tuple[int, ...], n_inputs: int) -> tuple[int, int, int] | None:
    """The [C, H, W] of one flattened input: the model's ``input`` when it is an image, else a
    single-channel square image when ``n_inputs`` is a perfect square (784 -> 1 x 28 x 28);
    None when neither holds."""
    if len(input_shape) == 3:
        return tuple(int(s) for s in input_shape)
    side = math.isqrt(n_inputs)
    return (1, side, side) if side * side == n_inputs else None


def batch_rngs(seed: int, epoch: int, batch: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The random generators of one training batch's moves and flips."""
    return (np.random.default_rng([seed, epoch, batch, 1]),
            np.random.default_rng([seed, epoch, batch, 2]))


def augment(x: np.ndarray, shape: tuple[int, int, int], shift: int, flip: bool,
            rngs: tuple[np.random.Generator, np.random.Generator]) -> np.ndarray:
    """Augmented copy of the flattened images ``x`` (N x C*H*W): each translated by a random
    (dy, dx) in [-shift, shift]^2 with zero fill, then mirrored left-right with probability 1/2 if
    ``flip``; the moves drawn from ``rngs[0]``, the flips from ``rngs[1]`` (:func:`batch_rngs`)."""
    n = len(x)
    c, h, w = shape
    img = x.reshape(n, c, h, w)
    d = rngs[0].integers(-shift, shift + 1, size=(n, 2)) if shift else np.zeros((n, 2), np.int64)
    mirror = rngs[1].random(n) < 0.5 if flip else np.zeros(n, bool)
    out = np.zeros_like(img)
    for i in range(n):
        dy, dx = int(d[i, 0]), int(d[i, 1])
        # out[y, x] = img[y - dy, x - dx] where that lies inside the image
        ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
        xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        out[i, :, yd, xd] = img[i, :, ys, xs]
        if mirror[i]:
            out[i] = out[i, :, :, ::-1]
    return out.reshape(n, c * h * w)
