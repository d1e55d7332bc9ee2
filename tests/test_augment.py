"""Training-time augmentation: every augmented image is a zero-filled translation (and maybe a
mirror image) of its original within the allowed shift, all shifts and both orientations occur,
the trainer feeds augmented images to the learner and never to evaluation, resume replays them,
and settings that cannot apply are refused."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from ghostnet import ConfigError, ModelConfig
from ghostnet.learning.augment import augment, batch_rngs, image_shape
from ghostnet.learning.data import Dataset
from ghostnet.learning.training import Learner, TrainConfig, TrainSettings, train


def _moved(img: np.ndarray, dy: int, dx: int, mirror: bool) -> np.ndarray:
    """Oracle: pad by |shift| with zeros, crop at the shifted place (then mirror)."""
    c, h, w = img.shape
    p = max(abs(dy), abs(dx))
    padded = np.pad(img, ((0, 0), (p, p), (p, p)))
    out = padded[:, p - dy:p - dy + h, p - dx:p - dx + w]
    return out[:, :, ::-1] if mirror else out


def _which(orig: np.ndarray, aug: np.ndarray, shift: int, flip: bool) -> list[tuple]:
    """Every (dy, dx, mirror) within the limits that maps ``orig`` to ``aug`` exactly."""
    r = range(-shift, shift + 1)
    return [(dy, dx, m) for dy, dx, m in itertools.product(r, r, (False, True))
            if (flip or not m) and np.array_equal(_moved(orig, dy, dx, m), aug)]


@pytest.mark.parametrize("shape,shift,flip", [((1, 9, 9), 2, True), ((3, 6, 7), 1, False),
                                              ((2, 5, 5), 0, True)])
def test_each_image_is_a_translation_or_mirror_of_its_original(shape, shift, flip):
    rng = np.random.default_rng(0)
    n = 400
    x = rng.uniform(0.1, 1, (n, int(np.prod(shape)))).astype(np.float32)  # no zeros: unique moves
    out = augment(x, shape, shift, flip, batch_rngs(3, 1, 7))
    assert out.shape == x.shape and out.dtype == x.dtype
    seen = []
    for a, b in zip(x, out):
        moves = _which(a.reshape(shape), b.reshape(shape), shift, flip)
        assert len(moves) == 1, moves
        seen.append(moves[0])
    # every allowed move occurs, with the mirror about half the time
    assert {(dy, dx) for dy, dx, _ in seen} == set(itertools.product(range(-shift, shift + 1), repeat=2))
    frac = np.mean([m for *_, m in seen])
    assert (0.4 < frac < 0.6) if flip else frac == 0
    # the draws are a function of (seed, epoch, batch) alone
    assert np.array_equal(out, augment(x, shape, shift, flip, batch_rngs(3, 1, 7)))
    if shift or flip:
        assert not np.array_equal(out, augment(x, shape, shift, flip, batch_rngs(3, 1, 8)))


def test_image_shape():
    assert image_shape([3, 32, 32], 3072) == (3, 32, 32)
    assert image_shape([], 784) == (1, 28, 28)
    assert image_shape([], 10) is None


def _images(seed=0, n_train=200, n_test=100, side=8, classes=10) -> Dataset:
    rng = np.random.default_rng(seed)
    protos = rng.uniform(0.2, 1, (classes, side * side))

    def draw(n):
        y = rng.integers(0, classes, n)
        return np.clip(protos[y] + rng.normal(0, 0.1, (n, side * side)), 0.05, 1).astype(np.float32), y

    (xt, yt), (xs, ys) = draw(n_train), draw(n_test)
    return Dataset("synthetic", xt, yt, xs, ys, classes, "test images")


def _cfg(**train_opts) -> TrainConfig:
    model = ModelConfig(sizes=[64, 20, 10], mode="equilibrium", beta=0.01, dtype="float64")
    opts = dict(learner="backprop", epochs=2, batch_size=20, lr=0.5, probe_size=10)
    opts.update(train_opts)
    return TrainConfig(model, TrainSettings(**opts)).validate()


@pytest.mark.parametrize("standardize", ["none", "pixel"])
def test_the_learner_sees_augmented_training_batches(tmp_path, monkeypatch, standardize):
    """Every training batch handed to the learner is a move of the batch the data order names
    (standardised after the move); evaluation sees the images as they are."""
    data = _images()
    cfg = _cfg(augment_shift=1, augment_flip=True, standardize=standardize)
    seen, step = [], Learner.step

    def record(self, x, y, lrs):
        seen.append(np.array(x))
        return step(self, x, y, lrs)

    monkeypatch.setattr(Learner, "step", record)
    train(cfg, tmp_path, data=data, progress=False)
    assert len(seen) == 2 * 10
    x = data.x_train.astype(np.float64)
    mean, std = (x.mean(0), x.std(0)) if standardize == "pixel" else (0.0, 1.0)
    moved = 0
    for epoch in (1, 2):
        order = np.random.default_rng([0, epoch]).permutation(len(x))
        for b in range(10):
            batch = seen[(epoch - 1) * 10 + b] * std + mean  # back to raw pixels
            for i, k in enumerate(order[b * 20:(b + 1) * 20]):
                img = batch[i].reshape(1, 8, 8)
                moves = [(dy, dx, m) for dy in (-1, 0, 1) for dx in (-1, 0, 1) for m in (False, True)
                         if np.allclose(_moved(x[k].reshape(1, 8, 8), dy, dx, m), img, atol=1e-5)]
                assert len(moves) == 1
                moved += moves[0] != (0, 0, False)
    assert moved > 0.8 * 400  # 17 of the 18 moves change the image


def test_augmentation_changes_training_but_not_evaluation(tmp_path):
    """Trained with augmentation, the weights differ from plain training; the test error the run
    reports is that of its weights on the test images as they are."""
    from ghostnet import Params
    from ghostnet.learning.learners import evaluate

    data = _images()
    plain = train(_cfg(epochs=1), tmp_path / "plain", data=data, progress=False)
    aug = train(_cfg(epochs=1, augment_shift=2), tmp_path / "aug", data=data, progress=False)
    w_plain, _ = Params.load(tmp_path / "plain" / "checkpoint.npz")
    w_aug, _ = Params.load(tmp_path / "aug" / "checkpoint.npz")
    assert not np.array_equal(w_plain.W[0], w_aug.W[0])
    cfg = _cfg(epochs=1, augment_shift=2)
    acc, cost = evaluate(Learner(cfg, w_aug), data.x_test.astype(np.float64), data.y_test, 10)
    assert aug["final"]["test_acc"] == acc and aug["final"]["test_cost"] == pytest.approx(cost)
    assert plain["final"]["test_acc"] != acc or plain["final"]["test_cost"] != pytest.approx(cost)
    stored = TrainConfig.from_toml((tmp_path / "aug" / "config.toml").read_text())
    assert stored == cfg


@pytest.mark.parametrize("model,opts,field", [
    (dict(sizes=[10, 5, 3]), dict(augment_shift=1), "augment_shift"),
    (dict(sizes=[10, 5, 3]), dict(augment_flip=True), "augment_flip"),
    (dict(sizes=[64, 5, 3]), dict(augment_shift=8), "augment_shift"),
    (dict(sizes=[64, 5, 3]), dict(augment_shift=-1), "augment_shift"),
    (dict(sizes=[64, 5, 3]), dict(augment_shift=1.5), "augment_shift"),
    (dict(sizes=[64, 5, 3]), dict(augment_flip="yes"), "augment_flip"),
])
def test_augmentation_that_cannot_apply_is_refused(model, opts, field):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(ModelConfig(**model), TrainSettings(learner="backprop", **opts)).validate()


def test_each_setting_changes_only_what_it_names():
    """At one batch position, turning flips on mirrors some of the same moved images, and the
    mirrors fall on the same images whether or not they are moved."""
    x = np.random.default_rng(1).uniform(0.1, 1, (200, 49)).astype(np.float32)
    shape, rng = (1, 7, 7), lambda: batch_rngs(0, 2, 5)
    moved, both = augment(x, shape, 2, False, rng()), augment(x, shape, 2, True, rng())
    flipped = augment(x, shape, 0, True, rng())
    mirror = lambda a: a.reshape(-1, *shape)[:, :, :, ::-1].reshape(len(a), -1)  # noqa: E731
    is_flipped = np.array([not np.array_equal(a, b) for a, b in zip(flipped, x)])
    assert 0.3 < is_flipped.mean() < 0.7
    np.testing.assert_array_equal(np.where(is_flipped[:, None], mirror(moved), moved), both)
