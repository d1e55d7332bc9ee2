"""Optimizers and schedules (ghostnet.learning.optim) against torch.optim on the same update
sequence, plain SGD bit for bit against sgd_step, the derived weights kept in step, and the
learners' fast torch path against the independent autograd reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ghostnet import ConfigError, ModelConfig, Params
from ghostnet.checks import reference
from ghostnet.learning.learners import Learner
from ghostnet.learning.optim import Optimizer, lr_factor
from ghostnet.learning.settings import TrainConfig, TrainSettings
from ghostnet.model.plasticity import Update, sgd_step

SIZES = [12, 9, 7, 4]


def _updates(params: Params, n: int, seed: int, plastic=False):
    """A fixed sequence of random downhill updates shaped like ``params``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        out.append(Update([rng.normal(size=w.shape) for w in params.W],
                          [rng.normal(size=c.shape) for c in params.b],
                          [rng.normal(size=m.shape) for m in params.B] if plastic else []))
    return out


def _torch_run(params: Params, updates, lrs, make, decoupled_wd=0.0):
    """torch.optim on the same update sequence (gradient = -update), per-layer rates as param
    groups; decoupled decay, where torch has none, applied by hand before each step."""
    W = [torch.tensor(w, requires_grad=True) for w in params.W]
    b = [torch.tensor(c, requires_grad=True) for c in params.b]
    groups = [{"params": [W[i]], "lr": lrs[i]} for i in range(len(W))]
    groups += [{"params": [b[i]], "lr": lrs[i], "weight_decay": 0.0} for i in range(len(b))]
    opt = make(groups)
    for u in updates:
        with torch.no_grad():
            for i, w in enumerate(W):
                if decoupled_wd:
                    w.mul_(1.0 - lrs[i] * decoupled_wd)
        for t, d in zip(W + b, u.dW + u.db):
            t.grad = torch.tensor(-d)
        opt.step()
    return [w.detach().numpy() for w in W], [c.detach().numpy() for c in b]


CASES = [  # (settings, torch optimizer factory, decay done by hand)
    (dict(momentum=0.9), lambda g: torch.optim.SGD(g, lr=1.0, momentum=0.9), 0.0),
    (dict(momentum=0.8, nesterov=True),
     lambda g: torch.optim.SGD(g, lr=1.0, momentum=0.8, nesterov=True), 0.0),
    (dict(momentum=0.9, weight_decay=0.05), lambda g: torch.optim.SGD(g, lr=1.0, momentum=0.9), 0.05),
    (dict(optimizer="adam"), lambda g: torch.optim.Adam(g, lr=1.0), 0.0),
    (dict(optimizer="adam", adam_betas=[0.8, 0.99], adam_eps=1e-6),
     lambda g: torch.optim.Adam(g, lr=1.0, betas=(0.8, 0.99), eps=1e-6), 0.0),
    (dict(optimizer="adam", weight_decay=0.1),
     lambda g: torch.optim.AdamW(g, lr=1.0, weight_decay=0.1), 0.0),
]


@pytest.mark.parametrize("settings,make,by_hand", CASES)
def test_optimizer_matches_torch_optim(settings, make, by_hand):
    model = ModelConfig(sizes=SIZES, feedback="random")
    p = Params.init(model)
    lrs = [0.03, 0.02, 0.05]
    t = TrainSettings(lr=lrs, **settings)
    TrainConfig(model, t).validate()
    updates = _updates(p, 25, seed=1)
    W, b = _torch_run(p, updates, lrs, make, by_hand)
    opt = Optimizer(t, model, p)
    for u in updates:
        opt.step(p, u, lrs)
    for mine, ref in zip(p.W + p.b, W + b):
        np.testing.assert_allclose(mine, ref, rtol=1e-12, atol=1e-13)


