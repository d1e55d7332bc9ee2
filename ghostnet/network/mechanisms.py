"""Ghosts without copied weights (docs/model.md §5): plasticity of the `learned` ghosts, and their
pre-training on inputs without targets.

Mechanism ``learned``: the ghost weights are plastic and learn from activity without target,

    dG_l = eta_G (r_{l+1} - phi(v_l)) r_l^T,     dc_l = eta_G (r_{l+1} - phi(v_l))
    dH_l = eta_H t_l phi(v_l)^T

(each ghost learns to predict its partner's rate, which reaches it as a teaching signal; the
inhibition learns to silence the top-down input t_l = B_l r_{l+1} - H_l phi(v_l)). The updates are
applied at the end of a phase, averaged over the batch. They are gated off while a target is
present (``config.gate_ghosts``, default true): a target-driven t_l is the error, which the
inhibition must not learn to cancel.

Mechanism ``replicate`` needs no weights of its own: its ghosts track their partners' potentials
during the free phase and hold them when the target arrives (in the kernels and in
:mod:`ghostnet.engines.numba_equilibrium`).
"""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ghostnet.model.state import BlowUpError, State
from ghostnet.model.transfer import phi
from ghostnet.engines.numba_equilibrium import settle


def ghost_plasticity(net, state: State, x: np.ndarray, y: np.ndarray | None = None,
                     beta: float = 0.0) -> None:
    """One end-of-phase ghost update (docs/model.md §5) from a settled ``state``, in place on
    ``net.params``; a no-op unless the mechanism is 'learned', and with a target present (``y``
    given) a no-op while ``config.gate_ghosts`` is on."""
    cfg, p = net.config, net.params
    if cfg.mechanism != "learned" or (y is not None and cfg.gate_ghosts):
        return
    cur = net.engine.currents(p, state, y, beta if y is not None else 0.0, x=x)
    dG, dc, dH = net.engine.ghost_update(p, cur)  # batch means, through the layers' maps
    for i in range(len(p.G)):
        eta_g, eta_h = cfg.ghost_rates(i)
        p.G[i] += eta_g * dG[i].astype(p.G[i].dtype, copy=False)
        p.c[i] += eta_g * dc[i].astype(p.c[i].dtype, copy=False)
        p.H[i] += eta_h * dH[i].astype(p.H[i].dtype, copy=False)


def cancel_residual(net, state: State) -> list[float]:
    """Per hidden layer, the relative cancellation residual ``|t_l| / |B_l r_{l+1}|`` of a
    free-phase state (Frobenius norms over the batch): 0 for perfect cancellation, 1 for none."""
    p = net.params
    cur = net.engine.currents(p, state, None, 0.0)
    out = []
    for i in range(len(p.B)):
        fb = net.engine.feedback_input(p, i, cur.r[i + 1])
        out.append(float(np.linalg.norm(cur.t[i]) / max(np.linalg.norm(fb), 1e-300)))
    return out


def open_loop_phase(net, x: np.ndarray, solver=None) -> State:
    """A free phase with the top-down input kept off the pyramidal neurons (docs/model.md §5,
    "Open-loop pre-training"): every layer at its feedforward potential ``u_l = a_l``, and the
    learned ghosts at ``v_l = G_l r_l + c_l``, their fixed point given those rates. It is the
    free fixed point of a network whose ghosts cancel the feedback exactly; here the top-down
    input ``t_l = B_l r_{l+1} - H_l phi(v_l)`` is only measured (the residual the ghosts learn
    from), so the phase costs one pass and cannot diverge. ``solver``: an engine of the
    network's kind set up for copy ghosts in equilibrium mode (made here when not given), whose
    free fixed point is the feedforward pass (Property 1)."""
    cfg = net.config
    x = np.asarray(x, dtype=cfg.dtype)
    state = State.zeros(cfg, len(x))
    if solver is None:
        solver = type(net.engine)(cfg.replace(mechanism="copy", mode="equilibrium"))
    solver.settle(net.params, state, x)
    for i in range(len(state.v)):
        r = phi(state.u[i], cfg.rate_transfer(i))
        state.v[i][...] = net.engine.ghost_drive(net.params, i, r).reshape(state.v[i].shape)
    return state


