"""The torch engine (docs/torch_engine.md) against its oracles: the Numba engine on dense networks,
torch.autograd's backprop and feedback alignment on convolutional ones, the copy ghosts' exact
cancellation, and the model's general-layer equations written out here with torch's own ops."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ghostnet.checks.metrics import layer_alignment
from ghostnet.checks.reference import backprop_gradients, feedback_alignment_gradients
from ghostnet.model.config import ConfigError, ModelConfig
from ghostnet.model.params import Params
from ghostnet.network.network import GhostNetwork

CONV = [
    {"type": "conv", "channels": 3, "kernel": 3, "padding": 1, "pool": 2},
    {"type": "conv", "channels": 4, "kernel": 3},
    {"type": "dense", "units": 6},
    {"type": "dense", "units": 3},
]
INPUT = [2, 8, 8]


def conv_config(**kw) -> ModelConfig:
    base = dict(engine="torch", device="cpu", input=INPUT, layers=CONV, beta=1e-3, seed=1,
                settle="tol", tol=1e-11, max_steps=5000)
    base.update(kw)
    return ModelConfig(**base)


def batch(config: ModelConfig, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, config.sizes[0]))
    y = np.eye(config.sizes[-1])[rng.integers(0, config.sizes[-1], n)]
    return x.astype(config.dtype), y.astype(config.dtype)


def rel(a, b) -> float:
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-300))


# ---- configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize("layers,inp,match", [
    ([{"type": "dense", "units": 5}, {"type": "conv", "channels": 2, "kernel": 3},
      {"type": "dense", "units": 2}], [1, 8, 8], r"layers\[2\] \(conv\).*follows a dense"),
    ([{"type": "conv", "channels": 2, "kernel": 9}, {"type": "dense", "units": 2}], [1, 8, 8],
     r"layers\[1\] \(conv\): kernel 9.*does not fit"),
    ([{"type": "conv", "channels": 2, "kernel": 3, "pool": 4}, {"type": "dense", "units": 2}],
     [1, 8, 8], r"layers\[1\] \(conv\): pool 4 must divide"),
    ([{"type": "conv", "channels": 2, "kernel": 3}], [1, 8, 8], "output layer must be dense"),
    ([{"type": "conv", "channels": 0, "kernel": 3}, {"type": "dense", "units": 2}], [1, 8, 8],
     "channels must be an integer >= 1"),
    ([{"type": "conv", "channels": 2, "kernel": 3, "stride": 2}, {"type": "dense", "units": 2}],
     [1, 8, 8], "unknown key 'stride'"),
    ([{"type": "pool", "size": 2}, {"type": "dense", "units": 2}], [1, 8, 8], "type = 'conv'"),
    ([{"type": "conv", "channels": 2, "kernel": 3}, {"type": "dense", "units": 2}], [64],
     r"layers\[1\] \(conv\): needs an image input"),
])
def test_layer_errors_name_the_layer(layers, inp, match):
    with pytest.raises(ConfigError, match=match) as info:
        ModelConfig(engine="torch", input=inp, layers=layers)
    assert info.value.field == "layers"


def test_input_layers_engine_and_device_are_validated():
    with pytest.raises(ConfigError) as info:
        ModelConfig(engine="torch", input=[1, 8], layers=CONV)
    assert info.value.field == "input"
    with pytest.raises(ConfigError) as info:
        ModelConfig(input=INPUT, layers=CONV)  # engine 'numba' by default
    assert info.value.field == "engine"
    with pytest.raises(ConfigError) as info:
        ModelConfig(engine="torch", input=INPUT, layers=CONV, device="tpu")
    assert info.value.field == "device"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_a_device_is_refused_naming_device():
    with pytest.raises(ConfigError) as info:
        GhostNetwork(conv_config(device="cuda"))
    assert info.value.field == "device"


def test_shapes_chain_and_sizes_are_derived():
    cfg = conv_config()
    assert cfg.shapes == [(2, 8, 8), (3, 4, 4), (4, 2, 2), (6,), (3,)]
    assert cfg.sizes == [128, 48, 16, 6, 3]


def test_toml_and_npz_round_trips_keep_the_kernels_and_their_ties(tmp_path):
    cfg = conv_config(feedback="symmetric", mechanism="copy")
    assert ModelConfig.from_toml(cfg.to_toml()) == cfg
    net = GhostNetwork(cfg)
    assert net.params.B[0] is net.params.W[1]  # a conv layer's feedback kernel is W itself
    assert net.params.W[0].shape == (3, 2, 3, 3) and net.params.B[1].shape == (16, 6)
    net.save(tmp_path / "p.npz")
    back = GhostNetwork.load(tmp_path / "p.npz")
    assert back.config == cfg
    for name in ("W", "b", "B", "G", "c", "H"):
        for a, b in zip(getattr(net.params, name), getattr(back.params, name)):
            np.testing.assert_array_equal(a, b)
    assert back.params.B[0] is back.params.W[1] and back.params.G[0] is back.params.W[1]


def test_conv_initialisation_is_glorot_on_fan_in_and_fan_out():
    cfg = conv_config(layers=[{"type": "conv", "channels": 40, "kernel": 5},
                              {"type": "dense", "units": 3}], input=[30, 9, 9])
    W = Params.init(cfg).W[0]
    bound = np.sqrt(6.0 / ((30 + 40) * 25))  # torch.nn.init.xavier_uniform_'s bound
    assert W.min() >= -bound and W.max() <= bound and W.max() > 0.98 * bound


# ---- dense networks: the Numba engine as the oracle --------------------------------------------
@pytest.mark.parametrize("mode", ["equilibrium", "dynamics"])
@pytest.mark.parametrize("mechanism", ["copy", "replicate", "learned"])
@pytest.mark.parametrize("feedback", ["symmetric", "random", "plastic"])
@pytest.mark.parametrize("cost", ["mse", "cross_entropy"])
def test_dense_agrees_with_numba(mode, mechanism, feedback, cost):
    """The two engines were written independently (the cross-entropy output too): states,
    updates and weights after two training steps agree to 1e-9."""
    kw = dict(sizes=[12, 9, 7, 5], beta=0.05, mode=mode, mechanism=mechanism, feedback=feedback,
              settle="fixed", steps=25, seed=3, method="euler" if mechanism == "replicate"
              else "expeuler", dt=0.2, cost=cost)
    numba_cfg = ModelConfig(**kw)
    torch_cfg = ModelConfig(**kw, engine="torch", device="cpu")
    p = Params.init(numba_cfg)
    a, b = GhostNetwork(numba_cfg, p.copy()), GhostNetwork(torch_cfg, p.copy())
    x, y = batch(numba_cfg, 6)
    for _ in range(2):  # two training steps: states, updates and the learned ghosts' plasticity
        pa, pb = a.step(x, y, 0.5), b.step(x, y, 0.5)
        for sa, sb in ((pa.free, pb.free), (pa.nudged, pb.nudged)):
            for ua, ub in zip(sa.u + sa.v, sb.u + sb.v):
                assert rel(ua, ub) < 1e-9
        ua, ub = a.update(pa), b.update(pb)
        for da, db in zip(ua.dW + ua.db + ua.dB, ub.dW + ub.db + ub.dB):
            assert rel(da, db) < 1e-9
    for name in ("W", "b", "B", "G", "c", "H"):
        for wa, wb in zip(getattr(a.params, name), getattr(b.params, name)):
            assert rel(wa, wb) < 1e-9


@pytest.mark.parametrize("mechanism", ["copy", "learned"])
def test_dense_one_down_pass_agrees_with_numba(mechanism):
    """eq_max_iter = 1 (one down pass a phase; with learned ghosts the nudged pass starts from
    the free pass's feedforward rates): the two engines agree to 1e-9 over two training steps."""
    kw = dict(sizes=[12, 9, 7, 5], beta=0.05, mode="equilibrium", eq_max_iter=1,
              mechanism=mechanism, transfer="tanh", seed=4)
    p = Params.init(ModelConfig(**kw))
    a = GhostNetwork(ModelConfig(**kw), p.copy())
    b = GhostNetwork(ModelConfig(**kw, engine="torch", device="cpu"), p.copy())
    x, y = batch(ModelConfig(**kw), 6)
    for _ in range(2):
        pa, pb = a.step(x, y, 0.5), b.step(x, y, 0.5)
        for sa, sb in ((pa.free, pb.free), (pa.nudged, pb.nudged)):
            for ua, ub in zip(sa.u + sa.v, sb.u + sb.v):
                assert rel(ua, ub) < 1e-9
    for name in ("W", "b", "G", "c", "H"):
        for wa, wb in zip(getattr(a.params, name), getattr(b.params, name)):
            assert rel(wa, wb) < 1e-9


def test_dense_clamped_output_and_tolerance_settling_agree_with_numba():
    kw = dict(sizes=[10, 8, 4], output="clamp", settle="tol", tol=1e-9, max_steps=3000, seed=2)
    p = Params.init(ModelConfig(**kw))
    x, y = batch(ModelConfig(**kw), 5)
    y = 0.1 + 0.8 * y
    a = GhostNetwork(ModelConfig(**kw), p.copy()).phases(x, y)
    b = GhostNetwork(ModelConfig(**kw, engine="torch", device="cpu"), p.copy()).phases(x, y)
    assert a.nudged_result.steps == b.nudged_result.steps
    for ua, ub in zip(a.nudged.u, b.nudged.u):
        assert rel(ua, ub) < 1e-9


# ---- convolutional networks -------------------------------------------------------------------
def feedforward_reference(cfg: ModelConfig, params: Params, x):
    """The feedforward pass written out with torch's ops (the free fixed point, Property 1)."""
    r = torch.tensor(x).reshape(len(x), *cfg.shapes[0])
    out = []
    for i, spec in enumerate(cfg.layers):
        W, b = torch.tensor(params.W[i]), torch.tensor(params.b[i])
        if spec["type"] == "conv":
            z = F.avg_pool2d(F.conv2d(r, W, padding=spec["padding"]), spec["pool"])
            a = z + b.view(1, -1, 1, 1)
        else:
            a = r.reshape(len(r), -1) @ W.T + b
        out.append(a.numpy())
        r = torch.sigmoid(a)
    return out


@pytest.mark.parametrize("mode", ["equilibrium", "dynamics"])
def test_copy_ghosts_cancel_the_feedback_exactly_in_the_free_phase(mode):
    cfg = conv_config(mode=mode, settle="fixed", steps=60)
    net = GhostNetwork(cfg)
    x, _ = batch(cfg, 4)
    state, _ = net.free_phase(x)
    cur = net.engine.currents(net.params, state, None, 0.0)  # recomputed from the state
    for i in range(cfg.n_layers - 1):
        assert not cur.t[i].any()  # exactly zero
        assert np.abs(net.engine.feedback_input(net.params, i, cur.r[i + 1])).max() > 1e-2
    if mode == "equilibrium":
        for u, a in zip(state.u, feedforward_reference(cfg, net.params, x)):
            assert rel(a, u) < 1e-12


@pytest.mark.parametrize("mode", ["equilibrium", "dynamics"])
def test_conv_update_matches_backprop(mode):
    cfg = conv_config(mode=mode)
    net = GhostNetwork(cfg)
    x, y = batch(cfg, 5)
    upd = net.update(net.phases(x, y))
    gW, gb, _ = backprop_gradients(cfg, net.params, x, y)
    for row in layer_alignment(upd, gW, gb):
        assert row["angle_deg"] < 0.05, row
        assert abs(row["norm_ratio"] - 1) < 0.01, row


@pytest.mark.parametrize("mode", ["equilibrium", "dynamics"])
def test_conv_random_feedback_matches_feedback_alignment(mode):
    cfg = conv_config(mode=mode, feedback="random")
    net = GhostNetwork(cfg)
    x, y = batch(cfg, 5)
    upd = net.update(net.phases(x, y))
    fW, fb, _ = feedback_alignment_gradients(cfg, net.params, x, y)
    for row in layer_alignment(upd, fW, fb):
        assert row["angle_deg"] < 0.05, row
        assert abs(row["norm_ratio"] - 1) < 0.01, row
    gW, gb, _ = backprop_gradients(cfg, net.params, x, y)
    assert max(r["angle_deg"] for r in layer_alignment(upd, gW, gb)) > 10  # not backprop


def test_ghost_learning_runs_without_autograd(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("autograd was called")

    monkeypatch.setattr(torch.Tensor, "backward", refuse)
    monkeypatch.setattr(torch.autograd, "backward", refuse)
    monkeypatch.setattr(torch.autograd, "grad", refuse)
    for mechanism in ("copy", "learned"):
        cfg = conv_config(mechanism=mechanism, mode="equilibrium", beta=0.01)
        net = GhostNetwork(cfg)
        x, y = batch(cfg, 4)
        before = [w.copy() for w in net.params.W]
        with torch.autograd.set_grad_enabled(False):
            net.step(x, y, 0.1)
        assert all(np.abs(a - b).max() > 0 for a, b in zip(before, net.params.W))


def test_learned_conv_ghosts_learn_by_the_rules_through_the_kernels():
    """dG = (r_{l+1} - phi(v_l)) x r_l and dH = t_l x phi(v_l), each pooled over the positions
    sharing a weight: the gradients of <err, A(G) r> and <t, A(H)^T g> = <A(H) t, g> in the
    kernels, which autograd computes here from the forward map alone."""
    cfg = conv_config(mechanism="learned", mode="equilibrium", beta=0.01)
    net = GhostNetwork(cfg)
    x, _ = batch(cfg, 4)
    state, _ = net.free_phase(x)
    cur = net.engine.currents(net.params, state, None, 0.0, x=x)
    dG, dc, dH = net.engine.ghost_update(net.params, cur)
    from ghostnet.checks.reference import _layer_map

    n = len(x)
    for i in range(cfg.n_layers - 1):
        r_lo, r_hi = torch.tensor(cur.r[i]), torch.tensor(cur.r[i + 1])
        g, t = torch.tensor(cur.ghost_rate[i]), torch.tensor(cur.t[i])
        G = torch.tensor(net.params.G[i], requires_grad=True)
        (((r_hi - g) * _layer_map(cfg, i + 1, r_lo, G)).sum() / n).backward()
        np.testing.assert_allclose(dG[i], G.grad.numpy(), rtol=1e-10, atol=1e-14)
        H = torch.tensor(net.params.H[i], requires_grad=True)
        K = H if cfg.is_conv(i + 1) else H.T
        ((_layer_map(cfg, i + 1, t, K) * g).sum() / n).backward()
        np.testing.assert_allclose(dH[i], H.grad.numpy(), rtol=1e-10, atol=1e-14)
        axes = (0, 2, 3) if cfg.is_conv(i + 1) else (0,)
        np.testing.assert_allclose(dc[i], (r_hi - g).sum(axes).numpy() / n, rtol=1e-10)


def test_plastic_conv_feedback_moves_with_the_kernel_above():
    cfg = conv_config(feedback="plastic", mode="equilibrium")
    net = GhostNetwork(cfg)
    x, y = batch(cfg, 4)
    upd = net.update(net.phases(x, y))
    np.testing.assert_array_equal(upd.dB[0], upd.dW[1])  # conv: the kernel's own form
    np.testing.assert_array_equal(upd.dB[2], upd.dW[3].T)  # dense: W^T's form


def test_float32_conv_follows_float64():
    x, y = batch(conv_config(), 4)
    cfg32 = conv_config(dtype="float32", beta=0.05, mode="equilibrium")
    cfg64 = conv_config(beta=0.05, mode="equilibrium")
    p = Params.init(cfg64)
    p32 = Params(*[[a.astype(np.float32) for a in getattr(p, k)] for k in
                   ("W", "b", "B", "G", "c", "H")])
    up32 = GhostNetwork(cfg32, p32).update(GhostNetwork(cfg32, p32).phases(x, y))
    up64 = GhostNetwork(cfg64, p).update(GhostNetwork(cfg64, p).phases(x, y))
    assert up32.dW[0].dtype == np.float32 and up64.dW[0].dtype == np.float64
    for a, b in zip(up32.dW, up64.dW):  # e is a difference of rates ~ beta: float32 keeps ~3 digits
        assert rel(b, a) < 1e-2


def test_cifar_shaped_network_trains_on_synthetic_data(tmp_path):
    """The CIFAR-10 configuration's network shape (3 x 32 x 32 input) on random images: every
    learner runs a step and learns (no data needed)."""
    from ghostnet.learning.data import Dataset
    from ghostnet.learning.settings import TrainConfig
    from ghostnet.learning.training import train

    cfg = TrainConfig.load(_config_path("cifar10_lenet.toml"))
    assert cfg.model.input == [3, 32, 32]
    rng = np.random.default_rng(0)
    n = 40
    data = Dataset("cifar10", rng.uniform(0, 1, (n, 3072)).astype(np.float32),
                   rng.integers(0, 10, n), rng.uniform(0, 1, (20, 3072)).astype(np.float32),
                   rng.integers(0, 10, 20), 10, "synthetic")
    import dataclasses

    for learner in ("ghost", "backprop"):
        t = dataclasses.replace(cfg.train, learner=learner, epochs=1, batch_size=20,
                                train_size=n, val_size=0, probe_size=4)
        s = train(TrainConfig(cfg.model.replace(dtype="float64"), t).validate(),
                  tmp_path / learner, data=data, progress=False)
        assert np.isfinite(s["final"]["train_cost"])


def _config_path(name):
    from pathlib import Path

    return Path(__file__).resolve().parents[1] / "experiments" / "configs" / name


def test_gradcheck_command_takes_a_conv_model_from_a_config_file(tmp_path, capsys):
    import json

    from ghostnet.cli import main

    cfg = conv_config(mode="equilibrium", feedback="random")
    path = tmp_path / "model.toml"
    cfg.save(path)
    assert main(["gradcheck", "--config", str(path), "--batch", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["settings"]["reference"] == "feedback_alignment"
    assert out["settings"]["layers"][0]["type"] == "conv"
    for row in out["layers"]:
        assert row["angle_deg"] < 0.05 and abs(row["norm_ratio"] - 1) < 0.01
    assert all(row["cancel_residual"] == 0.0 for row in out["layers"][:-1])
    assert main(["gradcheck", "--config", str(path), "--batch", "2"]) == 0
    assert "conv 3x3x3 pool 2" in capsys.readouterr().out


@pytest.mark.parametrize("mechanism", ["copy", "replicate", "learned"])
def test_conv_equilibrium_solver_finds_the_dynamics_fixed_point(mechanism):
    """Both modes on a conv network: the fixed-point solver's free and nudged states are where
    the integrated dynamics settle (max |du/dt| < 1e-12), for every mechanism."""
    eq = conv_config(mode="equilibrium", mechanism=mechanism, feedback="random", beta=0.05)
    dyn = conv_config(mode="dynamics", mechanism=mechanism, feedback="random", beta=0.05,
                      tol=1e-12, max_steps=20000, method="expeuler", dt=0.5)
    p = Params.init(eq)
    x, y = batch(eq, 3)
    a, b = GhostNetwork(eq, p.copy()).phases(x, y), GhostNetwork(dyn, p.copy()).phases(x, y)
    assert b.free_result.converged and b.nudged_result.converged
    for sa, sb in ((a.free, b.free), (a.nudged, b.nudged)):
        for ua, ub in zip(sa.u + sa.v, sb.u + sb.v):
            assert np.abs(ua - ub).max() < 1e-9
    ea, eb = a.nudged_currents.e, b.nudged_currents.e
    for da, db in zip(ea, eb):
        assert np.abs(da - db).max() < 1e-9


def test_cifar_images_are_flattened_channels_first(tmp_path):
    from ghostnet.learning.data import load

    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", x_train=hwc, y_train=np.arange(4), x_test=hwc[:2],
             y_test=np.arange(2))
    d = load("cifar10", tmp_path / "c.npz")
    np.testing.assert_array_equal(d.x_train[1].reshape(3, 32, 32),
                                  hwc[1].transpose(2, 0, 1) / np.float32(255))


@pytest.mark.parametrize("mode", ["equilibrium", "dynamics"])
@pytest.mark.parametrize("feedback", ["symmetric", "random"])
def test_cross_entropy_output_update_matches_autograd(mode, feedback):
    """cost = 'cross_entropy': nudge beta (y - softmax(u_L)), a linear output to the feedback
    pathway and linear ghosts below it; the update tends to backprop's (or feedback alignment's)
    gradient of the cross-entropy of softmax(a_L)."""
    cfg = conv_config(mode=mode, feedback=feedback, cost="cross_entropy")
    net = GhostNetwork(cfg)
    x, y = batch(cfg, 5)
    pair = net.phases(x, y)
    upd = net.update(pair)
    ref = feedback_alignment_gradients if feedback == "random" else backprop_gradients
    gW, gb, cost = ref(cfg, net.params, x, y)
    for row in layer_alignment(upd, gW, gb):
        assert row["angle_deg"] < 0.05, row
        assert abs(row["norm_ratio"] - 1) < 0.01, row
    free = pair.free_currents
    assert not any(t.any() for t in free.t)  # the copy ghosts still cancel exactly
    np.testing.assert_allclose(free.r[-1], pair.free.u[-1])  # the output's rate is u_L
    assert abs(cost - float(-(y * np.log(net.engine.feedforward(net.params, x))).sum(1).mean())) \
        < 1e-12


@pytest.mark.parametrize("engine", ["numba", "torch"])
def test_an_unknown_cost_is_refused(engine):
    with pytest.raises(ConfigError) as info:
        ModelConfig(cost="hinge", engine=engine)
    assert info.value.field == "cost"


def test_cross_entropy_prediction_is_the_softmax_for_every_learner():
    from ghostnet.learning.learners import Learner
    from ghostnet.learning.settings import TrainConfig, TrainSettings

    cfg = conv_config(mode="equilibrium", cost="cross_entropy")
    p = Params.init(cfg)
    x, _ = batch(cfg, 4)
    z = torch.tensor(x)
    for i, spec in enumerate(cfg.layers):
        W, b = torch.tensor(p.W[i]), torch.tensor(p.b[i])
        if spec["type"] == "conv":
            z = z.reshape(len(x), *cfg.shapes[i]) if i == 0 else z
            z = F.avg_pool2d(F.conv2d(z, W, padding=spec["padding"]), spec["pool"]) \
                + b.view(1, -1, 1, 1)
        else:
            z = z.reshape(len(x), -1) @ W.T + b
        z = torch.sigmoid(z) if i < cfg.n_layers - 1 else torch.softmax(z, dim=1)
    for learner in ("ghost", "backprop"):
        lrn = Learner(TrainConfig(cfg, TrainSettings(learner=learner)).validate(), p.copy())
        np.testing.assert_allclose(lrn.predict(x), z.numpy(), rtol=1e-12, atol=1e-15)


def test_open_loop_phase_agrees_with_the_numba_engine_and_the_conv_maps():
    """The open-loop phase of ghost pre-training (docs/model.md §5) on the torch engine: on a
    dense network the Numba engine's to 1e-9; on a conv network the ghosts' potentials are
    layer l+1's forward map with the ghost kernel, written out with torch's conv2d here."""
    from ghostnet.network.mechanisms import open_loop_phase

    kw = dict(sizes=[12, 9, 7, 4], mechanism="learned", mode="equilibrium", seed=4)
    a = GhostNetwork(ModelConfig(**kw))
    b = GhostNetwork(ModelConfig(engine="torch", device="cpu", **kw), a.params.copy())
    x = np.random.default_rng(0).uniform(0, 1, (5, 12))
    sa, sb = open_loop_phase(a, x), open_loop_phase(b, x)
    for p, q in zip(sa.u + sa.v, sb.u + sb.v):
        assert rel(p, q) < 1e-9
    cfg = conv_config(mechanism="learned", mode="equilibrium")
    net = GhostNetwork(cfg)
    xc, _ = batch(cfg, 3)
    state = open_loop_phase(net, xc)
    r1 = torch.tensor(np.tanh(state.u[0]) if cfg.transfer == "tanh" else 1 / (1 + np.exp(-state.u[0])))
    s = CONV[1]
    v0 = F.conv2d(r1, torch.tensor(net.params.G[0]), padding=s.get("padding", 0))
    v0 = v0 + torch.tensor(net.params.c[0]).view(1, -1, 1, 1)
    np.testing.assert_allclose(state.v[0], v0.numpy(), rtol=1e-10, atol=1e-12)