def test_plain_sgd_is_bit_identical_to_sgd_step():
    """optimizer sgd, momentum 0, constant rate: the very arithmetic of sgd_step, with the copy
    ghosts and a plastic B (and Kolen-Pollack's decay) kept in step, in float32."""
    for model in (ModelConfig(sizes=SIZES, dtype="float32"),
                  ModelConfig(sizes=SIZES, dtype="float32", feedback="plastic", weight_decay=0.1)):
        a, b = Params.init(model), Params.init(model)
        t = TrainSettings(lr=0.1)
        opt = Optimizer(t, model, b)
        for u in _updates(a, 10, seed=2, plastic=model.feedback == "plastic"):
            u = Update(*[[x.astype(np.float32) for x in lst] for lst in (u.dW, u.db, u.dB)])
            sgd_step(model, a, u, [0.1] * 3)
            opt.step(b, u, [0.1] * 3)
        for k in ("W", "b", "B", "G", "c", "H"):
            for x, y in zip(getattr(a, k), getattr(b, k)):
                assert np.array_equal(x, y), k


def test_momentum_keeps_derived_weights_in_step():
    """Copy ghosts and symmetric B follow W under momentum too (they are W, or its view)."""
    model = ModelConfig(sizes=SIZES, mechanism="copy", feedback="symmetric")
    p = Params.init(model)
    opt = Optimizer(TrainSettings(momentum=0.9, nesterov=True), model, p)
    for u in _updates(p, 5, seed=3):
        opt.step(p, u, [0.1] * 3)
    for i in range(len(p.W) - 1):
        assert np.array_equal(p.B[i], p.W[i + 1].T) and np.array_equal(p.G[i], p.W[i + 1])
        assert np.array_equal(p.H[i], p.B[i]) and np.array_equal(p.c[i], p.b[i + 1])


def test_plastic_feedback_gets_the_optimizer_too():
    """With plastic feedback B is a parameter: Adam on B matches torch's Adam on B."""
    model = ModelConfig(sizes=SIZES, feedback="plastic")
    p = Params.init(model)
    B = [torch.tensor(m, requires_grad=True) for m in p.B]
    opt_t = torch.optim.Adam([{"params": [B[i]], "lr": 0.01 * (i + 2)} for i in range(len(B))])
    opt = Optimizer(TrainSettings(optimizer="adam"), model, p)
    for u in _updates(p, 8, seed=4, plastic=True):
        for t, d in zip(B, u.dB):
            t.grad = torch.tensor(-d)
        opt_t.step()
        opt.step(p, u, [0.01, 0.02, 0.03])
    for mine, ref in zip(p.B, B):
        np.testing.assert_allclose(mine, ref.detach().numpy(), rtol=1e-12, atol=1e-13)


def test_state_round_trip_continues_the_same_sequence():
    model = ModelConfig(sizes=SIZES)
    ups = _updates(Params.init(model), 12, seed=5)
    for t in (TrainSettings(momentum=0.9), TrainSettings(optimizer="adam")):
        a = Params.init(model)
        oa = Optimizer(t, model, a)
        for u in ups:
            oa.step(a, u, [0.01] * 3)
        b = Params.init(model)
        ob = Optimizer(t, model, b)
        for u in ups[:5]:
            ob.step(b, u, [0.01] * 3)
        state = {k: v.copy() for k, v in ob.state_arrays().items()}
        oc = Optimizer(t, model, b)
        oc.load_state(state)
        for u in ups[5:]:
            oc.step(b, u, [0.01] * 3)
        for x, y in zip(a.W + a.b, b.W + b.b):
            assert np.array_equal(x, y)
    with pytest.raises(ValueError, match="optimizer state"):
        Optimizer(TrainSettings(optimizer="adam"), model, Params.init(model)).load_state(
            {"optim_steps": np.array(3)})


# ---- schedules ------------------------------------------------------------------------------
def test_schedules_follow_their_closed_forms():
    n, epochs = 7, 6
    const = TrainSettings(epochs=epochs)
    assert [lr_factor(const, s, n) for s in range(n * epochs)] == [1.0] * (n * epochs)
    step = TrainSettings(epochs=epochs, schedule="step", step_epochs=2, step_gamma=0.5)
    assert [lr_factor(step, s, n) for s in range(0, n * epochs, n)] == [1, 1, .5, .5, .25, .25]
    warm = TrainSettings(epochs=epochs, schedule="cosine", warmup_epochs=1.0, lr_min_ratio=0.1)
    f = [lr_factor(warm, s, n) for s in range(n * epochs)]
    assert f[:n] == pytest.approx([(k + 1) / n for k in range(n)])
    K = n * (epochs - 1)
    assert f[n:] == pytest.approx([0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / K))
                                   for k in range(K)])