def pretrain(net, inputs: np.ndarray, batch: int = 32, tol: float = 0.05,
             budget: int | None = None, rng: np.random.Generator | None = None,
             progress: bool = True, window: int = 5, noise: float = 0.0,
             noise_samples: int | None = None, loop: str = "closed") -> dict:
    """Pre-train the ghosts of a 'learned' network on ``inputs`` (N x n_0) without targets.

    Shuffled batches of free phases, each followed by :func:`ghost_plasticity`, until every hidden
    layer's residual (mean over the last ``window`` batches) is below ``tol`` or ``budget`` samples
    (default: 20 passes over the inputs) have been used. A tqdm bar shows the residual per layer.

    Exploration noise (``noise`` > 0, an extension of docs/model.md §5; default off): for the first
    ``noise_samples`` samples (default: half the budget) every pyramidal neuron receives an
    independent Gaussian current of standard deviation ``noise`` (drawn per sample, constant
    within the phase; the ghosts receive none), then pre-training goes on without noise and the
    tolerance is checked. Why: deep in a network of saturating units the rates barely vary from
    input to input (a random 20-30-25-15-5 logistic net: std 0.06, 0.01, 0.003, 0.001 per
    layer), so the ghosts learn to cancel the feedback on the data with G, H far from W, B
    (58-84 deg) and the error's Jacobian is not cancelled. Noise makes every direction of every
    layer's rates vary, and G_l -> W_{l+1}, H_l -> B_l (the same idea as the "weight mirrors" of
    Akrout et al. 2019). The noisy free phases are computed as fixed points
    (:func:`ghostnet.engines.numba_equilibrium.settle`) whatever the network's mode: ghost learning reads only
    the settled state (§7, step 4).

    ``loop = "open"`` (no noise): the free phases are :func:`open_loop_phase` (the top-down input
    does not act on the pyramidal neurons) until the residual, averaged over ``window`` batches,
    is below ``tol``; then the network's own closed free phases until the tolerance holds there
    too (it is judged on closed-loop batches only). Use it where the closed free phase does not
    settle before the ghosts cancel the feedback: a deep tanh network with a cross-entropy
    output (784-500-500-10) takes all 500 passes a phase with random ghosts, 28 samples a
    second, against one pass open. Once the open-loop residual is small the closed loop settles
    in a few passes. That hand-over needs inputs that vary in every direction of the layers'
    rates (as standardised images do): the ghosts learn to cancel the feedback at the
    feedforward states only, and a closed loop that leaves them along a direction the data never
    explored is not cancelled there.

    Returns ``{"samples", "reached", "tol", "final_residual" (per hidden layer, the mean over the
    last ``window`` batches that the tolerance is checked on), "noise", "noise_samples", "loop",
    "open_samples" (samples of the open-loop stage),
    "history": {"samples": [...], "residual": [[per layer], ...]}}`` (residuals of noisy phases
    include the noise).
    """
    if net.config.mechanism != "learned":
        raise ValueError("ghost pre-training applies to mechanism 'learned' only "
                         f"(this network's mechanism is '{net.config.mechanism}')")
    inputs = np.asarray(inputs, dtype=net.config.dtype)
    if inputs.ndim != 2 or inputs.shape[1] != net.config.sizes[0] or len(inputs) == 0:
        raise ValueError(f"pre-training inputs must have shape (N, {net.config.sizes[0]}), "
                         f"got {inputs.shape}")
    if loop not in ("closed", "open"):
        raise ValueError(f"pre-training loop must be 'closed' or 'open', got {loop!r}")
    if loop == "open" and noise:
        raise ValueError("exploration noise needs the closed loop (loop = 'closed')")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"pre-training noise must be a finite standard deviation >= 0, got {noise}")
    rng = np.random.default_rng(net.config.seed) if rng is None else rng
    budget = 20 * len(inputs) if budget is None else int(budget)
    if noise_samples is None:
        noise_samples = budget // 2 if noise > 0 else 0
    elif noise_samples < 0:
        raise ValueError(f"noise_samples must be >= 0, got {noise_samples}")
    noise_samples = min(int(noise_samples), budget) if noise > 0 else 0
    hist_n, hist_r = [], []
    seen = 0
    clean = 0  # batches without noise, closed: the tolerance is checked on these only
    open_stage = loop == "open"
    open_samples = 0
    noise_solver = None  # made once, at the first noisy phase of a non-Numba engine
    open_solver = (type(net.engine)(net.config.replace(mechanism="copy", mode="equilibrium"))
                   if open_stage else None)
    reached = False
    bar = tqdm(total=budget, desc="ghost pre-training", unit="sample", disable=not progress,
               leave=False, mininterval=0.5)
    try:
        while seen < budget and not reached:
            order = rng.permutation(len(inputs))
            for start in range(0, len(order), batch):
                idx = order[start:start + batch][: budget - seen]
                if len(idx) == 0:
                    break
                x = inputs[idx]
                noisy = seen < noise_samples
                try:
                    if noisy:
                        state = State.zeros(net.config, len(idx))
                        currents_ = [(noise * rng.standard_normal((len(idx), *n))).astype(
                            net.config.dtype) for n in net.config.shapes[1:]]
                        if net.config.engine == "numba":
                            settle(net.config, net.params, state, x, noise=currents_)
                        else:  # an engine of this network's kind, solving for fixed points
                            if noise_solver is None:
                                noise_solver = type(net.engine)(
                                    net.config.replace(mode="equilibrium"))
                            noise_solver.settle(net.params, state, x, noise=currents_)
                    elif open_stage:
                        state = open_loop_phase(net, x, open_solver)
                    else:
                        state, _ = net.free_phase(x)
                except FloatingPointError as exc:
                    raise BlowUpError(
                        f"ghost pre-training diverged after {seen} samples (eta_g = "
                        f"{net.config.eta_g}, eta_h = {net.config.eta_h}): reduce the ghost "
                        f"learning rates (an LMS rule is stable below 2 / lambda_max of its input's "
                        f"correlation, docs/model.md §5). ({exc})") from None
                res = cancel_residual(net, state)
                ghost_plasticity(net, state, x)
                seen += len(idx)
                hist_n.append(seen)
                hist_r.append(res)
                bar.update(len(idx))
                recent = np.mean(hist_r[-window:], axis=0)
                bar.set_postfix(residual=" ".join(f"{r:.3f}" for r in recent),
                                noise=noisy, **({"loop": "open"} if open_stage else {}),
                                refresh=False)
                if open_stage:
                    open_samples = seen
                    if len(hist_r) >= window and np.all(recent < tol):
                        open_stage = False  # the loop is weak now: go on closed
                    continue
                clean += not noisy
                if clean >= window and np.all(recent < tol):
                    reached = True
                    break
                if seen >= budget:
                    break
    finally:
        bar.close()
    final = [float(r) for r in np.mean(hist_r[-window:], axis=0)] if hist_r else []
    return {"samples": seen, "reached": reached, "tol": tol, "final_residual": final,
            "noise": noise, "noise_samples": noise_samples, "loop": loop,
            "open_samples": open_samples,
            "history": {"samples": hist_n, "residual": hist_r}}


def pretrain_random(net, n_samples: int, progress: bool = True, batch: int = 32,
                    tol: float = 0.05, pool: int = 512, noise: float = 0.0,
                    noise_samples: int | None = None) -> dict:
    """:func:`pretrain` on a fixed pool of inputs uniform in [0, 1), drawn from a Generator
    seeded by ``config.seed``, for at most ``n_samples`` samples (``noise``, ``noise_samples``:
    exploration noise, as in :func:`pretrain`)."""
    rng = np.random.default_rng(net.config.seed + 7919)
    inputs = rng.uniform(0.0, 1.0, size=(pool, net.config.sizes[0]))
    return pretrain(net, inputs, batch=batch, tol=tol, budget=n_samples, rng=rng, progress=progress,
                    noise=noise, noise_samples=noise_samples)
