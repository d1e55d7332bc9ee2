"""Ghosts without copied weights (docs/model.md §4 baseline, §5 learned and replicate).
Oracles: torch.autograd's backprop, solve_ivp, the equilibrium/dynamics agreement, invariants."""
from __future__ import annotations

import numpy as np
import pytest

from ghostnet import GhostNetwork, ModelConfig, State, angle_deg, gradcheck, random_batch
from ghostnet.model.state import currents
from ghostnet.engines.numba_equilibrium import settle
from ghostnet.network.mechanisms import cancel_residual, ghost_plasticity, pretrain, pretrain_random
from ghostnet.checks.reference import ivp_phase

SIZES = [20, 30, 25, 15, 5]


@pytest.fixture(scope="module")
def pretrained():
    """A learned-ghost network pre-trained from random ghost weights on 512 fixed random inputs."""
    cfg = ModelConfig(sizes=SIZES, mechanism="learned", feedback="symmetric", mode="equilibrium",
                      eta_g=0.2, eta_h=0.2, beta=0.01, seed=0)
    net = GhostNetwork(cfg)
    info = pretrain_random(net, 150_000, progress=False, tol=0.05, pool=512)
    return net, info


@pytest.fixture(scope="module")
def pretrained_noise():
    """The same, with exploration noise (std 1) for the first 150k samples, then without."""
    cfg = ModelConfig(sizes=SIZES, mechanism="learned", feedback="symmetric", mode="equilibrium",
                      eta_g=0.2, eta_h=0.2, beta=0.01, seed=0)
    net = GhostNetwork(cfg)
    info = pretrain_random(net, 200_000, progress=False, tol=0.05, pool=512, noise=1.0,
                           noise_samples=150_000)
    return net, info


@pytest.mark.parametrize("which", ["pretrained", "pretrained_noise"])
def test_pretraining_cancels_every_layer(which, request):
    net, info = request.getfixturevalue(which)
    assert info["reached"], info["history"]["residual"][-1]
    assert info["samples"] > info["noise_samples"]  # the tolerance is judged without noise
    x, _ = random_batch(net.config, 64, np.random.default_rng(123))  # inputs it never saw
    state, _ = net.free_phase(x)
    assert all(r < 0.05 for r in cancel_residual(net, state))


def test_residual_falls_during_pretraining(pretrained):
    hist = np.array(pretrained[1]["history"]["residual"])  # batches x layers
    first, last = hist[:5].mean(axis=0), hist[-10:].mean(axis=0)
    assert np.all(last < 0.3 * first), (first, last)
    assert np.all(hist[0] > 0.5)  # random ghosts start far from cancelling


def _angles(net, baseline):
    cfg = net.config.replace(baseline=baseline)
    out = gradcheck(cfg, batch=16, net=GhostNetwork(cfg, net.params))
    return [row["angle_deg"] for row in out["layers"]]


def test_learned_ghosts_approach_backprop_with_baseline(pretrained):
    with_base = _angles(pretrained[0], True)
    assert max(with_base) < 15.0, with_base
    assert with_base[-1] < 3.0, with_base
    # without the baseline the order-1 residual swamps the order-beta error (docs/model.md §4)
    without = _angles(pretrained[0], False)
    assert without[0] > 3 * with_base[0], (with_base, without)


@pytest.mark.xfail(strict=False, reason=(
    "without exploration noise the second-to-last layer measures 2.6-4.5 deg across seeds and "
    "input distributions (uniform, binary, normal; 10k-1M samples of pre-training): the learned "
    "G, H cancel the values but stay 58-84 deg from W, B, so the error's Jacobian is only "
    "approximately cancelled; with noise it passes (next test; see README)"))
def test_learned_second_to_last_layer_below_3_degrees_without_noise(pretrained):
    assert _angles(pretrained[0], True)[-2] < 3.0


def test_noisy_pretraining_brings_learned_ghosts_to_backprop(pretrained_noise):
    """The learned mechanism's requirement: < 15 deg in every layer, < 3 deg in the last two, baseline on."""
    angles = _angles(pretrained_noise[0], True)
    assert max(angles) < 15.0 and max(angles[-2:]) < 3.0, angles


def test_noise_turns_the_ghost_weights_into_copies(pretrained, pretrained_noise):
    """The exact cancelling solution is G_l = W_{l+1}, H_l = B_l (docs/model.md §3). Without noise the
    deep layers' rates barely vary and the ghosts find other weights that cancel the data only;
    with noise every direction varies and G, H approach the copies."""
    plain, noisy = pretrained[0].params, pretrained_noise[0].params
    g_plain = [angle_deg(g, w) for g, w in zip(plain.G, plain.W[1:])]
    g_noisy = [angle_deg(g, w) for g, w in zip(noisy.G, noisy.W[1:])]
    h_plain = [angle_deg(h, b) for h, b in zip(plain.H, plain.B)]
    h_noisy = [angle_deg(h, b) for h, b in zip(noisy.H, noisy.B)]
    assert max(g_noisy) < 15.0 and min(g_plain) > 45.0, (g_noisy, g_plain)
    assert all(a < b for a, b in zip(h_noisy, h_plain)), (h_noisy, h_plain)