def test_cosine_matches_torch_scheduler():
    """Without warm-up, per-step cosine equals torch's CosineAnnealingLR stepped every batch."""
    n, epochs, lr = 5, 4, 0.3
    t = TrainSettings(epochs=epochs, schedule="cosine", lr_min_ratio=0.2, lr=lr)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n * epochs, eta_min=0.2 * lr)
    for s in range(n * epochs):
        assert lr * lr_factor(t, s, n) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        sched.step()


def test_step_matches_torch_scheduler():
    n, epochs = 3, 7
    t = TrainSettings(epochs=epochs, schedule="step", step_epochs=3, step_gamma=0.3)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.3)
    for e in range(epochs):
        for s in range(n):
            assert lr_factor(t, e * n + s, n) == pytest.approx(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()


@pytest.mark.parametrize("field,value", [
    ("optimizer", "rmsprop"), ("momentum", 1.0), ("momentum", -0.1), ("nesterov", 1),
    ("adam_betas", [0.9]), ("adam_betas", [0.9, 1.0]), ("adam_eps", 0.0), ("weight_decay", -1e-4),
    ("schedule", "linear"), ("warmup_epochs", -1.0), ("warmup_epochs", 99.0), ("step_epochs", 0),
    ("step_gamma", 0.0), ("lr_min_ratio", 1.5), ("standardize", "zca"), ("eval_train", "no"),
])
def test_bad_optimizer_settings_are_named(field, value):
    with pytest.raises(ConfigError) as info:
        TrainConfig(ModelConfig(sizes=[64, 40, 10]), TrainSettings(**{field: value})).validate()
    assert info.value.field == field


def test_settings_that_do_not_go_together_are_refused():
    m = ModelConfig(sizes=[64, 40, 10])
    for t, name in ((TrainSettings(nesterov=True), "nesterov"),
                    (TrainSettings(optimizer="adam", momentum=0.9), "momentum"),
                    (TrainSettings(weight_decay=0.1), "weight_decay")):
        model = m.replace(weight_decay=0.1) if name == "weight_decay" else m
        with pytest.raises(ConfigError) as info:
            TrainConfig(model, t).validate()
        assert info.value.field == name


# ---- the learners' fast path -------------------------------------------------------------------
@pytest.mark.parametrize("learner,transfer,cost", [
    ("backprop", "tanh", "mse"), ("backprop", "logistic", "mse"), ("fa", "tanh", "mse"),
    ("backprop", "logistic", "cross_entropy"), ("fa", "tanh", "cross_entropy")])
def test_fast_gradients_match_the_autograd_reference(learner, transfer, cost):
    model = ModelConfig(sizes=SIZES, transfer=transfer, cost=cost,
                        feedback="random" if learner == "fa" else "symmetric")
    cfg = TrainConfig(model, TrainSettings(learner=learner)).validate()
    p = Params.init(model)
    rng = np.random.default_rng(6)
    x, y = rng.random((8, SIZES[0])), np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], 8)]
    ref = (reference.backprop_gradients if learner == "backprop"
           else reference.feedback_alignment_gradients)(model, p, x, y)
    learn = Learner(cfg, p)
    for _ in range(2):  # the second call: the tensors are reused
        u, c = learn.downhill(x, y)
        for d, g in zip(u.dW + u.db, ref[0] + ref[1]):
            np.testing.assert_allclose(d, -g, rtol=1e-12, atol=1e-15)
        assert c == pytest.approx(float(ref[2]), rel=1e-12)


def test_fast_path_sees_the_optimizers_in_place_steps():
    """Tensors share memory with the parameters: after a step, the gradient is the reference's
    at the new weights."""
    model = ModelConfig(sizes=SIZES)
    cfg = TrainConfig(model, TrainSettings(learner="backprop", momentum=0.5)).validate()
    p = Params.init(model)
    learn = Learner(cfg, p, Optimizer(cfg.train, model, p))
    rng = np.random.default_rng(7)
    x, y = rng.random((8, SIZES[0])), np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], 8)]
    for _ in range(3):
        learn.step(x, y, [0.5] * 3)
    gW, gb, _ = reference.backprop_gradients(model, p, x, y)
    u, _ = learn.downhill(x, y)
    for d, g in zip(u.dW + u.db, gW + gb):
        np.testing.assert_allclose(d, -g, rtol=1e-12, atol=1e-15)
