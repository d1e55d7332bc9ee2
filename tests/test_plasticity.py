"""Local plasticity (docs/model.md §4): no learning without a target, learning along backprop with one
."""
from __future__ import annotations

import numpy as np
import pytest

from ghostnet import GhostNetwork, ModelConfig, Params, angle_deg, random_batch
from ghostnet.checks.reference import backprop_gradients

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
    from ghostnet.checks.reference import backprop_gradients as bg

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


def test_copies_share_their_source_arrays_only_where_the_mechanism_says(tmp_path, rng):
    """Params.tie: mechanism copy makes G_l, c_l, H_l the very arrays W_{l+1}, b_{l+1}, B_l
    (docs/model.md §5: a copy), replicate only H_l; Params.copy keeps the ties inside the copy and
    shares nothing with the original; a loaded file is tied again by GhostNetwork; a learned
    network built from tied parameters unties them, so learning G never moves W."""
    from ghostnet.network.mechanisms import ghost_plasticity

    cfg = ModelConfig(sizes=SIZES, mode="equilibrium")
    p = Params.init(cfg)
    L = cfg.n_layers
    for i in range(L - 1):
        assert p.G[i] is p.W[i + 1] and p.c[i] is p.b[i + 1] and p.H[i] is p.B[i]
    q = p.copy()
    for i in range(L - 1):
        assert q.G[i] is q.W[i + 1] and q.H[i] is q.B[i]
    for k in ("W", "b", "B", "G", "c", "H"):
        for a, b in zip(getattr(p, k), getattr(q, k)):
            assert not np.shares_memory(a, b)
    rep = Params.init(cfg.replace(mechanism="replicate"))
    assert all(rep.H[i] is rep.B[i] and rep.G[i] is not rep.W[i + 1] for i in range(L - 1))

    loaded, _ = Params.load(p.save(tmp_path / "p.npz", cfg))
    assert all(loaded.G[i] is not loaded.W[i + 1] for i in range(L - 1))
    net = GhostNetwork(cfg, loaded)
    assert all(net.params.G[i] is net.params.W[i + 1] for i in range(L - 1))

    learned = GhostNetwork(cfg.replace(mechanism="learned"), p)
    for i in range(L - 1):
        for a, b in ((p.G[i], p.W[i + 1]), (p.c[i], p.b[i + 1]), (p.H[i], p.B[i])):
            assert not np.may_share_memory(a, b)
    W_before = [w.copy() for w in p.W]
    p.G[0] *= 0.5  # a mismatched ghost: pre-training has something to learn
    G_before = [g.copy() for g in p.G]
    x, _ = random_batch(cfg, 8, rng)
    state, _ = learned.free_phase(x)
    ghost_plasticity(learned, state, x)
    assert max(np.abs(g - g0).max() for g, g0 in zip(p.G, G_before)) > 0
    assert all(np.array_equal(w, w0) for w, w0 in zip(p.W, W_before))


def test_sync_copies_into_untied_arrays(rng):
    """Parameters whose copies are separate arrays (untied after the network was built) are
    still kept in step by the SGD step's sync, by value."""
    cfg = ModelConfig(sizes=SIZES, mode="equilibrium")
    net = GhostNetwork(cfg)
    p = net.params
    p.G, p.c, p.H = [g.copy() for g in p.G], [c.copy() for c in p.c], [h.copy() for h in p.H]
    x, y = random_batch(cfg, 8, rng)
    before = [w.copy() for w in p.W]
    net.step(x, y, 0.5)
    assert any(not np.array_equal(w, w0) for w, w0 in zip(p.W, before))
    for i in range(cfg.n_layers - 1):
        assert p.G[i] is not p.W[i + 1]
        assert np.array_equal(p.B[i], p.W[i + 1].T) and np.array_equal(p.G[i], p.W[i + 1])
        assert np.array_equal(p.c[i], p.b[i + 1]) and np.array_equal(p.H[i], p.B[i])


def test_continuous_plasticity_sees_feedback_that_views_the_changing_weights(rng):
    """With symmetric feedback B is the view W^T; the dynamics kernels work on a contiguous copy,
    which must follow W while continuous plasticity changes it within the phase: the run equals
    one whose B is a separate array kept in step by copying (exactly: same arithmetic)."""
    cfg = ModelConfig(sizes=SIZES, mode="dynamics", settle="fixed", steps=40, beta=0.1)
    tied = GhostNetwork(cfg)
    untied = GhostNetwork(cfg, tied.params.copy())
    p = untied.params
    p.B = [np.array(b, order="C") for b in p.B]
    p.H = list(p.B)
    assert not np.may_share_memory(p.B[0], p.W[1]) and tied.params.B[0].base is not None
    x, y = random_batch(cfg, 8, rng)
    tied.continuous_phases(x, y, eta=0.5)
    untied.continuous_phases(x, y, eta=0.5)
    for a, b in zip(tied.params.W + tied.params.B, untied.params.W + untied.params.B):
        assert np.array_equal(a, b)
    assert not np.array_equal(tied.params.W[1], GhostNetwork(cfg).params.W[1])  # it learned
