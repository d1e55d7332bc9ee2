"""The cross-entropy output (docs/model.md, "Cross-entropy output"): softmax output nudged in rate
space, identity rate on the feedback pathway. Oracles: torch.autograd with F.cross_entropy (backprop
and feedback alignment), closed-form first-order errors, scipy's root and solve_ivp, the
equilibrium/dynamics agreement, exact cancellation in the free phase."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import torch_forward
from ghostnet import ConfigError, GhostNetwork, ModelConfig, Recording, State, random_batch
from ghostnet.checks.metrics import layer_alignment
from ghostnet.checks.reference import (
    backprop_gradients, feedback_alignment_gradients, ivp_phase,
)

SIZES = [20, 30, 25, 15, 5]
SETTLED = dict(settle="tol", tol=1e-12, max_steps=40000, eq_tol=1e-14)


def _cfg(**kw) -> ModelConfig:
    base = dict(sizes=SIZES, cost="cross_entropy", beta=1e-3, **SETTLED)
    base.update(kw)
    return ModelConfig(**base)


def _softmax(z):
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _compare(net: GhostNetwork, batch: int = 16, seed: int = 7):
    """The network's local update on a random batch against the reference: backprop for symmetric
    feedback, feedback alignment through the network's own B otherwise. Returns (angles, norm
    ratios, update, pair)."""
    cfg = net.config
    x, y = random_batch(cfg, batch, np.random.default_rng(seed))
    pair = net.phases(x, y)
    assert pair.free_result.converged and pair.nudged_result.converged
    upd = net.update(pair)
    ref = backprop_gradients if cfg.feedback == "symmetric" else feedback_alignment_gradients
    gW, gb, _ = ref(cfg, net.params, x, y)
    rows = layer_alignment(upd, gW, gb)
    return [r["angle_deg"] for r in rows], [r["norm_ratio"] for r in rows], upd, pair


# ---- configuration ------------------------------------------------------------------------------
def test_cost_field_validates_and_round_trips_through_toml():
    cfg = _cfg()
    assert ModelConfig.from_toml(cfg.to_toml()) == cfg
    assert ModelConfig().cost == "mse"
    with pytest.raises(ConfigError) as info:
        ModelConfig(cost="hinge")
    assert info.value.field == "cost"
    with pytest.raises(ConfigError) as info:
        ModelConfig(cost="cross_entropy", output="clamp")
    assert info.value.field == "cost"


def test_training_config_round_trips_the_cost():
    from ghostnet.learning.settings import TrainConfig, TrainSettings

    cfg = TrainConfig(_cfg(sizes=[12, 10, 4]), TrainSettings()).validate()
    back = TrainConfig.from_toml(cfg.to_toml())
    assert back == cfg and back.model.cost == "cross_entropy"


def test_stability_bound_uses_the_softmax_jacobian():
    """Forward Euler on tau du/dt = -u - beta softmax(u): the Jacobian's eigenvalues are
    -(1 + beta lambda), lambda in [0, 1/2], so dt < 2 tau / (1 + beta / 2)."""
    cfg = _cfg(method="euler", beta=2.0, dt=0.1)
    assert cfg.stability_bound() == pytest.approx(2.0 / (1.0 + 2.0 / 2))
    # the largest eigenvalue of diag(p) - p p^T is at most 1/2, and approaches it
    rng = np.random.default_rng(0)
    top = 0.0
    for _ in range(200):
        p = _softmax(rng.normal(0, 3, (1, 6)))[0]
        top = max(top, np.linalg.eigvalsh(np.diag(p) - np.outer(p, p)).max())
    assert 0.45 < top <= 0.5


def test_targets_must_be_probability_vectors():
    net = GhostNetwork(_cfg(sizes=[4, 3, 2]))
    with pytest.raises(ValueError, match="probability vector"):
        net.phases(np.zeros((2, 4)), np.array([[1.0, 1.0], [0.0, 1.0]]))


def test_brian2_backend_refuses_cross_entropy():
    pytest.importorskip("brian2")
    from ghostnet.engines.brian import BrianGhostNetwork

    net = GhostNetwork(_cfg(sizes=[4, 3, 2], method="euler", settle="fixed"))
    with pytest.raises(ConfigError) as info:
        BrianGhostNetwork(net, batch=1)
    assert info.value.field == "cost"


# ---- the output's fixed-point equation ------------------------------------------------------------
@pytest.mark.parametrize("beta", [1e-3, 1.0, 50.0])
def test_newton_solves_the_softmax_output_equation_like_scipy_root(beta, rng):
    from scipy.optimize import root

    from ghostnet.engines.numba_equilibrium import _solve_output_softmax

    a = rng.normal(0, 3, (6, 7))
    y = _softmax(rng.normal(0, 2, (6, 7)))
    y[:3] = np.eye(7)[rng.integers(0, 7, 3)]  # one-hot rows too
    start = rng.normal(0, 20, a.shape)  # far from the solution
    u = _solve_output_softmax(a, start, y, beta)
    for i in range(len(a)):
        sol = root(lambda z: z - a[i] - beta * (y[i] - _softmax(z[None])[0]), a[i], tol=1e-12)
        assert sol.success, sol.message
        assert np.abs(u[i] - sol.x).max() < 1e-9 * (1 + np.abs(sol.x).max())
    assert np.abs(u - a - beta * (y - _softmax(u))).max() < 1e-12 * (1 + np.abs(u).max())


# ---- property 1: cancellation ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["dynamics", "equilibrium"])
def test_free_phase_is_the_feedforward_pass_and_predicts_softmax(mode, rng):
    cfg = _cfg(mode=mode)
    net = GhostNetwork(cfg)
    x = rng.uniform(0, 1, size=(8, cfg.sizes[0]))
    state, res = net.free_phase(x)
    assert res.converged
    a = torch_forward(cfg, net.params, x)
    for l in range(cfg.n_layers):
        assert np.abs(state.u[l] - a[l]).max() < 1e-10
    for l in range(cfg.n_layers - 1):
        assert np.abs(state.v[l] - a[l + 1]).max() < 1e-10
    p = torch.softmax(torch.tensor(a[-1]), dim=1).numpy()
    assert np.abs(net.predict(x) - p).max() < 1e-10
    pair = net.phases(x, np.eye(cfg.sizes[-1])[rng.integers(0, 5, 8)])
    assert np.abs(pair.prediction - p).max() < 1e-10
    assert np.allclose(pair.prediction.sum(axis=1), 1.0)
    assert all(not e.any() for e in pair.free_currents.e)  # no target, no error: exactly


@pytest.mark.parametrize("method", ["euler", "expeuler"])
def test_topdown_input_is_exactly_zero_along_the_free_trajectory(method, rng):
    """Copy ghosts with tau_g = tau: the last ghosts (identity rate) follow the output's
    potential exactly, so every t_l is exactly 0 at every step, not only at the fixed point."""
    cfg = _cfg(method=method, settle="fixed", steps=60)
    net = GhostNetwork(cfg)
    x = rng.uniform(0, 1, size=(5, cfg.sizes[0]))
    _, res = net.free_phase(x, record=Recording(stride=1, what=("t", "u")))
    assert max(np.abs(np.diff(u, axis=0)).max() for u in res.trajectory["u"]) > 1e-3
    for t in res.trajectory["t"]:
        assert not np.any(t)


def test_continuous_plasticity_learns_nothing_without_target(rng):
    """e_l = 0 exactly in the free phase (the output's t_L is 0 without target and every t_l
    below cancels exactly), so plasticity left on through it changes no weight."""
    cfg = _cfg(sizes=[10, 8, 6, 4], settle="fixed", steps=30, beta=0.1)
    x, y = random_batch(cfg, 4, rng)
    on, off = GhostNetwork(cfg), GhostNetwork(cfg)
    start = on.params.copy()
    on.continuous_phases(x, y, eta=0.1, plastic_free=True)
    off.continuous_phases(x, y, eta=0.1, plastic_free=False)
    for a, b, c in zip(on.params.W + on.params.b, off.params.W + off.params.b,
                       start.W + start.b):
        assert np.array_equal(a, b)
        assert not np.array_equal(a, c)  # the nudged phase did learn


# ---- property 2: the local update against torch.autograd's cross-entropy gradient ------------------
@pytest.mark.parametrize("mode", ["dynamics", "equilibrium"])
@pytest.mark.parametrize("feedback", ["symmetric", "random", "plastic"])
def test_copy_update_is_the_cross_entropy_gradient_to_order_beta(mode, feedback):
    """beta = 1e-3, float64, settled: angle < 0.05 deg and |norm ratio - 1| < 0.01 against
    backprop (symmetric) or feedback alignment through the same B (random, plastic); and the angle
    falls by a factor ~10 from beta = 1e-2 to 1e-3 (O(beta))."""
    angles = {}
    for beta in (1e-2, 1e-3):
        net = GhostNetwork(_cfg(mode=mode, feedback=feedback, beta=beta))
        angles[beta], ratios, upd, _ = _compare(net)
    assert max(angles[1e-3]) < 0.05, angles
    assert max(abs(r - 1) for r in ratios) < 0.01, ratios
    ratio = np.array(angles[1e-2]) / np.array(angles[1e-3])
    assert np.all((ratio > 6) & (ratio < 15)), ratio
    if feedback == "plastic":  # Kolen-Pollack: dB_l is the transpose of dW_{l+1} (docs/model.md §6)
        for dB, dW in zip(upd.dB, upd.dW[1:]):
            assert np.allclose(dB, dW.T, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["dynamics", "equilibrium"])
@pytest.mark.parametrize("sizes", [[20, 5], [20, 30, 5]])
def test_shallow_networks_follow_the_cross_entropy_gradient(mode, sizes):
    """No hidden layer (softmax regression: no ghosts at all) and one hidden layer (the last
    ghosts are the only ones)."""
    angles, ratios, _, _ = _compare(GhostNetwork(_cfg(sizes=sizes, mode=mode)))
    assert max(angles) < 0.05 and max(abs(r - 1) for r in ratios) < 0.01, (angles, ratios)


def test_local_errors_follow_the_cross_entropy_delta_recursion(rng):
    """e_l / beta -> delta_l with delta_L = y - softmax(a_L) = -dCE/da_L and
    delta_l = phi'(a_l) * (B_l delta_{l+1}), computed here in closed form with numpy."""
    cfg = _cfg(beta=1e-5, mode="equilibrium")
    net = GhostNetwork(cfg)
    x, y = random_batch(cfg, 8, rng)
    pair = net.phases(x, y)
    sig = lambda z: 1 / (1 + np.exp(-z))
    a, r = [], x
    for W, b in zip(net.params.W, net.params.b):
        a.append(r @ W.T + b)
        r = sig(a[-1])
    delta = [None] * cfg.n_layers
    delta[-1] = y - _softmax(a[-1])
    for l in range(cfg.n_layers - 2, -1, -1):
        s = sig(a[l])
        delta[l] = s * (1 - s) * (delta[l + 1] @ net.params.B[l].T)
    for l in range(cfg.n_layers):
        e = pair.nudged_currents.e[l] / cfg.beta
        assert np.abs(e - delta[l]).max() < 1e-4 * np.abs(delta[l]).max()


