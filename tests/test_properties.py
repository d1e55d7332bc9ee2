"""docs/model.md §3: property 1 (cancellation) and property 2 (error propagation), against closed forms
and torch.autograd."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import torch_forward
from ghostnet import GhostNetwork, ModelConfig, Recording, State, gradcheck, random_batch

DEPTHS = {1: [20, 30, 5], 2: [20, 30, 25, 5], 3: [20, 30, 25, 15, 5], 4: [20, 30, 25, 20, 15, 5]}
SETTLED = dict(settle="tol", tol=1e-11, max_steps=20000)


# ---- property 1 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("transfer", ["logistic", "tanh", "softplus", "relu"])
@pytest.mark.parametrize("mode", ["dynamics", "equilibrium"])
def test_free_fixed_point_is_the_feedforward_pass(transfer, mode, rng):
    cfg = ModelConfig(sizes=DEPTHS[3], transfer=transfer, mode=mode, beta=0.0, **SETTLED)
    net = GhostNetwork(cfg)
    x = rng.uniform(0, 1, size=(8, cfg.sizes[0]))
    state, res = net.free_phase(x)
    assert res.converged
    a = torch_forward(cfg, net.params, x)
    for l in range(cfg.n_layers):
        assert np.max(np.abs(state.u[l] - a[l])) < 1e-10
    for l in range(cfg.n_layers - 1):  # each ghost sits at its partner's bottom-up drive
        assert np.max(np.abs(state.v[l] - a[l + 1])) < 1e-10


@pytest.mark.parametrize("method", ["euler", "expeuler"])
@pytest.mark.parametrize("transfer", ["logistic", "relu"])
def test_topdown_input_vanishes_along_the_free_trajectory(method, transfer, rng):
    """tau_g = tau and v_l(0) = u_{l+1}(0): t_l = 0 at every time, not only at the fixed point."""
    cfg = ModelConfig(sizes=DEPTHS[4], transfer=transfer, method=method, dt=0.1, tau=1.0,
                      tau_g=1.0, settle="fixed", steps=80)
    net = GhostNetwork(cfg)
    x = rng.uniform(0, 1, size=(5, cfg.sizes[0]))
    _, res = net.free_phase(x, record=Recording(stride=1, what=("t", "u")))
    traj = res.trajectory
    assert len(traj["step"]) == 81
    moving = max(np.abs(np.diff(u, axis=0)).max() for u in traj["u"])
    assert moving > 1e-3  # the potentials do travel: this is a trajectory, not a fixed point
    for t in traj["t"]:
        assert np.max(np.abs(t)) < 1e-10


def test_mismatched_ghost_start_does_not_cancel(rng):
    """The same check fails when the premise (matched initial states) is broken."""
    cfg = ModelConfig(sizes=DEPTHS[2], settle="fixed", steps=20)
    net = GhostNetwork(cfg)
    x = rng.uniform(0, 1, size=(4, cfg.sizes[0]))
    state = State.zeros(cfg, 4)
    state.v[0][...] = 1.0
    _, res = net.free_phase(x, state=state, record=Recording(stride=1, what=("t",)))
    assert np.max(np.abs(res.trajectory["t"][0])) > 1e-3


def test_prediction_is_the_feedforward_output(rng):
    cfg = ModelConfig(sizes=DEPTHS[2], **SETTLED)
    net = GhostNetwork(cfg)
    x = rng.uniform(0, 1, size=(6, cfg.sizes[0]))
    a = torch_forward(cfg, net.params, x)
    assert np.max(np.abs(net.predict(x) - 1 / (1 + np.exp(-a[-1])))) < 1e-10


# ---- property 2 ---------------------------------------------------------------------------------
def _max_angle_and_ratio(cfg, batch=16):
    out = gradcheck(cfg, batch=batch)
    assert out["phases"]["nudged"]["settled"] and out["phases"]["free"]["settled"]
    angles = [row["angle_deg"] for row in out["layers"]]
    ratios = [row["norm_ratio"] for row in out["layers"]]
    return angles, ratios


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("transfer", ["logistic", "softplus"])
def test_update_matches_backprop_at_small_beta(depth, transfer):
    """Copy, symmetric, float64, beta = 1e-3, settled: angle < 0.05 deg, |norm ratio - 1| < 0.01."""
    mode = "dynamics" if transfer == "logistic" else "equilibrium"
    cfg = ModelConfig(sizes=DEPTHS[depth], transfer=transfer, beta=1e-3, mode=mode, **SETTLED)
    angles, ratios = _max_angle_and_ratio(cfg)
    assert max(angles) < 0.05, angles
    assert max(abs(r - 1) for r in ratios) < 0.01, ratios


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("transfer", ["tanh", "relu"])
def test_update_matches_backprop_tanh_relu(depth, transfer):
    """tanh and relu carry larger O(beta) terms than the logistic (phi' up to 1; for relu a unit
    near its kink can be pushed across it by the nudge), so at beta = 1e-3 a deep net exceeds the
    0.05 deg bar (measured: tanh up to 0.46 deg at depth 4; relu up to 7 deg on an unlucky draw).
    The limit beta -> 0 is what property 2 states: at beta = 1e-5 the bar holds."""
    cfg = ModelConfig(sizes=DEPTHS[depth], transfer=transfer, beta=1e-5, mode="equilibrium",
                      **SETTLED)
    angles, ratios = _max_angle_and_ratio(cfg)
    assert max(angles) < 0.05, angles
    assert max(abs(r - 1) for r in ratios) < 0.01, ratios


@pytest.mark.parametrize("transfer", ["logistic", "tanh", "softplus"])
def test_angle_falls_in_proportion_to_beta(transfer):
    angles = []
    for beta in (0.1, 0.01, 0.001):
        cfg = ModelConfig(sizes=DEPTHS[3], transfer=transfer, beta=beta, mode="equilibrium", **SETTLED)
        angles.append(np.array(_max_angle_and_ratio(cfg)[0]))
    for big, small in zip(angles, angles[1:]):
        ratio = big / small  # per layer; O(beta) means a factor ~10 per decade
        assert np.all((ratio > 6) & (ratio < 15)), ratio


def test_local_error_follows_the_delta_recursion(rng):
    """e_l / beta -> delta_l of docs/model.md §3, computed here from its closed form in numpy."""
    cfg = ModelConfig(sizes=DEPTHS[3], beta=1e-4, mode="equilibrium", **SETTLED)
    net = GhostNetwork(cfg)
    x, y = random_batch(cfg, 8, rng)
    pair = net.phases(x, y)
    sig = lambda z: 1 / (1 + np.exp(-z))
    a, r = [], x
    for W, b in zip(net.params.W, net.params.b):
        a.append(r @ W.T + b)
        r = sig(a[-1])
    dphi = [sig(z) * (1 - sig(z)) for z in a]
    delta = [None] * cfg.n_layers
    delta[-1] = dphi[-1] * (y - r)
    for l in range(cfg.n_layers - 2, -1, -1):
        delta[l] = dphi[l] * (delta[l + 1] @ net.params.B[l].T)
    for l in range(cfg.n_layers):
        e = pair.nudged_currents.e[l] / cfg.beta
        assert np.max(np.abs(e - delta[l])) < 1e-3 * np.max(np.abs(delta[l]))


def test_random_feedback_matches_feedback_alignment():
    for depth in (1, 3):
        cfg = ModelConfig(sizes=DEPTHS[depth], feedback="random", beta=1e-3, **SETTLED)
        out = gradcheck(cfg, batch=16)
        assert out["settings"]["reference"] == "feedback_alignment"
        angles = [row["angle_deg"] for row in out["layers"]]
        assert max(angles) < 0.05, angles
        # and it is not backprop: the hidden layers' updates point elsewhere
        assert max(row["angle_backprop_deg"] for row in out["layers"][:-1]) > 5.0


@pytest.mark.parametrize("mode", ["dynamics", "equilibrium"])
def test_float32_keeps_the_angle_at_beta_001(mode):
    """The fast float32 kernels keep float32 updates within 0.5 degrees of backprop at beta = 0.01."""
    cfg = ModelConfig(sizes=DEPTHS[3], beta=0.01, dtype="float32", settle="tol", tol=1e-6,
                      max_steps=5000, mode=mode)
    out = gradcheck(cfg, batch=16)
    assert max(row["angle_deg"] for row in out["layers"]) < 0.5


def test_clamped_output_is_the_infinite_beta_limit(rng):
    """A clamped output sits at phi^-1(y); a large beta approaches the same nudged state."""
    cfg = ModelConfig(sizes=DEPTHS[2], output="clamp", mode="equilibrium", **SETTLED)
    net = GhostNetwork(cfg)
    x = rng.uniform(0, 1, size=(4, cfg.sizes[0]))
    y = rng.uniform(0.2, 0.8, size=(4, cfg.sizes[-1]))
    clamped = net.phases(x, y)
    assert np.allclose(clamped.nudged_currents.r[-1], y, atol=1e-12)
    big = GhostNetwork(cfg.replace(output="nudge", beta=1e5), net.params).phases(x, y)
    for l in range(cfg.n_layers):
        assert np.max(np.abs(big.nudged.u[l] - clamped.nudged.u[l])) < 1e-3
    dyn = GhostNetwork(cfg.replace(mode="dynamics"), net.params).phases(x, y)
    for l in range(cfg.n_layers):
        assert np.max(np.abs(dyn.nudged.u[l] - clamped.nudged.u[l])) < 1e-6