@pytest.mark.parametrize("mechanism", ["learned", "copy"])
def test_noisy_free_fixed_point_solves_the_equations(mechanism, rng):
    """settle(noise=...) is the fixed point of docs/model.md §2 with a constant current xi_l added to
    every pyramidal neuron (u_l = a_l + xi_l + t_l) and none to the ghosts (v_l = G_l r_l + c_l)."""
    cfg = ModelConfig(sizes=[6, 8, 7, 5, 3], mechanism=mechanism, mode="equilibrium",
                      eq_tol=1e-13, init_gain=1.5)
    net = GhostNetwork(cfg)
    x, _ = random_batch(cfg, 4, rng)
    xi = [rng.normal(0.0, 1.0, (4, n)) for n in cfg.sizes[1:]]
    state = State.zeros(cfg, 4)
    assert settle(cfg, net.params, state, x, noise=xi).converged
    cur = currents(cfg, net.params, state, x=x)
    p = net.params
    for i in range(len(state.u)):
        t = cur.t[i] if i < len(cur.t) else 0.0
        assert np.abs(state.u[i] - (cur.a[i] + xi[i] + t)).max() < 1e-10
    for i in range(len(state.v)):
        assert np.abs(state.v[i] - (cur.r[i] @ p.G[i].T + p.c[i])).max() < 1e-12
    # the noise reaches the top-down input: copy ghosts no longer cancel it
    assert max(np.abs(t).max() for t in cur.t) > 1e-3


def test_noisy_pretraining_of_a_dynamics_mode_network():
    """The noisy stage computes fixed points directly; the clean stage and the tolerance use the
    network's own integrated free phases."""
    cfg = ModelConfig(sizes=SIZES, mechanism="learned", mode="dynamics", settle="fixed", steps=40,
                      eta_g=0.2, eta_h=0.2, seed=1)
    net = GhostNetwork(cfg)
    x, _ = random_batch(cfg, 64, np.random.default_rng(5))
    before = cancel_residual(net, net.free_phase(x)[0])
    info = pretrain_random(net, 12000, progress=False, tol=0.0, noise=1.0, noise_samples=6000)
    after = cancel_residual(net, net.free_phase(x)[0])
    assert info["samples"] == 12000 and info["noise_samples"] == 6000
    assert all(a < 0.3 * b for a, b in zip(after, before)), (before, after)


def test_pretraining_noise_errors_are_clear():
    net = GhostNetwork(ModelConfig(sizes=SIZES, mechanism="learned"))
    with pytest.raises(ValueError, match="noise must be a finite"):
        pretrain(net, np.zeros((4, 20)), noise=-1.0)
    with pytest.raises(ValueError, match="noise_samples must be >= 0"):
        pretrain(net, np.zeros((4, 20)), noise=1.0, noise_samples=-5)


def test_gating_keeps_ghosts_fixed_while_a_target_is_present(rng):
    cfg = ModelConfig(sizes=SIZES, mechanism="learned", mode="equilibrium", beta=0.1)
    net = GhostNetwork(cfg)
    x, y = random_batch(cfg, 8, rng)
    pair = net.phases(x, y)
    before = net.params.copy()
    ghost_plasticity(net, pair.nudged, x, y, 0.1)
    for k in ("G", "c", "H"):
        assert all(np.array_equal(a, b) for a, b in zip(getattr(before, k), getattr(net.params, k)))
    # with gating off the same call learns
    open_net = GhostNetwork(cfg.replace(gate_ghosts=False), before.copy())
    ghost_plasticity(open_net, pair.nudged, x, y, 0.1)
    assert max(np.abs(a - b).max() for a, b in zip(before.H, open_net.params.H)) > 1e-6
    # a training step changes the ghosts exactly as the free phase alone would
    ref = GhostNetwork(cfg, before.copy())
    ghost_plasticity(ref, ref.phases(x, y).free, x)
    net2 = GhostNetwork(cfg, before.copy())
    net2.step(x, y, lr=0.0)
    for a, b in zip(ref.params.H + ref.params.G, net2.params.H + net2.params.G):
        assert np.allclose(a, b, rtol=0, atol=1e-14)