def _replicate_first_order(net, x, y, beta):
    """The replicate mechanism's update to first order in beta, in closed form: ghosts hold the
    free potentials, so the nudged state's deviation du solves the linear system
    du_l = W_l D_{l-1} du_{l-1} + B_l D_{l+1} du_{l+1} (hidden), du_L = W_L D_{L-1} du_{L-1} +
    beta (y - p) (output; D = phi'(a), the identity for the output), and e_l = D_l t_l with
    t_l = B_l D_{l+1} du_{l+1}, e_L = beta (y - p). Returns per layer (dW, db)."""
    p = net.params
    L = len(p.W)
    sig = lambda z: 1 / (1 + np.exp(-z))
    a, r = [], x
    for W, b in zip(p.W, p.b):
        a.append(r @ W.T + b)
        r = sig(a[-1])
    rates = [sig(z) for z in a[:-1]]
    sizes = [W.shape[0] for W in p.W]
    off = np.concatenate([[0], np.cumsum(sizes)])
    out_err = beta * (y - _softmax(a[-1]))
    e = [np.zeros_like(z) for z in a]
    for s in range(len(x)):
        D = [sig(z[s]) * (1 - sig(z[s])) for z in a[:-1]] + [np.ones(sizes[-1])]
        M = np.eye(off[-1])
        rhs = np.zeros(off[-1])
        for l in range(L):
            if l > 0:
                M[off[l]:off[l + 1], off[l - 1]:off[l]] -= p.W[l] * D[l - 1]
            if l < L - 1:
                M[off[l]:off[l + 1], off[l + 1]:off[l + 2]] -= p.B[l] * D[l + 1]
        rhs[off[L - 1]:] = out_err[s]
        du = np.linalg.solve(M, rhs)
        for l in range(L - 1):
            e[l][s] = D[l] * (p.B[l] @ (D[l + 1] * du[off[l + 1]:off[l + 2]]))
        e[L - 1][s] = out_err[s]
    pre = [x] + rates
    return [(e[l].T @ pre[l] / len(x) / beta, e[l].mean(axis=0) / beta) for l in range(L)]


