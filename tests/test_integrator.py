"""The Numba integrator against scipy's solve_ivp, equilibrium mode against dynamics mode, settling,
recording and blow-up detection."""
from __future__ import annotations

import numpy as np
import pytest

from ghostnet import BlowUpError, GhostNetwork, ModelConfig, Recording, State, random_batch
from ghostnet.model.state import currents
from ghostnet.checks.reference import ivp_phase

SIZES = [6, 8, 7, 5, 3]


def _both_phases(net, x, y, n):
    free, _ = net.free_phase(x, n_steps=n)
    nudged = free.copy()
    net.nudged_phase(nudged, x, y, n_steps=n)
    return free, nudged


def _ivp(cfg, params, x, y, T):
    z = State.zeros(cfg, x.shape[0])
    u1, v1 = ivp_phase(cfg, params, x, z.u, z.v, T)
    u2, v2 = ivp_phase(cfg, params, x, u1, v1, T, y=y, beta=cfg.beta)
    return State(u1, v1), State(u2, v2)


def _maxdiff(a: State, b: State) -> float:
    return max(np.abs(p - q).max() for p, q in zip(a.u + a.v, b.u + b.v))


@pytest.mark.slow
def test_fine_step_matches_solve_ivp(rng):
    """Exponential Euler with dt = 2e-6 over 2 tau per phase: |u - u_ivp| < 1e-6 at each phase end."""
    T, dt = 2.0, 2e-6
    cfg = ModelConfig(sizes=SIZES, beta=0.5, dt=dt, method="expeuler", settle="fixed", init_gain=2.0)
    net = GhostNetwork(cfg)
    x, y = random_batch(cfg, 3, rng)
    free, nudged = _both_phases(net, x, y, int(round(T / dt)))
    ref_free, ref_nudged = _ivp(cfg, net.params, x, y, T)
    assert _maxdiff(free, ref_free) < 1e-6
    assert _maxdiff(nudged, ref_nudged) < 1e-6


@pytest.mark.parametrize("method", ["euler", "expeuler"])
@pytest.mark.parametrize("transfer", ["logistic", "tanh"])
def test_integrators_converge_at_first_order_to_solve_ivp(method, transfer, rng):
    """Both methods are first order: ten times smaller a step, ten times smaller the error against
    solve_ivp, on a trajectory that is far from settled (2 tau per phase, beta = 0.5)."""
    T = 2.0
    errors = []
    for dt in (1e-2, 1e-3):
        cfg = ModelConfig(sizes=SIZES, beta=0.5, dt=dt, method=method, transfer=transfer,
                          settle="fixed", init_gain=2.0)
        net = GhostNetwork(cfg)
        x, y = random_batch(cfg, 3, np.random.default_rng(5))
        free, nudged = _both_phases(net, x, y, int(round(T / dt)))
        ref_free, ref_nudged = _ivp(cfg, net.params, x, y, T)
        errors.append((_maxdiff(free, ref_free), _maxdiff(nudged, ref_nudged)))
    for coarse, fine in zip(*errors):
        assert 7 < coarse / fine < 13, errors


@pytest.mark.parametrize("transfer", ["logistic", "tanh", "softplus", "relu"])
@pytest.mark.parametrize("feedback", ["symmetric", "random"])
def test_equilibrium_mode_matches_dynamics_mode(transfer, feedback, rng):
    cfg = ModelConfig(sizes=SIZES, beta=0.2, transfer=transfer, feedback=feedback,
                      settle="tol", tol=1e-12, max_steps=50000)
    dyn = GhostNetwork(cfg)
    eq = GhostNetwork(cfg.replace(mode="equilibrium"), dyn.params)
    x, y = random_batch(cfg, 5, rng)
    a, b = dyn.phases(x, y), eq.phases(x, y)
    assert a.free_result.converged and a.nudged_result.converged
    assert b.free_result.converged and b.nudged_result.converged
    assert _maxdiff(a.free, b.free) < 1e-6
    assert _maxdiff(a.nudged, b.nudged) < 1e-6


