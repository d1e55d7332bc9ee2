"""Gradient check (docs/model.md §3 property 2, §11 E2): the network's local update against backprop and,
for random feedback, against feedback alignment, on one random batch."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np

from ghostnet.model.config import ModelConfig
from ghostnet.checks.metrics import layer_alignment
from ghostnet.network.network import GhostNetwork


def random_batch(config: ModelConfig, batch: int, rng: np.random.Generator):
    """Inputs uniform in [0, 1) and one-hot targets of random classes."""
    x = rng.uniform(0.0, 1.0, size=(batch, config.sizes[0]))  # images flattened
    y = np.zeros((batch, config.sizes[-1]))
    y[np.arange(batch), rng.integers(0, config.sizes[-1], size=batch)] = 1.0
    return x.astype(config.dtype), y.astype(config.dtype)


def gradcheck(config: ModelConfig, batch: int = 16, net: GhostNetwork | None = None,
              data_seed: int | None = None) -> dict:
    """Run one free + nudged phase pair and compare the local update with the references.

    Returns a dict with ``settings`` (the resolved configuration and batch), ``phases`` (steps,
    settled or not) and ``layers``: per layer ``angle_deg`` and ``norm_ratio`` against the reference
    (feedback alignment for random feedback, backprop otherwise) and ``angle_backprop_deg``,
    ``norm_ratio_backprop`` against backprop, and the relative cancellation residual
    ``cancel_residual`` = |t_l| / |B_l r_{l+1}| at the end of the free phase (hidden layers).
    """
    net = GhostNetwork(config) if net is None else net
    rng = np.random.default_rng(config.seed + 1 if data_seed is None else data_seed)
    x, y = random_batch(config, batch, rng)
    pair = net.phases(x, y)
    upd = net.update(pair)
    from ghostnet.checks.reference import backprop_gradients, feedback_alignment_gradients  # torch: lazily

    gW, gb, cost = backprop_gradients(config, net.params, x, y)
    bp = layer_alignment(upd, gW, gb)
    if config.feedback == "random":
        fW, fb, _ = feedback_alignment_gradients(config, net.params, x, y)
        ref, ref_name = layer_alignment(upd, fW, fb), "feedback_alignment"
    else:
        ref, ref_name = bp, "backprop"
    fc = pair.free_currents
    layers = []
    for i, (r, b) in enumerate(zip(ref, bp)):
        row = {"layer": r["layer"], "angle_deg": r["angle_deg"], "norm_ratio": r["norm_ratio"],
               "angle_backprop_deg": b["angle_deg"], "norm_ratio_backprop": b["norm_ratio"]}
        if i < len(fc.t) - 1:
            fb_in = net.engine.feedback_input(net.params, i, fc.r[i + 1])
            row["cancel_residual"] = float(np.linalg.norm(fc.t[i]) / max(np.linalg.norm(fb_in), 1e-300))
        else:
            row["cancel_residual"] = None
        layers.append(row)
    return {
        "settings": {**asdict(config), "batch": batch, "reference": ref_name},
        "cost": cost,
        "phases": {
            "free": {"steps": pair.free_result.steps, "settled": pair.free_result.converged},
            "nudged": {"steps": pair.nudged_result.steps, "settled": pair.nudged_result.converged},
        },
        "layers": layers,
    }