def test_replicate_last_layer_matches_backprop_at_depth_4():
    cfg = ModelConfig(sizes=[20, 30, 25, 20, 15, 5], mechanism="replicate", beta=1e-3,
                      mode="equilibrium")
    out = gradcheck(cfg, batch=16)
    angles = [row["angle_deg"] for row in out["layers"]]
    assert all(np.isfinite(angles))
    assert angles[-1] < 0.5
    # the lower layers see their own response as well: further from backprop (docs/model.md §5)
    assert angles[0] > angles[-1]
    assert all(row["cancel_residual"] < 1e-12 for row in out["layers"][:-1])  # free phase cancels


@pytest.mark.parametrize("mechanism", ["learned", "replicate"])
def test_equilibrium_matches_dynamics(mechanism, rng):
    cfg = ModelConfig(sizes=[6, 8, 7, 5, 3], mechanism=mechanism, beta=0.2, settle="tol",
                      tol=1e-12, max_steps=50000, init_gain=0.7)
    dyn = GhostNetwork(cfg)
    eq = GhostNetwork(cfg.replace(mode="equilibrium"), dyn.params)
    x, y = random_batch(cfg, 4, rng)
    a, b = dyn.phases(x, y), eq.phases(x, y)
    assert a.nudged_result.converged and b.nudged_result.converged
    for s1, s2 in ((a.free, b.free), (a.nudged, b.nudged)):
        assert max(np.abs(p - q).max() for p, q in zip(s1.u + s1.v, s2.u + s2.v)) < 1e-6


@pytest.mark.parametrize("mechanism", ["learned", "replicate"])
def test_integrator_converges_to_solve_ivp(mechanism):
    """First order towards solve_ivp (ghosts held in replicate's nudged phase)."""
    T = 2.0
    errs = []
    for dt in (1e-2, 1e-3):
        cfg = ModelConfig(sizes=[6, 8, 7, 5, 3], mechanism=mechanism, beta=0.5, dt=dt,
                          method="euler", settle="fixed", init_gain=1.5)
        net = GhostNetwork(cfg)
        x, y = random_batch(cfg, 3, np.random.default_rng(2))
        n = int(round(T / dt))
        free, _ = net.free_phase(x, n_steps=n)
        nudged = free.copy()
        net.nudged_phase(nudged, x, y, n_steps=n)
        z = State.zeros(cfg, 3)
        u1, v1 = ivp_phase(cfg, net.params, x, z.u, z.v, T)
        u2, v2 = ivp_phase(cfg, net.params, x, u1, v1, T, y=y, beta=0.5,
                           hold_ghosts=mechanism == "replicate")
        errs.append(max(np.abs(p - q).max() for p, q in zip(nudged.u + nudged.v, u2 + v2)))
    assert 7 < errs[0] / errs[1] < 13, errs


def test_pretraining_errors_are_clear():
    net = GhostNetwork(ModelConfig(sizes=SIZES))
    with pytest.raises(ValueError, match="mechanism 'learned' only"):
        pretrain(net, np.zeros((4, 20)))
    net = GhostNetwork(ModelConfig(sizes=SIZES, mechanism="learned"))
    with pytest.raises(ValueError, match=r"shape \(N, 20\)"):
        pretrain(net, np.zeros((4, 7)))
    wild = GhostNetwork(ModelConfig(sizes=SIZES, mechanism="learned", mode="equilibrium",
                                    eta_g=50.0, eta_h=50.0))
    with pytest.raises(FloatingPointError, match="eta_g = 50.0"):
        pretrain_random(wild, 20000, progress=False, tol=0.0)


@pytest.mark.parametrize("wd", [0.0, 0.02])
def test_kolen_pollack_feedback_turns_towards_w_transpose(wd, rng):
    """docs/model.md §6: dB_l is the transpose of dW_{l+1}, so B_l - W_{l+1}^T changes only by the shared
    weight decay: after t steps it is (1 - lr wd)^t times its start (constant without decay)."""
    cfg = ModelConfig(sizes=[20, 30, 25, 5], feedback="plastic", mode="equilibrium", beta=0.01,
                      weight_decay=wd)
    net = GhostNetwork(cfg)
    diff0 = [b - w.T for b, w in zip(net.params.B, net.params.W[1:])]
    start = [angle_deg(b, w.T) for b, w in zip(net.params.B, net.params.W[1:])]
    assert min(start) > 60  # a random start
    X = rng.uniform(0, 1, (256, 20))
    Y = np.eye(5)[rng.integers(0, 5, 256)]
    lr, steps = 0.5, 150
    for _ in range(steps):
        idx = rng.integers(0, 256, 32)
        net.step(X[idx], Y[idx], lr)
    for d0, b, w in zip(diff0, net.params.B, net.params.W[1:]):
        assert np.allclose(b - w.T, (1 - lr * wd) ** steps * d0, rtol=0, atol=1e-10)
    end = [angle_deg(b, w.T) for b, w in zip(net.params.B, net.params.W[1:])]
    if wd:
        assert all(e < s for e, s in zip(end, start)), (start, end)