def test_tolerance_settling_reports_convergence(rng):
    cfg = ModelConfig(sizes=SIZES, settle="tol", tol=1e-8, max_steps=5000)
    net = GhostNetwork(cfg)
    x, _ = random_batch(cfg, 4, rng)
    _, res = net.free_phase(x)
    assert res.converged and res.steps < 5000 and res.max_derivative < 1e-8
    _, capped = GhostNetwork(cfg.replace(max_steps=10), net.params).free_phase(x)
    assert not capped.converged and capped.steps == 10 and capped.max_derivative > 1e-8


def test_recording_stride_and_final_state(rng):
    cfg = ModelConfig(sizes=SIZES, settle="fixed", steps=23)
    net = GhostNetwork(cfg)
    x, _ = random_batch(cfg, 2, rng)
    state, res = net.free_phase(x, record=Recording(stride=5, what=("u", "v", "t", "e")))
    tr = res.trajectory
    assert list(tr["step"]) == [0, 5, 10, 15, 20, 23]
    for l in range(cfg.n_layers):
        assert tr["u"][l].shape == (6, 2, cfg.sizes[l + 1])
        assert np.array_equal(tr["u"][l][-1], state.u[l])
        assert np.all(tr["u"][l][0] == 0.0)
    assert len(tr["v"]) == cfg.n_layers - 1 and len(tr["e"]) == cfg.n_layers
    # unrecorded run: the same final state
    state2, res2 = net.free_phase(x)
    assert res2.trajectory is None
    assert all(np.array_equal(p, q) for p, q in zip(state.u, state2.u))


@pytest.mark.parametrize("python_loop", [False, True])
def test_blow_up_is_detected_and_names_dt(python_loop, rng):
    """Strong positive feedback through B makes relu potentials run away within the step bound of
    the leak term: the integrator stops and the error names dt and the bound (with the loop over
    steps in the kernel, and in Python as networks with wide layers take it)."""
    cfg = ModelConfig(sizes=[4, 6, 6, 3], transfer="relu", method="euler", dt=0.5,
                      settle="fixed", steps=2000, mechanism="learned")
    net = GhostNetwork(cfg)
    net.engine.integrator.workspace(2).python_loop = python_loop
    for w in net.params.W + net.params.B:
        w[...] = np.abs(w) * 5.0
    net.params.H[0][...] = 0.0  # learned ghosts, no inhibition yet: nothing cancels the loop
    x = rng.uniform(0.5, 1, size=(2, 4))
    with pytest.raises(BlowUpError, match=r"dt = 0\.5.*dt < 1\.98"):
        net.free_phase(x)


def test_float32_runs_in_float32(rng):
    cfg = ModelConfig(sizes=SIZES, dtype="float32", settle="fixed", steps=10)
    net = GhostNetwork(cfg)
    x, y = random_batch(cfg, 3, rng)
    pair = net.phases(x, y)
    assert pair.nudged.u[0].dtype == np.float32
    assert net.update(pair).dW[0].dtype == np.float32


def test_bad_input_shapes_are_refused(rng):
    net = GhostNetwork(ModelConfig(sizes=SIZES))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 6\)"):
        net.free_phase(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"y must have shape \(2, 3\)"):
        net.phases(np.zeros((2, 6)), np.zeros((2, 4)))