@pytest.mark.parametrize("mode", ["dynamics", "equilibrium"])
def test_replicate_update_to_order_beta(mode):
    """Replicate ghosts hold their free potentials, so the hidden layers also see their own
    response (docs/model.md §5): the update approaches the closed-form first-order solution above
    as O(beta), and in the last layer backprop's cross-entropy gradient."""
    x, y = random_batch(_cfg(), 16, np.random.default_rng(3))
    angles = {}
    for beta in (1e-2, 1e-3):
        net = GhostNetwork(_cfg(mechanism="replicate", mode=mode, beta=beta))
        pair = net.phases(x, y)
        assert pair.nudged_result.converged
        upd = net.update(pair)
        ref = _replicate_first_order(net, x, y, beta)
        rows = layer_alignment(upd, [-w for w, _ in ref], [-b for _, b in ref])  # "gradients"
        angles[beta] = np.array([r["angle_deg"] for r in rows])
        ratios = [r["norm_ratio"] for r in rows]
        bp = layer_alignment(upd, *backprop_gradients(net.config, net.params, x, y)[:2])
    # the loop through the layers below makes the O(beta) term larger than copy's (measured
    # 0.02-0.06 deg at beta = 1e-3 on this batch)
    assert angles[1e-3].max() < 0.1 and max(abs(r - 1) for r in ratios) < 0.01, (angles, ratios)
    assert np.all((angles[1e-2] / angles[1e-3] > 6) & (angles[1e-2] / angles[1e-3] < 15)), angles
    assert bp[-1]["angle_deg"] < 0.05
    assert bp[0]["angle_deg"] > 1.0  # not backprop below the top: the oracle is not vacuous