def test_ghost_rates_per_layer_scale_each_layers_update():
    """``eta_g``, ``eta_h`` as lists: each hidden layer's ghosts learn at their own rates, and the
    update of layer i is the one the scalar rates of layer i give from the same state."""
    rates_g, rates_h = [0.3, 0.02, 0.1], [0.05, 0.2, 0.01]
    cfg = ModelConfig(sizes=SIZES, mechanism="learned", mode="equilibrium", eta_g=rates_g,
                      eta_h=rates_h, seed=2)
    net = GhostNetwork(cfg)
    x, _ = random_batch(cfg, 16, np.random.default_rng(4))
    state, _ = net.free_phase(x)
    start = net.params.copy()
    ghost_plasticity(net, state, x)
    for i, (g, h) in enumerate(zip(rates_g, rates_h)):
        scalar = GhostNetwork(cfg.replace(eta_g=g, eta_h=h), start.copy())
        ghost_plasticity(scalar, state, x)
        for name in ("G", "c", "H"):
            np.testing.assert_allclose(getattr(net.params, name)[i],
                                       getattr(scalar.params, name)[i], rtol=0, atol=1e-15)
        assert not np.array_equal(net.params.G[i], start.G[i])  # it did learn


@pytest.mark.parametrize("value,match", [([0.1, 0.1], r"eta_g.*one rate per hidden layer \(3\), got 2"),
                                         ([0.1, 0.0, 0.1], r"eta_g.*must be > 0")])
def test_ghost_rate_lists_are_validated(value, match):
    from ghostnet.model.config import ConfigError

    with pytest.raises(ConfigError, match=match):
        ModelConfig(sizes=SIZES, mechanism="learned", eta_g=value)


# ---- open-loop pre-training (docs/model.md §5) ---------------------------------------------------
def _ce_tanh_net(sizes, scale, engine="numba", seed=3):
    """tanh hidden units and a cross-entropy output, whose rate on the feedback pathway is its
    unbounded potential; ``scale`` multiplies the output weights (and the symmetric feedback)."""
    cfg = ModelConfig(sizes=sizes, transfer="tanh", cost="cross_entropy", mechanism="learned",
                      mode="equilibrium", eta_g=0.02, eta_h=0.02, beta=0.01, seed=seed,
                      engine=engine, eq_max_iter=200)
    net = GhostNetwork(cfg)
    net.params.W[-1] *= scale
    net.params.B[-1][...] = net.params.W[-1].T
    return net


def test_open_loop_phase_is_the_feedforward_pass_with_the_ghosts_at_their_fixed_point():
    """Written out with numpy: u_l = W_l r_{l-1} + b_l from the input up, whatever the feedback,
    and v_l = G_l r_l + c_l (the cross-entropy output's rate is its potential)."""
    from ghostnet.network.mechanisms import open_loop_phase

    net = _ce_tanh_net([20, 30, 10], 3.0)
    p = net.params
    x = np.random.default_rng(0).uniform(0, 1, (7, 20))
    state = open_loop_phase(net, x)
    a1 = x @ p.W[0].T + p.b[0]
    a2 = np.tanh(a1) @ p.W[1].T + p.b[1]
    np.testing.assert_allclose(state.u[0], a1, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(state.u[1], a2, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(state.v[0], np.tanh(a1) @ p.G[0].T + p.c[0], rtol=1e-12, atol=1e-13)
    assert cancel_residual(net, state)[0] > 0.5  # random ghosts: the feedback is not cancelled


def test_open_loop_pretraining_hands_over_to_a_closed_loop_that_cancels():
    """Open-loop phases until the residual is below tol, then closed ones until it holds there:
    on inputs the network never saw, its own closed free phase settles with the feedback
    cancelled."""
    net = _ce_tanh_net([40, 15, 10], 2.0)
    x = np.random.default_rng(1).standard_normal((1024, 40))
    info = pretrain(net, x, budget=100_000, tol=0.05, loop="open", progress=False,
                    rng=np.random.default_rng(2))
    assert info["reached"] and info["loop"] == "open", info["final_residual"]
    assert 0 < info["open_samples"] < info["samples"]  # both stages ran
    state, res = net.free_phase(np.random.default_rng(9).standard_normal((64, 40)))
    assert res.converged
    assert cancel_residual(net, state)[0] < 0.1


def test_open_loop_pretraining_errors_are_clear():
    net = _ce_tanh_net([20, 30, 10], 1.0)
    with pytest.raises(ValueError, match="loop must be 'closed' or 'open'"):
        pretrain(net, np.zeros((4, 20)), loop="half")
    with pytest.raises(ValueError, match="noise needs the closed loop"):
        pretrain(net, np.zeros((4, 20)), loop="open", noise=1.0)