@pytest.mark.parametrize("mechanism", ["copy", "learned", "replicate"])
@pytest.mark.parametrize("transfer", ["logistic", "tanh", "softplus", "relu"])
def test_python_loop_matches_the_kernel_loop(mechanism, transfer, rng):
    """Networks with wide layers loop over the steps in Python (products in their faster
    orientation), others inside the kernel: the same phases to rounding (float64), both phases,
    blow-up check included."""
    cfg = ModelConfig(sizes=[30, 40, 35, 10], transfer=transfer, mechanism=mechanism, beta=0.1,
                      settle="fixed", steps=40, seed=3)
    net = GhostNetwork(cfg)
    x, y = random_batch(cfg, 16, rng)
    out = {}
    for python_loop in (False, True):
        net.engine.integrator.workspace(16).python_loop = python_loop
        out[python_loop] = _both_phases(net, x, y, 40)
    assert _maxdiff(out[True][0], out[False][0]) < 1e-12
    assert _maxdiff(out[True][1], out[False][1]) < 1e-12
    assert _maxdiff(out[True][1], out[True][0]) > 1e-4  # the nudge did something
    if mechanism != "copy":  # random learned ghosts, or replicate's loop, need not settle
        return
    # and the tolerance rule stops at the same step on either path
    tol_net = GhostNetwork(cfg.replace(settle="tol", tol=1e-5, max_steps=3000))
    steps = {}
    for python_loop in (False, True):
        tol_net.engine.integrator.workspace(16).python_loop = python_loop
        steps[python_loop] = tol_net.free_phase(x)[1].steps
    assert steps[True] == steps[False] < 3000


@pytest.mark.parametrize("mechanism", ["copy", "learned", "replicate"])
def test_equilibrium_hand_over_matches_recomputed_currents(mechanism, rng):
    """In equilibrium mode `phases` takes the top-down inputs, rates and ghost rates (and, for copy
    ghosts, the errors: the last down pass's r - phi(v)) from the solver instead of recomputing
    them; at the fixed point they agree with `currents` computed
    from the state alone (r = phi(u), t = B r - H phi(v), e = phi(u) - phi(u - t)), to the
    solver's tolerance (t, e) or exactly (the rates of the returned state)."""
    cfg = ModelConfig(sizes=[20, 30, 25, 15, 5], mode="equilibrium", beta=0.05,
                      mechanism=mechanism, init_gain=1.5)
    net = GhostNetwork(cfg)
    x, y = random_batch(cfg, 8, rng)
    pair = net.phases(x, y)
    assert pair.free_result.converged and pair.nudged_result.converged
    for state, cur, target in ((pair.free, pair.free_currents, None),
                               (pair.nudged, pair.nudged_currents, y)):
        ref = currents(cfg, net.params, state, target, cfg.beta if target is not None else 0.0, x=x)
        for i in range(len(state.u)):
            assert np.abs(cur.t[i] - ref.t[i]).max() < 1e-9
            assert np.abs(cur.e[i] - ref.e[i]).max() < 1e-9
            assert np.abs(cur.r[i] - ref.r[i]).max() < 1e-12
        for i in range(len(state.v)):
            assert np.abs(cur.ghost_rate[i] - ref.ghost_rate[i]).max() < 1e-12
    assert max(np.abs(e).max() for e in pair.nudged_currents.e) > 1e-4  # a real error signal


def test_one_down_pass_is_the_first_order_error(rng):
    """eq_max_iter = 1: the nudged phase is one pass from the top down at the free phase's
    bottom-up inputs, so e_L = phi(u_L) - phi(a_L) with u_L = a_L + beta (y - phi(u_L)) and
    e_l = phi(a_l + B_l e_{l+1}) - phi(a_l) (docs/model.md §3, property 2's recursion with a_l fixed),
    computed here from the feedforward pass alone."""
    from scipy.optimize import brentq

    from ghostnet.model.transfer import phi

    cfg = ModelConfig(sizes=[20, 30, 25, 15, 5], mode="equilibrium", beta=0.05, eq_max_iter=1)
    net = GhostNetwork(cfg)
    x, y = random_batch(cfg, 6, rng)
    pair = net.phases(x, y)
    assert pair.nudged_result.steps == 1
    p = net.params
    a, r = [], x
    for W, b in zip(p.W, p.b):
        a.append(r @ W.T + b)
        r = phi(a[-1], "logistic")
    uL = np.vectorize(lambda al, yl: brentq(
        lambda u: u - al - cfg.beta * (yl - 1 / (1 + np.exp(-u))), al - 1, al + 1))(a[-1], y)
    e = [None] * len(a)
    e[-1] = phi(uL, "logistic") - phi(a[-1], "logistic")
    for i in range(len(a) - 2, -1, -1):
        e[i] = phi(a[i] + e[i + 1] @ p.B[i].T, "logistic") - phi(a[i], "logistic")
    for mine, ref in zip(pair.nudged_currents.e, e):
        assert np.abs(mine - ref).max() < 1e-12 * max(1.0, np.abs(ref).max()) + 1e-14