@pytest.mark.parametrize("mode", ["dynamics", "equilibrium"])
def test_learned_ghosts_at_the_copy_weights_give_the_copy_update(mode):
    """Learned ghosts whose G, c, H hold the copy values (arrays of their own) cancel exactly like
    copy ghosts: the same update to rounding, hence backprop's to O(beta)."""
    copy = GhostNetwork(_cfg(mode=mode))
    p = copy.params.copy()
    learned_cfg = _cfg(mode=mode, mechanism="learned")
    learned = GhostNetwork(learned_cfg, p)
    for i in range(len(p.G)):
        learned.params.G[i][...] = copy.params.W[i + 1]
        learned.params.c[i][...] = copy.params.b[i + 1]
        learned.params.H[i][...] = copy.params.B[i]
    a_copy, _, u_copy, _ = _compare(copy)
    a_learned, _, u_learned, pair = _compare(learned)
    assert max(np.abs(e).max() for e in pair.free_currents.e) < 1e-13  # the free phase cancels
    for i in range(len(p.W)):
        ref = u_copy.flat(i)
        assert np.abs(u_learned.flat(i) - ref).max() < 1e-8 * np.abs(ref).max()
    assert max(a_learned) < 0.05


# ---- equilibrium, dynamics, solve_ivp ------------------------------------------------------------
@pytest.mark.parametrize("mechanism", ["copy", "learned", "replicate"])
def test_equilibrium_is_the_fixed_point_of_the_dynamics(mechanism, rng):
    cfg = _cfg(sizes=[6, 8, 7, 5, 4], mechanism=mechanism, beta=0.5, init_gain=0.7, tol=1e-12,
               max_steps=50000)
    dyn = GhostNetwork(cfg)
    eq = GhostNetwork(cfg.replace(mode="equilibrium"), dyn.params)
    x, y = random_batch(cfg, 4, rng)
    a, b = dyn.phases(x, y), eq.phases(x, y)
    assert a.nudged_result.converged and b.nudged_result.converged
    for s1, s2 in ((a.free, b.free), (a.nudged, b.nudged)):
        assert max(np.abs(p - q).max() for p, q in zip(s1.u + s1.v, s2.u + s2.v)) < 1e-6
    # the output sits at u = a + beta (y - softmax(u))
    u = b.nudged.u[-1]
    a_top = b.nudged_currents.a[-1]
    assert np.abs(u - a_top - 0.5 * (y - _softmax(u))).max() < 1e-10


@pytest.mark.parametrize("mechanism", ["copy", "learned"])
def test_integrator_converges_to_solve_ivp(mechanism):
    """Forward Euler, first order towards the DOP853 solution of the cross-entropy equations."""
    T = 2.0
    errs = []
    for dt in (1e-2, 1e-3):
        cfg = _cfg(sizes=[6, 8, 7, 4], mechanism=mechanism, beta=1.0, dt=dt, method="euler",
                   settle="fixed", init_gain=1.5)
        net = GhostNetwork(cfg)
        x, y = random_batch(cfg, 3, np.random.default_rng(2))
        n = int(round(T / dt))
        free, _ = net.free_phase(x, n_steps=n)
        nudged = free.copy()
        net.nudged_phase(nudged, x, y, n_steps=n)
        z = State.zeros(cfg, 3)
        u1, v1 = ivp_phase(cfg, net.params, x, z.u, z.v, T)
        u2, v2 = ivp_phase(cfg, net.params, x, u1, v1, T, y=y, beta=1.0)
        errs.append(max(np.abs(p - q).max() for p, q in zip(nudged.u + nudged.v, u2 + v2)))
    assert 7 < errs[0] / errs[1] < 13, errs


