"""Local plasticity (MODEL.md §4): no learning without a target, learning along backprop with one
(issue 2, point 6)."""
from __future__ import annotations

import numpy as np
import pytest

from ghostnet import GhostNetwork, ModelConfig, angle_deg, random_batch
from ghostnet.reference import backprop_gradients

SIZES = [20, 30, 25, 5]


@pytest.mark.parametrize("method", ["euler", "expeuler"])
@pytest.mark.parametrize("feedback", ["symmetric", "random"])
def test_plasticity_on_through_a_free_phase_changes_nothing(method, feedback, rng):
    """e_l = 0 without target (property 1), so always-on plasticity learns nothing then."""
    cfg = ModelConfig(sizes=SIZES, method=method, feedback=feedback, settle="fixed", steps=60)
    net = GhostNetwork(cfg)
    before = net.params.copy()
    x, _ = random_batch(cfg, 6, rng)
    net.free_phase(x, on_step=_plastic(net, x))
    for name in ("W", "b", "B", "G", "c", "H"):
        for p, q in zip(getattr(before, name), getattr(net.params, name)):
            assert np.max(np.abs(p - q)) < 1e-12


def _plastic(net, x, eta=1.0):
    from ghostnet import currents

    def on_step(state):
        cur = currents(net.config, net.params, state, None, 0.0, x)
        pre = [x] + cur.r[:-1]
        for i in range(len(net.params.W)):
            net.params.W[i] += eta * cur.e[i].T @ pre[i] / x.shape[0]
            net.params.b[i] += eta * cur.e[i].mean(axis=0)
        net.params.sync(net.config)
    return on_step


def test_continuous_plasticity_learns_along_backprop_only_with_target(rng):
    cfg = ModelConfig(sizes=SIZES, beta=1e-3, settle="fixed", steps=100)
    net = GhostNetwork(cfg)
    x, y = random_batch(cfg, 8, rng)
    p0 = net.params.copy()
    gW, _, _ = backprop_gradients(cfg, p0, x, y)
    pair = net.continuous_phases(x, y, eta=1e-2, tau_w=1.0, plastic_free=True)
    for i in range(cfg.n_layers):
        d = net.params.W[i] - p0.W[i]
        assert np.abs(d).max() > 1e-5
        assert angle_deg(d, -gW[i]) < 3.0
    assert pair.free_result.steps == 100


def test_end_of_phase_update_is_minus_the_gradient(rng):
    """dW -> -dC/dW (batch mean) as beta -> 0, with C = 0.5 |y - r_L|^2: compare elementwise."""
    cfg = ModelConfig(sizes=SIZES, beta=1e-5, mode="equilibrium")
    net = GhostNetwork(cfg)
    x, y = random_batch(cfg, 8, rng)
    upd = net.update(net.phases(x, y))
    gW, gb, _ = backprop_gradients(cfg, net.params, x, y)
    for i in range(cfg.n_layers):
        assert np.max(np.abs(upd.dW[i] + gW[i])) < 1e-3 * np.max(np.abs(gW[i]))
        assert np.max(np.abs(upd.db[i] + gb[i])) < 1e-3 * np.max(np.abs(gb[i]))


def test_sgd_step_lowers_the_cost_and_keeps_copies_in_step(rng):
    from ghostnet.reference import backprop_gradients as bg

    cfg = ModelConfig(sizes=SIZES, beta=1e-3, mode="equilibrium")
    net = GhostNetwork(cfg)
    x, y = random_batch(cfg, 16, rng)
    _, _, c0 = bg(cfg, net.params, x, y)
    for _ in range(5):
        net.step(x, y, lr=0.5)
    _, _, c1 = bg(cfg, net.params, x, y)
    assert c1 < c0
    p = net.params
    for i in range(cfg.n_layers - 1):
        assert np.array_equal(p.B[i], p.W[i + 1].T)
        assert np.array_equal(p.G[i], p.W[i + 1]) and np.array_equal(p.c[i], p.b[i + 1])
        assert np.array_equal(p.H[i], p.B[i])


def test_beta_zero_cannot_learn(rng):
    cfg = ModelConfig(sizes=SIZES, beta=0.0, mode="equilibrium")
    net = GhostNetwork(cfg)
    x, y = random_batch(cfg, 4, rng)
    with pytest.raises(ValueError, match="beta > 0"):
        net.update(net.phases(x, y))