def test_equilibrium_converges_where_gauss_seidel_oscillates():
    """A strongly coupled case (tanh, beta = 0.2) where plain Gauss-Seidel settles into a
    two-value oscillation (500 passes without converging before the damping existed): the
    under-relaxed passes reach the fixed point the integrated dynamics reaches."""
    cfg = ModelConfig(sizes=[6, 8, 7, 5, 3], beta=0.2, transfer="tanh", mode="equilibrium", seed=0)
    eq = GhostNetwork(cfg)
    dyn = GhostNetwork(cfg.replace(mode="dynamics", settle="tol", tol=1e-11, max_steps=200000),
                       eq.params)
    x, y = random_batch(cfg, 5, np.random.default_rng(0))
    a, b = eq.phases(x, y), dyn.phases(x, y)
    assert a.nudged_result.converged and b.nudged_result.converged
    assert _maxdiff(a.nudged, b.nudged) < 1e-8


@pytest.mark.parametrize("transfer", ["logistic", "tanh", "softplus", "relu"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_output_equation_newton_matches_brentq(transfer, dtype, rng):
    """The nudged output's scalar equation u = a + beta (y - phi(u)), solved element-wise by the
    Newton kernel from a cold start, against scipy's brentq on each element, small to large beta."""
    from scipy.optimize import brentq

    from ghostnet.engines.numba_equilibrium import _solve_output
    from ghostnet.model.transfer import phi

    for beta in (1e-3, 1.0, 20.0):
        a = rng.normal(0, 3, size=(7, 4)).astype(dtype)
        y = rng.uniform(0, 1, size=(7, 4)).astype(dtype)
        u = _solve_output(a, np.zeros_like(a), y, beta, transfer)
        assert u.dtype == np.dtype(dtype)

        def root(al, yl):
            f = lambda s: s - al - beta * (yl - float(phi(np.array(s), transfer)))  # noqa: E731
            return brentq(f, al - 25 * (1 + beta), al + 25 * (1 + beta), xtol=1e-14)

        ref = np.vectorize(root)(a.astype(float), y.astype(float))
        tol = 1e-12 if dtype == "float64" else 4e-6
        assert np.abs(u - ref).max() <= tol * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("method", ["euler", "expeuler"])
@pytest.mark.parametrize("mechanism", ["copy", "learned", "replicate"])
def test_float32_steps_agree_with_float64_on_both_paths(method, mechanism, rng):
    """The element-wise kernel computes float32 networks in float32 (vector width): both loops
    (Python, kernel) agree with the same network run in float64 to float32 rounding, with a
    clamped output too (the output is not integrated), and stay float32."""
    for output in ("nudge", "clamp"):
        cfg = ModelConfig(sizes=[30, 40, 35, 10], mechanism=mechanism, method=method, beta=0.1,
                          settle="fixed", steps=40, seed=3, dtype="float64", output=output)
        x, y = random_batch(cfg, 16, rng)
        y = np.clip(y, 0.05, 0.95)
        ref = _both_phases(GhostNetwork(cfg), x, y, 40)
        net = GhostNetwork(cfg.replace(dtype="float32"))
        x32, y32 = x.astype(np.float32), y.astype(np.float32)
        for python_loop in (False, True):
            net.engine.integrator.workspace(16).python_loop = python_loop
            out = _both_phases(net, x32, y32, 40)
            for k in (0, 1):
                assert out[k].u[0].dtype == np.float32
                scale = max(np.abs(a).max() for a in ref[k].u + ref[k].v)
                assert _maxdiff(out[k], ref[k]) < 2e-5 * max(1.0, scale)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_parameters_changed_or_replaced_between_phases_are_seen(dtype, rng):
    """The integrator keeps its typed lists of the parameters between phases: a phase after an
    in-place change (W_2 scaled, so also the symmetric feedback B_1 = W_2^T, a view the kernels
    get as a copy; a bias) or after replacing an array agrees bitwise with a fresh network
    holding the same values."""
    cfg = ModelConfig(sizes=SIZES, settle="fixed", steps=20, dtype=dtype, beta=0.1)
    net = GhostNetwork(cfg)
    x, y = random_batch(cfg, 4, rng)
    _both_phases(net, x, y, 20)  # builds the lists
    net.params.W[1] *= 1.5
    net.params.b[2] += 0.25
    old = net.params.W[0]
    kept = old.copy()
    net.params.W[0] = old * 0.5  # a new array
    net.params.tie(cfg)
    fresh = GhostNetwork(cfg, params=net.params.copy())
    got, want = _both_phases(net, x, y, 20), _both_phases(fresh, x, y, 20)
    for k in (0, 1):
        assert all(np.array_equal(p, q) for p, q in zip(got[k].u + got[k].v, want[k].u + want[k].v))
    assert np.array_equal(old, kept)  # the array it replaced is left alone
    # and the change mattered
    before = _both_phases(GhostNetwork(cfg), x, y, 20)
    assert _maxdiff(got[1], before[1]) > 1e-3


@pytest.mark.parametrize("engine", ["numba", "torch"])
def test_one_down_pass_with_learned_ghosts_differs_by_the_nudge_alone(engine, rng):
    """eq_max_iter = 1 with learned ghosts that do not cancel the feedback: the free phase is the
    feedforward pass plus one down pass (not a fixed point), so the nudged pass must start from
    the same feedforward rates. Then a nudge of zero reproduces the free phase's errors exactly,
    and the update (e - e_free) / beta has a finite first-order limit: beta = 1e-3 and 1e-4 give
    the same update (it would grow as 1 / beta if the uncancelled residual entered it)."""
    pytest.importorskip("torch")
    cfg = ModelConfig(sizes=[12, 10, 9, 4], mode="equilibrium", mechanism="learned",
                      eq_max_iter=1, engine=engine, dtype="float64", seed=3)
    net = GhostNetwork(cfg)
    p = net.params
    for i in range(len(p.G)):  # ghosts far from their copies: a residual of order one
        p.G[i][...] = rng.standard_normal(p.G[i].shape) * 0.5
        p.H[i][...] = rng.standard_normal(p.H[i].shape) * 0.5
    x, y = random_batch(cfg, 5, rng)
    pair = net.phases(x, y, beta=0.0)
    residual = max(np.abs(t).max() for t in pair.free_currents.t[:-1])
    assert residual > 0.05  # the ghosts really leave feedback uncancelled
    for ef, en in zip(pair.free_currents.e, pair.nudged_currents.e):
        assert np.array_equal(np.asarray(ef), np.asarray(en))
    updates = [net.update(net.phases(x, y, beta=beta)) for beta in (1e-3, 1e-4)]
    for a, b in zip(updates[0].dW, updates[1].dW):
        a, b = np.asarray(a), np.asarray(b)
        assert np.linalg.norm(a) > 1e-3
        assert np.linalg.norm(a - b) < 0.01 * np.linalg.norm(a)
