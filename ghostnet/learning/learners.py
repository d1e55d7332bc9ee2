"""Learners: the ghost network's local learning and its baselines, backprop and feedback
alignment (by torch.autograd), behind one ``step`` / ``predict`` interface."""
from __future__ import annotations

import numpy as np

from ghostnet.learning.data import one_hot
from ghostnet.learning.settings import TrainConfig
from ghostnet.model.params import Params
from ghostnet.model.plasticity import Update, sgd_step
from ghostnet.network.network import GhostNetwork


class Learner:
    """Holds parameters; ``step(x, y, lrs)`` learns from a batch and returns the output rates
    (ghost learner) or None.

    Each step also notes what the trainer checks (:meth:`reset_counts` clears them): ``steps``,
    ``zero_updates`` (steps whose update was exactly zero in every layer), ``unsettled`` (ghost
    learner: phases that did not settle, ``PhaseResult.converged`` false) and ``nonfinite`` (the
    step's outputs, cost or update held NaN or infinity)."""

    def __init__(self, cfg: TrainConfig, params: Params):
        self.cfg = cfg
        self.net = GhostNetwork(cfg.model, params)
        self.reset_counts()

    def reset_counts(self, counts: dict | None = None) -> None:
        c = counts or {}
        self.steps = int(c.get("steps", 0))
        self.zero_updates = int(c.get("zero_updates", 0))
        self.unsettled = int(c.get("unsettled", 0))
        self.nonfinite = False

    def counts(self) -> dict:
        return {"steps": self.steps, "zero_updates": self.zero_updates,
                "unsettled": self.unsettled}

    def _note(self, dW, db, finite_out: bool) -> None:
        self.steps += 1
        # cheap first: the bias updates' sums (NaN and infinity survive a sum), then W only when
        # every bias update is zero
        total = sum(float(np.sum(d)) for d in db)
        self.nonfinite = not (finite_out and np.isfinite(total))
        if not any(np.any(d) for d in db) and not any(np.any(d) for d in dW):
            self.zero_updates += 1

    @property
    def params(self) -> Params:
        return self.net.params

    def step(self, x, y, lrs):
        m, learner = self.cfg.model, self.cfg.train.learner
        if learner == "ghost":
            pair = self.net.step(x, y, lrs)
            out = pair.prediction
            self.unsettled += (not pair.free_result.converged) + (not pair.nudged_result.converged)
            self._note(pair.update.dW, pair.update.db, bool(np.isfinite(out).all()))
            return out
        from ghostnet.checks import reference  # torch, imported when a run needs it

        grads = (reference.backprop_gradients if learner == "backprop"
                 else reference.feedback_alignment_gradients)
        gW, gb, cost = grads(m, self.params, x, y)
        sgd_step(m, self.params, Update([-g for g in gW], [-g for g in gb], []), lrs)
        self._note(gW, gb, bool(np.isfinite(cost)))
        return None

    def predict(self, x):
        if self.cfg.train.learner == "ghost":
            return self.net.predict(x)
        return self.net.engine.feedforward(self.params, np.asarray(x, self.cfg.model.dtype))


def evaluate(learner: Learner, x, labels, n_classes, batch=1000) -> tuple[float, float]:
    """Accuracy and cost (0.5 |y - r|^2, mean) of the learner's prediction."""
    correct, cost = 0, 0.0
    for s in range(0, len(x), batch):
        r = learner.predict(x[s:s + batch])
        lab = labels[s:s + batch]
        correct += int(np.sum(np.argmax(r, axis=1) == lab))
        cost += float(0.5 * np.sum((one_hot(lab, n_classes, r.dtype) - r) ** 2))
    return correct / len(x), cost / len(x)