@pytest.mark.parametrize("mode", ["dynamics", "equilibrium"])
def test_float32_keeps_the_angle_at_beta_001(mode):
    cfg = _cfg(beta=0.01, dtype="float32", tol=1e-6, max_steps=5000, eq_tol=1e-12, mode=mode)
    angles, _, _, _ = _compare(GhostNetwork(cfg))
    assert max(angles) < 0.5, angles


# ---- training ------------------------------------------------------------------------------------
def _blobs(seed=0, n=300, dim=12, classes=4):
    from ghostnet.learning.data import Dataset

    rng = np.random.default_rng(seed)
    protos = rng.uniform(0, 1, (classes, dim))

    def draw(k):
        lab = rng.integers(0, classes, k)
        return np.clip(protos[lab] + rng.normal(0, 0.2, (k, dim)), 0, 1), lab

    (xt, yt), (xs, ys) = draw(n), draw(n)
    return Dataset("blobs", xt, yt, xs, ys, classes, "test blobs")


def test_evaluate_reports_the_cross_entropy_of_the_prediction():
    from ghostnet.learning.learners import Learner, evaluate
    from ghostnet.learning.settings import TrainConfig, TrainSettings

    data = _blobs()
    for learner in ("ghost", "backprop"):
        cfg = TrainConfig(_cfg(sizes=[12, 10, 4], mode="equilibrium"),
                          TrainSettings(learner=learner)).validate()
        lrn = Learner(cfg, None if learner == "ghost" else GhostNetwork(cfg.model).params)
        acc, cost = evaluate(lrn, data.x_test, data.y_test, data.n_classes, batch=64)
        logits = torch.tensor(torch_forward(cfg.model, lrn.params, data.x_test)[-1])
        ref = torch.nn.functional.cross_entropy(logits, torch.tensor(data.y_test)).item()
        assert cost == pytest.approx(ref, rel=1e-10)
        assert acc == np.mean(logits.argmax(1).numpy() == data.y_test)


def test_cross_entropy_ghost_network_learns_like_backprop():
    """Same initial weights, data order and learning rate: the ghost network (copy, symmetric,
    beta = 0.01) trained on its cross-entropy update ends where backprop on F.cross_entropy ends."""
    from ghostnet.learning.data import one_hot
    from ghostnet.learning.learners import Learner, evaluate
    from ghostnet.learning.settings import TrainConfig, TrainSettings

    data = _blobs()
    model = _cfg(sizes=[12, 10, 4], mode="equilibrium", beta=0.01, eq_tol=1e-12)
    learners = {k: Learner(TrainConfig(model, TrainSettings(learner=k)).validate(),
                           GhostNetwork(model).params.copy()) for k in ("ghost", "backprop")}
    before = evaluate(learners["ghost"], data.x_test, data.y_test, 4)
    order = np.random.default_rng(1).permutation(np.repeat(np.arange(300), 5))
    for s in range(0, len(order), 10):
        idx = order[s:s + 10]
        y = one_hot(data.y_train[idx], 4)
        for lrn in learners.values():
            lrn.step(data.x_train[idx], y, [0.5, 0.5])
    after = {k: evaluate(v, data.x_test, data.y_test, 4) for k, v in learners.items()}
    assert after["ghost"][0] > 0.9 and after["ghost"][1] < 0.5 * before[1], (before, after)
    assert abs(after["ghost"][1] - after["backprop"][1]) < 0.02 * after["backprop"][1], after
    for wg, wb in zip(learners["ghost"].params.W, learners["backprop"].params.W):
        assert np.linalg.norm(wg - wb) < 0.02 * np.linalg.norm(wb)


def test_gradcheck_command_takes_the_cost(capsys):
    import json

    from ghostnet.cli import main

    assert main(["gradcheck", "--sizes", "10,8,4", "--cost", "cross_entropy", "--mode",
                 "equilibrium", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["settings"]["cost"] == "cross_entropy"
    assert max(row["angle_deg"] for row in out["layers"]) < 0.05
